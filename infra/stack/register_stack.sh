#!/usr/bin/env bash
# Register (or update, when it already exists) the DiffExplainer production ZenML stack:
# Kubernetes (or, with ORCHESTRATOR=kubeflow, Kubeflow Pipelines) orchestrator, S3 artifact store, MLflow experiment tracker + model registry,
# container registry and image builder. Safe to run again: every component is updated in
# place, the stack is re-pointed at them and activated.
#
# Needs a remote ZenML server (the Kubernetes orchestrator does not work against a local
# store): ZENML_STORE_URL and ZENML_STORE_API_KEY (a service-account API key), or a prior
# `zenml login`. Credentials are never passed on the command line: MLflow's are read from
# the ZenML secret named by MLFLOW_ZENML_SECRET (keys: username, password), S3 / registry
# / cluster access from optional ZenML service connectors.
#
# Environment (required unless a default is shown):
#   ARTIFACT_STORE_URI       s3://bucket/prefix
#   MLFLOW_TRACKING_URI      http(s)://mlflow.example (the MLflow Service, via ingress)
#   CONTAINER_REGISTRY_URI   registry.example/diffexplainer
#   ORCHESTRATOR             kubernetes     (or kubeflow: our diffexplainer_kubeflow flavor, which
#                                            needs the project installed with the kubeflow extra here)
#   STACK_NAME               diffexplainer-k8s (diffexplainer-kubeflow for ORCHESTRATOR=kubeflow)
#   KUBEFLOW_HOSTNAME        (ORCHESTRATOR=kubeflow: the KFP API, https://HOST/pipeline; or use K8S_CONTEXT)
#   KUBEFLOW_NAMESPACE       kubeflow       (where Kubeflow Pipelines is installed)
#   K8S_NAMESPACE            diffexplainer-prod
#   K8S_CONTEXT              (kube context of the cluster; empty with K8S_CONNECTOR)
#   MLFLOW_ZENML_SECRET      mlflow_auth
#   IMAGE_BUILDER_FLAVOR     local          (docker on this machine; or kaniko, gcp, aws)
#   K8S_CONNECTOR, S3_CONNECTOR, REGISTRY_CONNECTOR   (optional service connector names)
#   ZENML                    zenml          (the CLI to call)
set -euo pipefail

die() { echo "register_stack: $*" >&2; exit 2; }

ZENML="${ZENML:-zenml}"
ORCHESTRATOR="${ORCHESTRATOR:-kubernetes}"
case "$ORCHESTRATOR" in
    kubernetes) STACK_NAME="${STACK_NAME:-diffexplainer-k8s}" ;;
    kubeflow) STACK_NAME="${STACK_NAME:-diffexplainer-kubeflow}" ;;
    *) die "ORCHESTRATOR must be kubernetes or kubeflow, got '$ORCHESTRATOR'" ;;
esac
KUBEFLOW_HOSTNAME="${KUBEFLOW_HOSTNAME:-}"
KUBEFLOW_NAMESPACE="${KUBEFLOW_NAMESPACE:-kubeflow}"
K8S_NAMESPACE="${K8S_NAMESPACE:-diffexplainer-prod}"
K8S_CONTEXT="${K8S_CONTEXT:-}"
K8S_CONNECTOR="${K8S_CONNECTOR:-}"
S3_CONNECTOR="${S3_CONNECTOR:-}"
REGISTRY_CONNECTOR="${REGISTRY_CONNECTOR:-}"
MLFLOW_ZENML_SECRET="${MLFLOW_ZENML_SECRET:-mlflow_auth}"
IMAGE_BUILDER_FLAVOR="${IMAGE_BUILDER_FLAVOR:-local}"
ARTIFACT_STORE_URI="${ARTIFACT_STORE_URI:-}"
MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-}"
CONTAINER_REGISTRY_URI="${CONTAINER_REGISTRY_URI:-}"

