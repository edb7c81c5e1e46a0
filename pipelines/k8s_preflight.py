"""``diffexplainer k8s preflight``: is the cluster ready for a (multi-hour) GPU run?

Reads a ``configs/k8s-*.yaml`` (:func:`pipelines.k8s.load_k8s_settings`) and asks the cluster,
through the official ``kubernetes`` client, whether what that file names is there:

- the API server answers; the namespace exists; the service account exists (and lists the image
  pull secret when ``preflight.image_pull_secret`` names one);
- the kube context's identity (or, with ``as_service_account``, the service account by
  impersonation) may do in the namespace every verb on every resource the shipped Role
  (``infra/k8s/base/rbac.yaml``, :data:`RBAC_RULES`) grants: one SelfSubjectAccessReview per
  (resource, verb), one result per resource;
- every Secret and ConfigMap the pods reference (``env_from``, ``env``, ``image_pull_secrets``,
  ``preflight.secrets``) exists, with the keys ``kubeflow.env_keys`` lists;
- enough schedulable nodes in each GPU profile's pool (node selector, tolerated taints) have the
  *allocatable* GPUs, memory and CPU of the largest request of that profile's steps (allocatable,
  not free: pods already running are not subtracted);
- the artifact store (S3 ``head_bucket``, or an HTTP GET for an http(s) URL) and the MLflow
  tracking server (``GET <uri>/health``) answer within ``preflight.timeout_s``.

Each check returns a :class:`CheckResult`; a failure to connect is a failed check with its reason,
never an exception. Only a bad kubeconfig or context raises :class:`UserError`.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from components.errors import UserError
from pipelines.k8s import K8sSettings

__all__ = [
    "CheckResult",
    "GpuDemand",
    "load_kube_client",
    "check_api_server",
    "check_namespace",
    "check_service_account",
    "check_rbac",
    "check_object",
    "check_gpu_nodes",
    "check_http",
    "check_tracking",
    "check_artifact_store",
    "referenced_objects",
    "gpu_demands",
    "run_preflight",
    "format_report",
]

GPU_RESOURCE = "nvidia.com/gpu"
#: What the ZenML Kubernetes orchestrator does in the namespace, as the shipped Role
#: (``infra/k8s/base/rbac.yaml``) grants it: (API group, resource or ``resource/subresource``, verbs),
#: one entry per resource. ``tests/pipelines/test_k8s_preflight.py`` keeps the two equal.
RBAC_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "pods", ("get", "list", "watch", "create", "delete", "patch")),
    ("", "pods/log", ("get", "list")),
    ("", "events", ("get", "list", "watch")),
    ("", "secrets", ("get", "list", "create", "update", "patch", "delete")),
    ("", "configmaps", ("get", "list", "create", "update", "patch", "delete")),
    ("", "services", ("get", "list", "create", "delete")),
    ("batch", "jobs", ("get", "list", "watch", "create", "update", "patch", "delete")),
    ("batch", "cronjobs", ("get", "list", "watch", "create", "update", "patch", "delete")),
)
_PULL_SECRET_TYPES = {"kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg"}


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``name`` (e.g. ``rbac``), whether it passed, and why (one line)."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """``ok   name: detail`` or ``FAIL name: detail``."""
        return f"{'ok' if self.ok else 'FAIL':<4} {self.name}: {self.detail}"


@dataclass(frozen=True)
class GpuDemand:
    """The largest request among the steps of one GPU profile, and where its pods may run.

    Attributes:
        profile: profile name (``gpu``), or ``default profile`` for steps not named in ``steps``.
        steps: step ids on this profile.
        requests: resource -> quantity string (requests, falling back to limits as Kubernetes does).
        node_selector: labels a node must carry.
        tolerations: the profile's tolerations (camelCase dicts, as in the YAML).
    """

    profile: str
    steps: tuple[str, ...]
    requests: dict[str, str]
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()


# --------------------------------------------------------------------------- client, errors

def load_kube_client(kubeconfig: str | None = None, context: str | None = None) -> tuple[Any, str]:
    """An ``ApiClient`` for ``context`` of ``kubeconfig`` (default ``$KUBECONFIG``, ``~/.kube/config``).

    Without a kubeconfig file, inside a pod (``KUBERNETES_SERVICE_HOST`` set) and without
    ``context``, the pod's service account is used.

    Returns:
        The client (no retries) and a description of whom it talks to.

    Raises:
        UserError: a missing or unreadable kubeconfig, or an unknown context.
    """
    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    files = [Path(p).expanduser() for p in path.split(os.pathsep) if p]
    cfg = client.Configuration()
    if not kubeconfig and context is None and not any(f.is_file() for f in files) \
            and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise UserError(f"in-cluster configuration: {exc}") from None
        who = "in-cluster service account"
    else:
        if not any(f.is_file() for f in files):
            raise UserError(f"kubeconfig {path}: no such file (pass --kubeconfig or set KUBECONFIG)")
        try:
            contexts, active = config.list_kube_config_contexts(config_file=path)
            name = context or (active or {}).get("name")
            if name not in {c.get("name") for c in contexts or []}:
                raise UserError(f"kubeconfig {path}: no context {name!r}; it has "
                                f"{sorted(c.get('name') for c in contexts or [])}")
            config.load_kube_config(config_file=path, context=name, client_configuration=cfg, persist_config=False)
        except (ConfigException, OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UserError(f"kubeconfig {path}: {exc}") from None
        who = f"context {name}"
    cfg.retries = 0  # report what the server does now; urllib3 would also log each retry
    return client.ApiClient(cfg), f"{who} ({cfg.host})"


def _reason(exc: BaseException) -> str:
    """One line saying why a request failed (no object reprs, no tracebacks)."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        message = ""
        try:
            message = json.loads(exc.body or "{}").get("message", "")
        except (ValueError, AttributeError):
            pass
        return f"HTTP {exc.status} {exc.reason}" + (f": {message}" if message else "")
    inner = getattr(exc, "reason", None)
    text = str(inner if isinstance(inner, BaseException) else exc)
    text = re.sub(r"<[^>]*>:\s*", "", text)
    text = text.split("Failed to establish a new connection: ")[-1]
    return " ".join(text.split()) or type(exc).__name__


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of an API server answer (None: no answer)."""
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


def _call(fn: Callable[..., Any], *args: Any, timeout: float, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with the client's per-request timeout."""
    return fn(*args, _request_timeout=(timeout, timeout), **kwargs)


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What a request to the API server may raise when the cluster, not the code, is at fault."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    return ApiException, urllib3.exceptions.HTTPError, OSError, ValueError


