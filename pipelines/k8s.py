"""Kubernetes orchestrator settings from ``configs/k8s-*.yaml``.

The YAML names pod *profiles* (``cpu``, ``gpu``: node selector, tolerations, resources,
volumes) and maps step invocation ids to them; this module validates it with ZenML's own
settings classes (``KubernetesOrchestratorSettings``, ``KubernetesPodSettings``,
``DockerSettings`` import without the integration's extra requirements in zenml 0.98) and
returns what ``pipeline.with_options(settings=..., steps=...)`` takes::

    from pipelines.k8s import apply_k8s_settings
    run = apply_k8s_settings(training_pipeline, "configs/k8s-prod.yaml")(config=..., ...)

ZenML deep-merges a step's settings over the pipeline's, so a profile that named fewer
resource or node-selector keys than the default profile would inherit the default's
values for the rest; :func:`load_k8s_settings` rejects such a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.errors import UserError
from components.nested import deep_merge

__all__ = [
    "ORCHESTRATOR_SETTINGS_KEY",
    "K8sSettings",
    "PreflightSettings",
    "load_k8s_settings",
    "apply_k8s_settings",
    "expand_env",
]

#: Settings key of the Kubernetes orchestrator flavor (``<component type>.<flavor>``).
ORCHESTRATOR_SETTINGS_KEY = "orchestrator.kubernetes"

_TOP_KEYS = {"namespace", "orchestrator", "docker", "common", "profiles", "default_profile", "steps", "kubeflow",
             "preflight"}
# The Kubeflow orchestrator's own keys (pipelines/kubeflow.py); profiles and docker are shared.
_KUBEFLOW_KEYS = {"user_namespace", "env_keys"}
# Pod-settings fields a profile may set; everything else belongs in ``common``.
_PROFILE_KEYS = {"node_selectors", "tolerations", "resources", "affinity", "volumes", "volume_mounts", "annotations"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: Mapping[str, str] | None = None, where: str = "") -> Any:
    """Expand ``${NAME}`` / ``${NAME:-default}`` in every string of a YAML tree.

    Raises:
        UserError: a ``${NAME}`` without default whose variable is unset.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: expand_env(v, environ, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def _sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ and environ[name] != "":
            return environ[name]
        if default is None:
            raise UserError(f"{where}: environment variable {name} is not set")
        return default

    return _ENV_REF.sub(_sub, value)


def _check_k8s_model(data: Any, class_name: str, where: str) -> None:
    """Strictly deserialize into the kubernetes client model (camelCase keys, known fields)."""
    from zenml.integrations.kubernetes import serialization_utils

    try:
        serialization_utils.deserialize_kubernetes_model(data, class_name)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where}: not a valid {class_name}: {exc} (Kubernetes field names are camelCase)") from exc