[[ -n "$ARTIFACT_STORE_URI" ]] || die "ARTIFACT_STORE_URI is not set (s3://bucket/prefix)"
[[ "$ARTIFACT_STORE_URI" == s3://* ]] || die "ARTIFACT_STORE_URI must be an s3:// URI, got '$ARTIFACT_STORE_URI'"
[[ -n "$MLFLOW_TRACKING_URI" ]] || die "MLFLOW_TRACKING_URI is not set (http(s)://...)"
[[ "$MLFLOW_TRACKING_URI" == http://* || "$MLFLOW_TRACKING_URI" == https://* ]] \
    || die "MLFLOW_TRACKING_URI must be an http(s) URI of the tracking server, got '$MLFLOW_TRACKING_URI'"
[[ -n "$CONTAINER_REGISTRY_URI" ]] || die "CONTAINER_REGISTRY_URI is not set"
[[ -n "$K8S_CONTEXT" || -n "$K8S_CONNECTOR" || ( "$ORCHESTRATOR" == kubeflow && -n "$KUBEFLOW_HOSTNAME" ) ]] \
    || die "set K8S_CONTEXT (kube context) or K8S_CONNECTOR (service connector)"
if [[ -n "${ZENML_STORE_URL:-}" ]]; then
    [[ "$ZENML_STORE_URL" == http://* || "$ZENML_STORE_URL" == https://* ]] \
        || die "ZENML_STORE_URL must be a ZenML server URL (the Kubernetes orchestrator needs a remote server)"
fi

# upsert TYPE NAME FLAVOR [--key=value ...]: register, or update the existing component.
upsert() {
    local type="$1" name="$2" flavor="$3"
    shift 3
    if "$ZENML" "$type" describe "$name" >/dev/null 2>&1; then
        echo "updating $type $name"
        if (($# > 0)); then
            "$ZENML" "$type" update "$name" "$@"
        fi
    else
        echo "registering $type $name ($flavor)"
        "$ZENML" "$type" register "$name" --flavor="$flavor" "$@"
    fi
}

# connect TYPE NAME CONNECTOR: attach a service connector when one is named.
connect() {
    if [[ -n "$3" ]]; then
        "$ZENML" "$1" connect "$2" --connector "$3"
    fi
}

if [[ "$ORCHESTRATOR" == kubeflow ]]; then
    # ZenML's own kubeflow flavor drops the per-step pod settings on KFP 2.x (infra/README.md).
    if ! "$ZENML" orchestrator flavor list 2>/dev/null | grep -q diffexplainer_kubeflow; then
        "$ZENML" orchestrator flavor register pipelines.kubeflow_orchestrator.DiffExplainerKubeflowFlavor
    fi
    flavor=diffexplainer_kubeflow
    orchestrator_args=("--kubeflow_namespace=$KUBEFLOW_NAMESPACE" "--user_namespace=$K8S_NAMESPACE")
    if [[ -n "$KUBEFLOW_HOSTNAME" ]]; then
        orchestrator_args+=("--kubeflow_hostname=$KUBEFLOW_HOSTNAME")
    fi
else
    flavor=kubernetes
    orchestrator_args=("--kubernetes_namespace=$K8S_NAMESPACE")
fi
if [[ -n "$K8S_CONTEXT" ]]; then
    orchestrator_args+=("--kubernetes_context=$K8S_CONTEXT")
fi

upsert orchestrator "${STACK_NAME}-orchestrator" "$flavor" "${orchestrator_args[@]}"
connect orchestrator "${STACK_NAME}-orchestrator" "$K8S_CONNECTOR"

upsert artifact-store "${STACK_NAME}-artifacts" s3 "--path=$ARTIFACT_STORE_URI"
connect artifact-store "${STACK_NAME}-artifacts" "$S3_CONNECTOR"

# {{secret.key}} is resolved by ZenML at run time; the values never appear here.
upsert experiment-tracker "${STACK_NAME}-mlflow" mlflow \
    "--tracking_uri=$MLFLOW_TRACKING_URI" \
    "--tracking_username={{${MLFLOW_ZENML_SECRET}.username}}" \
    "--tracking_password={{${MLFLOW_ZENML_SECRET}.password}}"
upsert model-registry "${STACK_NAME}-mlflow-registry" mlflow

upsert container-registry "${STACK_NAME}-registry" default "--uri=$CONTAINER_REGISTRY_URI"
connect container-registry "${STACK_NAME}-registry" "$REGISTRY_CONNECTOR"

upsert image-builder "${STACK_NAME}-image-builder" "$IMAGE_BUILDER_FLAVOR"

stack_args=(
    -o "${STACK_NAME}-orchestrator"
    -a "${STACK_NAME}-artifacts"
    -e "${STACK_NAME}-mlflow"
    -r "${STACK_NAME}-mlflow-registry"
    -c "${STACK_NAME}-registry"
    -i "${STACK_NAME}-image-builder"
)
if "$ZENML" stack describe "$STACK_NAME" >/dev/null 2>&1; then
    echo "updating stack $STACK_NAME"
    "$ZENML" stack update "$STACK_NAME" "${stack_args[@]}"
else
    echo "registering stack $STACK_NAME"
    "$ZENML" stack register "$STACK_NAME" "${stack_args[@]}"
fi
"$ZENML" stack set "$STACK_NAME"
echo "stack $STACK_NAME is active (namespace $K8S_NAMESPACE)"