# --------------------------------------------------------------------------- cluster checks

def check_api_server(api: Any, who: str, timeout: float) -> CheckResult:
    """GET /version: is the API server there and does it answer?"""
    from kubernetes import client

    try:
        info = _call(client.VersionApi(api).get_code, timeout=timeout)
    except _expected_errors() as exc:
        return CheckResult("api server", False, f"{who}: {_reason(exc)}")
    return CheckResult("api server", True, f"{who} answers (Kubernetes {info.git_version})")


def check_namespace(core: Any, namespace: str, timeout: float) -> CheckResult:
    """The namespace exists and is not being deleted."""
    try:
        ns = _call(core.read_namespace, namespace, timeout=timeout)
    except _expected_errors() as exc:
        if _http_status(exc) == 404:
            return CheckResult("namespace", False,
                               f"{namespace} does not exist (kubectl apply -k infra/k8s/overlays/...)")
        return CheckResult("namespace", False, f"cannot read namespace {namespace}: {_reason(exc)}")
    phase = getattr(ns.status, "phase", None) or "Active"
    if phase != "Active":
        return CheckResult("namespace", False, f"{namespace} is {phase}")
    return CheckResult("namespace", True, f"{namespace} exists")


def check_service_account(core: Any, namespace: str, name: str, pull_secret: str, timeout: float) -> CheckResult:
    """The service account exists and, when ``pull_secret`` is set, lists it under ``imagePullSecrets``."""
    try:
        sa = _call(core.read_namespaced_service_account, name, namespace, timeout=timeout)
    except _expected_errors() as exc:
        if _http_status(exc) == 404:
            return CheckResult("service account", False, f"{name} does not exist in namespace {namespace}")
        return CheckResult("service account", False, f"cannot read service account {name}: {_reason(exc)}")
    listed = [ref.name for ref in sa.image_pull_secrets or []]
    if pull_secret and pull_secret not in listed:
        return CheckResult("service account", False, f"{name} does not list image pull secret {pull_secret} "
                                                     f"(imagePullSecrets: {listed or 'none'})")
    return CheckResult("service account", True, f"{name} exists in namespace {namespace}")


