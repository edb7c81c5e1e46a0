"""Kubeflow Pipelines settings from the same ``configs/k8s-*.yaml`` as the Kubernetes orchestrator.

The profiles (GPU pool for the DiffAE, teacher, latent, gate and counterfactual steps; CPU
nodes for the rest), the docker image and the step map are shared; the ``kubeflow`` section
adds what only KFP needs (``user_namespace``, ``env_keys``). The settings are for the
``diffexplainer_kubeflow`` orchestrator flavor (:mod:`pipelines.kubeflow_orchestrator`), which
applies every pod setting; they are plain dicts, so this module imports without kfp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.k8s import K8sSettings, load_k8s_settings

__all__ = ["KUBEFLOW_SETTINGS_KEY", "kubeflow_settings", "apply_kubeflow_settings"]

#: Settings key of the flavor ``diffexplainer_kubeflow``.
KUBEFLOW_SETTINGS_KEY = "orchestrator.diffexplainer_kubeflow"


def kubeflow_settings(settings: K8sSettings) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(settings=, steps=)`` for ``pipeline.with_options`` on a Kubeflow stack."""
    kf = settings.kubeflow
    pipeline: dict[str, Any] = {KUBEFLOW_SETTINGS_KEY: {
        "pod": settings.default_pod.model_dump(exclude_defaults=True),  # not pod_settings: see the flavor
        "env_keys": kf.get("env_keys") or {},
        "user_namespace": kf.get("user_namespace") or settings.namespace,
        "synchronous": False,
    }}
    if settings.docker is not None:
        pipeline["docker"] = settings.docker
    steps = {step: {"settings": {KUBEFLOW_SETTINGS_KEY: {"pod": pod.model_dump(exclude_defaults=True)}}}
             for step, pod in settings.step_pods.items()}
    return pipeline, steps


def apply_kubeflow_settings(pipeline: Any, path: str | Path) -> Any:
    """``pipeline.with_options(...)`` with the Kubeflow settings of ``path``."""
    pipe_settings, step_settings = kubeflow_settings(load_k8s_settings(path))
    return pipeline.with_options(settings=pipe_settings, steps=step_settings)