def _pod_settings(data: dict[str, Any], where: str) -> Any:
    """Validate a pod-settings dict into ``KubernetesPodSettings``."""
    from pydantic import ValidationError
    from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings

    for i, tol in enumerate(data.get("tolerations", [])):
        _check_k8s_model(tol, "V1Toleration", f"{where}.tolerations[{i}]")
    if data.get("resources"):
        _check_k8s_model(data["resources"], "V1ResourceRequirements", f"{where}.resources")
    for key, cls in (("volumes", "V1Volume"), ("volume_mounts", "V1VolumeMount"),
                     ("env", "V1EnvVar"), ("env_from", "V1EnvFromSource")):
        for i, item in enumerate(data.get(key, [])):
            _check_k8s_model(item, cls, f"{where}.{key}[{i}]")
    if data.get("container_security_context"):
        # zenml 0.98 add_pod_settings merges these camelCase keys into the container's
        # snake_case to_dict(): the pod gets both spellings. Pod level works.
        raise UserError(f"{where}.container_security_context: not rendered correctly by zenml 0.98; "
                        "use additional_pod_spec_args.security_context (pod level)")
    sc = (data.get("additional_pod_spec_args") or {}).get("security_context")
    if sc is not None:
        _check_k8s_model(sc, "V1PodSecurityContext", f"{where}.additional_pod_spec_args.security_context")
    try:
        return KubernetesPodSettings(**data)
    except ValidationError as exc:
        raise UserError(f"{where}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc


@dataclass(frozen=True)
class PreflightSettings:
    """The ``preflight`` section: what ``diffexplainer k8s preflight`` checks beyond the pod settings.

    URLs are as seen from where the command runs (an ingress, not the in-cluster Service name).

    Attributes:
        tracking_uri: http(s) URL of the MLflow tracking server ("" = not configured: a failed check).
        artifact_store: ``s3://bucket/prefix`` (checked with boto3 ``head_bucket``) or an http(s) URL
            (checked with a GET); "" = not configured.
        s3_endpoint_url: S3 endpoint for a non-AWS store (MinIO, ...); "" = boto3's default.
        secrets: Secrets to check besides those the pod settings reference (``env_from``, ``env``,
            ``image_pull_secrets``), e.g. the MLflow database Secret.
        image_pull_secret: the registry Secret the service account lists under ``imagePullSecrets``;
            "" = none (nodes pull with their own credentials).
        min_gpu_nodes: how many schedulable nodes must each fit the largest GPU step.
        timeout_s: connect / read timeout of every request.
    """

    tracking_uri: str = ""
    artifact_store: str = ""
    s3_endpoint_url: str = ""
    secrets: tuple[str, ...] = ()
    image_pull_secret: str = ""
    min_gpu_nodes: int = 1
    timeout_s: float = 5.0


def _preflight_settings(raw: Any, where: str) -> PreflightSettings:
    """Validate the ``preflight`` section (absent: all defaults).

    Raises:
        UserError: unknown keys or wrong types. URL schemes are judged by the preflight itself
            (a failed check): the section is loaded with every ``configs/k8s-*.yaml``, and
            ``MLFLOW_TRACKING_URI`` is the local SQLite store where no server is exported.
    """
    if raw is None:
        return PreflightSettings()
    if not isinstance(raw, dict):
        raise UserError(f"{where}: preflight: expected a mapping")
    known = set(PreflightSettings.__dataclass_fields__)
    if set(raw) - known:
        raise UserError(f"{where}: preflight: unknown key(s) {sorted(set(raw) - known)}; allowed {sorted(known)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "secrets":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise UserError(f"{where}: preflight.secrets: expected a list of Secret names")
            out[key] = tuple(value)
        elif key in ("min_gpu_nodes", "timeout_s"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
                    key == "min_gpu_nodes" and not isinstance(value, int)):
                raise UserError(f"{where}: preflight.{key}: expected a positive "
                                f"{'integer' if key == 'min_gpu_nodes' else 'number'}, got {value!r}")
            out[key] = value
        else:
            out[key] = "" if value is None else str(value).strip()
    return PreflightSettings(**out)


@dataclass(frozen=True)
class K8sSettings:
    """A loaded ``configs/k8s-*.yaml``.

    Attributes:
        namespace: namespace the orchestrator's stack component should use.
        orchestrator: pipeline-level ``KubernetesOrchestratorSettings``.
        docker: ``DockerSettings`` (parent image) or None.
        step_pods: effective ``KubernetesPodSettings`` per configured step id.
        default_pod: effective pod settings of every step not named in ``steps``.
        step_profiles: step id -> profile name.
        kubeflow: the ``kubeflow`` section (``user_namespace``, ``env_keys``: Secret / ConfigMap
            name -> keys exposed as env vars, since KFP has no ``envFrom``).
        preflight: the ``preflight`` section (:class:`PreflightSettings`).
    """

    namespace: str
    orchestrator: Any
    docker: Any
    default_pod: Any
    step_pods: dict[str, Any] = field(default_factory=dict)
    step_profiles: dict[str, str] = field(default_factory=dict)
    kubeflow: dict[str, Any] = field(default_factory=dict)
    preflight: PreflightSettings = field(default_factory=PreflightSettings)

    def pipeline_settings(self) -> dict[str, Any]:
        """``settings=`` for ``pipeline.with_options``."""
        out: dict[str, Any] = {ORCHESTRATOR_SETTINGS_KEY: self.orchestrator}
        if self.docker is not None:
            out["docker"] = self.docker
        return out

    def step_settings(self) -> dict[str, dict[str, Any]]:
        """``steps=`` for ``pipeline.with_options``: pod settings of steps off the default profile."""
        return {
            step: {"settings": {ORCHESTRATOR_SETTINGS_KEY: {"pod_settings": pod.model_dump(exclude_defaults=True)}}}
            for step, pod in self.step_pods.items()
        }

    def pod_settings_for(self, step: str) -> Any:
        """The pod settings a step's pod ends up with after ZenML merges step over pipeline."""
        from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings

        if step not in self.step_pods:
            return self.default_pod
        merged = deep_merge(self.default_pod.model_dump(), self.step_pods[step].model_dump(exclude_defaults=True))
        return KubernetesPodSettings(**merged)


def _missing_keys(default: dict[str, Any], profile: dict[str, Any], prefix: str = "") -> list[str]:
    """Dict keys of ``default`` that ``profile`` does not name (they would leak in the merge)."""
    out = []
    for key, value in default.items():
        if key not in profile:
            out.append(prefix + key)
        elif isinstance(value, dict) and isinstance(profile[key], dict):
            out += _missing_keys(value, profile[key], f"{prefix}{key}.")
    return out


def load_k8s_settings(path: str | Path, env: dict[str, str] | None = None) -> K8sSettings:
    """Load and validate a ``configs/k8s-*.yaml`` file.

    Raises:
        UserError: unreadable file, unknown keys or profiles, invalid Kubernetes fields, or a
            profile whose merge over the default profile would inherit the default's values.
    """
    from pydantic import ValidationError
    from zenml.config import DockerSettings
    from zenml.integrations.kubernetes.flavors import KubernetesOrchestratorSettings

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
    raw = expand_env(raw, env, where=path.name)

    profiles: dict[str, dict[str, Any]] = raw.get("profiles") or {}
    default_name = raw.get("default_profile", "cpu")
    if default_name not in profiles:
        raise UserError(f"{path}: default_profile {default_name!r} is not one of profiles {sorted(profiles)}")
    for name, prof in profiles.items():
        bad = set(prof or {}) - _PROFILE_KEYS
        if bad:
            raise UserError(f"{path}: profiles.{name}: unknown key(s) {sorted(bad)}; allowed {sorted(_PROFILE_KEYS)}")
    common = raw.get("common") or {}
    effective = {name: deep_merge(common, prof or {}) for name, prof in profiles.items()}
    pods = {name: _pod_settings(data, f"{path.name}: profiles.{name}") for name, data in effective.items()}

    default_dump = profiles[default_name] or {}
    for name, prof in profiles.items():
        leaks = [k for k in _missing_keys({k: default_dump.get(k) for k in ("node_selectors", "resources")
                                            if isinstance(default_dump.get(k), dict)}, prof or {})]
        if leaks:
            raise UserError(f"{path}: profiles.{name} must also set {leaks} (else it inherits the "
                            f"{default_name!r} values when ZenML merges step over pipeline settings)")

    step_profiles: dict[str, str] = dict(raw.get("steps") or {})
    for step, prof_name in step_profiles.items():
        if prof_name not in profiles:
            raise UserError(f"{path}: steps.{step}: unknown profile {prof_name!r}; profiles are {sorted(profiles)}")

    orch = dict(raw.get("orchestrator") or {})
    if "pod_settings" in orch:
        raise UserError(f"{path}: orchestrator.pod_settings: use profiles/default_profile instead")
    if "orchestrator_pod_settings" in orch:
        orch["orchestrator_pod_settings"] = _pod_settings(
            deep_merge({k: v for k, v in common.items() if k != "labels"}, orch["orchestrator_pod_settings"]),
            f"{path.name}: orchestrator.orchestrator_pod_settings",
        )
    try:
        orchestrator = KubernetesOrchestratorSettings(**orch, pod_settings=pods[default_name])
        docker = DockerSettings(**raw["docker"]) if raw.get("docker") else None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc

    kubeflow = dict(raw.get("kubeflow") or {})
    bad_kf = set(kubeflow) - _KUBEFLOW_KEYS
    env_keys = kubeflow.get("env_keys") or {}
    if bad_kf or not isinstance(env_keys, dict) or not all(
            isinstance(v, list) and all(isinstance(k, str) for k in v) for v in env_keys.values()):
        raise UserError(f"{path}: kubeflow: allowed keys {sorted(_KUBEFLOW_KEYS)}; env_keys maps a Secret or "
                        "ConfigMap name to a list of its keys")
    return K8sSettings(
        kubeflow=kubeflow,
        namespace=str(raw.get("namespace") or "default"),
        orchestrator=orchestrator,
        docker=docker,
        default_pod=pods[default_name],
        step_pods={s: pods[p] for s, p in step_profiles.items() if p != default_name},
        step_profiles=step_profiles,
        preflight=_preflight_settings(raw.get("preflight"), path.name),
    )


def apply_k8s_settings(pipeline: Any, path: str | Path) -> Any:
    """``pipeline.with_options(...)`` with the orchestrator, docker and per-step pod settings.

    Steps named in the file but absent from the pipeline are ignored by ZenML (a warning),
    so one file serves the training, swap-classifier and explain pipelines.
    """
    settings = load_k8s_settings(path)
    return pipeline.with_options(settings=settings.pipeline_settings(), steps=settings.step_settings())


def with_k8s_settings(pipeline: Any, path: str | Path | None = None) -> Any:
    """``pipeline`` with the settings of ``path`` (or ``$DIFFEXPLAINER_K8S_SETTINGS``) applied;
    unchanged when neither is given (the embedded local default). On a stack whose orchestrator
    is the ``diffexplainer_kubeflow`` flavor the same file gives Kubeflow settings."""
    path = path or os.environ.get("DIFFEXPLAINER_K8S_SETTINGS")
    if not path:
        return pipeline
    from zenml.client import Client

    if Client().active_stack.orchestrator.flavor == "diffexplainer_kubeflow":
        from pipelines.kubeflow import apply_kubeflow_settings

        return apply_kubeflow_settings(pipeline, path)
    return apply_k8s_settings(pipeline, path)