def check_rbac(authz: Any, namespace: str, group: str, resource: str, verbs: Iterable[str], who: str,
               timeout: float) -> CheckResult:
    """SelfSubjectAccessReview, one per verb: may ``who`` (the client's identity) do each of ``verbs``
    on ``resource`` (``pods`` or a subresource such as ``pods/log``) in ``namespace``?

    One result for the resource: it passes when every verb is allowed, else names the verbs that are
    not. A review the API server does not answer ends the check with that verb and the reason.
    """
    from kubernetes import client

    name, _, subresource = resource.partition("/")
    kind = (f"{name}.{group}" if group else name) + (f"/{subresource}" if subresource else "")
    verbs = list(verbs)
    denied: list[str] = []
    reasons: list[str] = []
    for verb in verbs:
        body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb=verb, group=group,
                                                            resource=name, subresource=subresource or None)))
        try:
            review = _call(authz.create_self_subject_access_review, body, timeout=timeout)
        except _expected_errors() as exc:
            return CheckResult("rbac", False, f"cannot ask whether {who} may {verb} {kind}: {_reason(exc)}")
        if review.status is not None and review.status.allowed:
            continue
        denied.append(verb)
        reason = review.status.reason if review.status is not None else ""
        if reason and reason not in reasons:
            reasons.append(reason)
    if not denied:
        return CheckResult("rbac", True, f"may {', '.join(verbs)} {kind} in namespace {namespace} ({who})")
    why = "; ".join(reasons) or "no RBAC rule allows it"
    return CheckResult("rbac", False, f"cannot {', '.join(denied)} {kind} in namespace {namespace} ({who}): {why}")


def check_object(core: Any, kind: str, namespace: str, name: str, keys: Iterable[str], timeout: float) -> CheckResult:
    """A Secret (``kind`` ``secret`` or ``image pull secret``) or ConfigMap exists with ``keys``.

    Only key names are read back, never values.
    """
    read = core.read_namespaced_config_map if kind == "configmap" else core.read_namespaced_secret
    try:
        obj = _call(read, name, namespace, timeout=timeout)
    except _expected_errors() as exc:
        if _http_status(exc) == 404:
            return CheckResult(kind, False, f"{name} does not exist in namespace {namespace}")
        return CheckResult(kind, False, f"cannot read {name}: {_reason(exc)}")
    if kind == "image pull secret" and obj.type not in _PULL_SECRET_TYPES:
        return CheckResult(kind, False, f"{name} has type {obj.type}, not kubernetes.io/dockerconfigjson")
    present = set(obj.data or {}) | set(getattr(obj, "binary_data", None) or {})
    missing = [k for k in keys if k not in present]
    if missing:
        return CheckResult(kind, False, f"{name} lacks key(s) {', '.join(missing)}")
    keys = list(keys)
    listed = f" with keys {', '.join(keys)}" if len(keys) <= 3 else f" with all {len(keys)} expected keys"
    return CheckResult(kind, True, f"{name} exists" + (listed if keys else ""))


def _tolerated(taint: Any, tolerations: Iterable[dict[str, Any]]) -> bool:
    """Kubernetes' toleration rule for one taint (only NoSchedule / NoExecute taints matter)."""
    if taint.effect not in ("NoSchedule", "NoExecute"):
        return True
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.effect:
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.key:
                return True
        elif tol.get("key") == taint.key and (tol.get("value") or "") == (taint.value or ""):
            return True
    return False


def _misfit(node: Any, demand: GpuDemand) -> str | None:
    """Why a pod of ``demand`` cannot run on ``node`` (None: it fits)."""
    from kubernetes.utils import parse_quantity

    labels = node.metadata.labels or {}
    if any(labels.get(k) != v for k, v in demand.node_selector.items()):
        return "outside the pool"
    if node.spec is not None and node.spec.unschedulable:
        return "cordoned"
    ready = [c.status for c in (node.status.conditions or []) if c.type == "Ready"]
    if ready and ready[0] != "True":
        return "not Ready"
    for taint in (node.spec.taints if node.spec is not None else None) or []:
        if not _tolerated(taint, demand.tolerations):
            return f"taint {taint.key}{'=' + taint.value if taint.value else ''}:{taint.effect} not tolerated"
    allocatable = node.status.allocatable or {}
    for resource, wanted in demand.requests.items():
        have = allocatable.get(resource, "0")
        if parse_quantity(have) < parse_quantity(wanted):
            return f"{resource} {have} < {wanted}"
    return None


def check_gpu_nodes(nodes: list[Any], demand: GpuDemand, min_nodes: int) -> CheckResult:
    """Do at least ``min_nodes`` nodes fit the largest request of ``demand`` (allocatable)?"""
    request = ", ".join(f"{k} {v}" for k, v in demand.requests.items())
    pool = ",".join(f"{k}={v}" for k, v in demand.node_selector.items()) or "any node"
    misfits = {n.metadata.name: _misfit(n, demand) for n in nodes}
    fit = sorted(name for name, why in misfits.items() if why is None)
    what = f"profile {demand.profile} ({request}; pool {pool})"
    if len(fit) >= min_nodes:
        return CheckResult("gpu nodes", True, f"{len(fit)} node(s) fit {what}: {', '.join(fit)}; {min_nodes} needed")
    in_pool = [f"{name}: {why}" for name, why in sorted(misfits.items()) if why and why != "outside the pool"]
    outside = sum(why == "outside the pool" for why in misfits.values())
    reasons = "; ".join(in_pool[:5] + ([f"... {len(in_pool) - 5} more"] if len(in_pool) > 5 else []))
    return CheckResult("gpu nodes", False, f"{len(fit)} of {min_nodes} needed node(s) fit {what}"
                       + (f"; {reasons}" if reasons else "") + f"; {outside} node(s) outside the pool")


# --------------------------------------------------------------------------- services

def check_http(name: str, url: str, timeout: float) -> CheckResult:
    """GET ``url``: any answer below 400 within ``timeout`` passes."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        return CheckResult(name, False, f"{url} answers HTTP {exc.code} {exc.reason}")
    except (TimeoutError, urllib.error.URLError, OSError, ValueError) as exc:
        return CheckResult(name, False, f"{url} unreachable: {_reason(exc)}")
    return CheckResult(name, True, f"{url} answers HTTP {status}")


def check_tracking(uri: str, timeout: float) -> CheckResult:
    """``GET <uri>/health`` of the MLflow tracking server."""
    if not uri.startswith(("http://", "https://")):
        return CheckResult("tracking server", False, f"{uri or 'no URI'} is not the http(s) URL of a tracking server "
                           "(preflight.tracking_uri; export MLFLOW_TRACKING_URI=https://...)")
    return check_http("tracking server", uri.rstrip("/") + "/health", timeout)


def check_artifact_store(uri: str, endpoint_url: str, timeout: float) -> CheckResult:
    """``s3://bucket/...``: boto3 ``head_bucket`` (one attempt, ``timeout``); http(s): :func:`check_http`."""
    if uri.startswith(("http://", "https://")):
        return check_http("artifact store", uri, timeout)
    if not uri.startswith("s3://"):
        return CheckResult("artifact store", False, f"{uri or 'no URI'}: preflight checks s3://bucket/... or an "
                           "http(s) URL (preflight.artifact_store; ARTIFACT_STORE_URI)")
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = uri[len("s3://"):].split("/", 1)[0]
    where = endpoint_url or "AWS"
    cfg = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"},
                 s3={"addressing_style": "path"} if endpoint_url else None)
    try:
        boto3.client("s3", endpoint_url=endpoint_url or None, config=cfg).head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        why = {"404": "does not exist", "NoSuchBucket": "does not exist", "403": "access denied"}.get(code, code)
        return CheckResult("artifact store", False, f"bucket {bucket} at {where}: {why}")
    except (BotoCoreError, OSError, ValueError) as exc:
        return CheckResult("artifact store", False, f"bucket {bucket} at {where}: {_reason(exc)}")
    return CheckResult("artifact store", True, f"bucket {bucket} reachable at {where}")


# --------------------------------------------------------------------------- what the config names

def _all_pods(settings: K8sSettings) -> list[Any]:
    pods = [settings.default_pod, *settings.step_pods.values()]
    orch = getattr(settings.orchestrator, "orchestrator_pod_settings", None)
    return pods + ([orch] if orch is not None else [])


def referenced_objects(settings: K8sSettings) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Secrets and ConfigMaps the pods reference, with the keys ``kubeflow.env_keys`` expects.

    Returns:
        ``(secrets, configmaps, pull_secrets)``: name -> expected keys, and image pull secret names.
    """
    secrets: dict[str, list[str]] = {name: [] for name in settings.preflight.secrets}
    configmaps: dict[str, list[str]] = {}
    pull: list[str] = [settings.preflight.image_pull_secret] if settings.preflight.image_pull_secret else []
    for pod in _all_pods(settings):
        for src in pod.env_from or []:
            for ref, table in (("secretRef", secrets), ("configMapRef", configmaps)):
                if (src.get(ref) or {}).get("name"):
                    table.setdefault(src[ref]["name"], [])
        for var in pod.env or []:
            source = var.get("valueFrom") or {}
            for ref, table in (("secretKeyRef", secrets), ("configMapKeyRef", configmaps)):
                if (source.get(ref) or {}).get("name"):
                    keys = table.setdefault(source[ref]["name"], [])
                    if source[ref].get("key") and source[ref]["key"] not in keys:
                        keys.append(source[ref]["key"])
        pull += [s for s in pod.image_pull_secrets or [] if s not in pull]
    for name, keys in (settings.kubeflow.get("env_keys") or {}).items():
        expected = configmaps if name in configmaps else secrets if name in secrets else None
        if expected is not None:
            expected[name] += [k for k in keys if k not in expected[name]]
    return secrets, configmaps, pull


def _requests(resources: dict[str, Any]) -> dict[str, str]:
    """Effective requests: ``requests``, with ``limits`` filling what it lacks (Kubernetes' defaulting)."""
    out = {k: str(v) for k, v in (resources.get("limits") or {}).items()}
    out.update({k: str(v) for k, v in (resources.get("requests") or {}).items()})
    return out


def gpu_demands(settings: K8sSettings) -> list[GpuDemand]:
    """Per profile that requests ``nvidia.com/gpu``: its steps' request and placement.

    All steps of a profile get the same pod, so the profile's request is the largest of its steps;
    with several GPU profiles each is checked against its own pool.
    """
    from kubernetes.utils import parse_quantity

    by_profile: dict[str, list[str]] = {}
    for step, profile in settings.step_profiles.items():
        by_profile.setdefault(profile, []).append(step)
    pods = {profile: settings.pod_settings_for(steps[0]) for profile, steps in by_profile.items()}
    pods.setdefault("default profile", settings.default_pod)  # steps not named in ``steps:``
    out = []
    for profile, pod in pods.items():
        req = _requests(pod.resources or {})
        if parse_quantity(req.get(GPU_RESOURCE, "0")) <= 0:
            continue
        wanted = {k: req[k] for k in (GPU_RESOURCE, "memory", "cpu") if k in req}
        out.append(GpuDemand(profile, tuple(by_profile.get(profile, [])), wanted, dict(pod.node_selectors or {}),
                             tuple(pod.tolerations or ())))
    return out


# --------------------------------------------------------------------------- the run

def run_preflight(settings: K8sSettings, api: Any, who: str, as_service_account: bool = False) -> list[CheckResult]:
    """Every check, in a fixed order. When the API server does not answer, the cluster checks are
    reported failed without being tried; the artifact store and tracking server are still checked.

    Args:
        settings: the loaded ``configs/k8s-*.yaml``.
        api: a ``kubernetes.client.ApiClient`` (:func:`load_kube_client`).
        who: description of the client's identity, for the messages.
        as_service_account: run the RBAC review as the configured service account(s) by
            impersonation (the kube identity needs the ``impersonate`` verb on them).
    """
    from kubernetes import client

    pre = settings.preflight
    t = float(pre.timeout_s)
    ns = settings.namespace
    orch = settings.orchestrator
    accounts = list(dict.fromkeys(a or "default" for a in (orch.service_account_name,
                                                           orch.step_pod_service_account_name)))
    secrets, configmaps, pull = referenced_objects(settings)
    demands = gpu_demands(settings)
    core = client.CoreV1Api(api)

    results = [check_api_server(api, who, t)]
    cluster: list[Callable[[], CheckResult]] = [partial(check_namespace, core, ns, t)]
    cluster += [partial(check_service_account, core, ns, a, pre.image_pull_secret, t) for a in accounts]
    if as_service_account:
        for account in accounts:
            sa_api = client.ApiClient(api.configuration, header_name="Impersonate-User",
                                      header_value=f"system:serviceaccount:{ns}:{account}")
            authz = client.AuthorizationV1Api(sa_api)
            cluster += [partial(check_rbac, authz, ns, g, r, v, f"service account {account}", t)
                        for g, r, v in RBAC_RULES]
    else:
        authz = client.AuthorizationV1Api(api)
        cluster += [partial(check_rbac, authz, ns, g, r, v, who.split(" (")[0], t) for g, r, v in RBAC_RULES]
    cluster += [partial(check_object, core, "secret", ns, n, k, t) for n, k in secrets.items()]
    cluster += [partial(check_object, core, "configmap", ns, n, k, t) for n, k in configmaps.items()]
    cluster += [partial(check_object, core, "image pull secret", ns, n, [], t) for n in pull]
    if results[0].ok:
        results += [check() for check in cluster]
        results += _node_checks(core, demands, pre.min_gpu_nodes, t)
    else:
        results.append(CheckResult("cluster", False, f"{len(cluster) + 1} cluster check(s) not run: "
                                                     "the API server does not answer"))
    results.append(check_artifact_store(pre.artifact_store, pre.s3_endpoint_url, t))
    results.append(check_tracking(pre.tracking_uri, t))
    return results


def _node_checks(core: Any, demands: list[GpuDemand], min_nodes: int, timeout: float) -> list[CheckResult]:
    """One ``gpu nodes`` result per GPU profile, from one node listing."""
    if not demands:
        return [CheckResult("gpu nodes", True, "no step requests nvidia.com/gpu")]
    try:
        nodes = _call(core.list_node, timeout=timeout).items or []
    except _expected_errors() as exc:
        return [CheckResult("gpu nodes", False, f"cannot list nodes: {_reason(exc)}")]
    return [check_gpu_nodes(nodes, demand, min_nodes) for demand in demands]


def format_report(results: list[CheckResult], config: str) -> str:
    """One line per check, then ``preflight: ...`` with the count of failures."""
    failed = sum(not r.ok for r in results)
    summary = (f"preflight: all {len(results)} checks passed ({config})" if not failed
               else f"preflight: {failed} of {len(results)} checks failed ({config})")
    return "\n".join([*(r.line() for r in results), summary])
