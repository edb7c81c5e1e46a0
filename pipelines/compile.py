"""``diffexplainer compile``: what would be submitted to a cluster, written offline.

* ``kubernetes``: one Pod manifest per step of the training pipeline (and the orchestrator
  pod), built by ZenML 0.98's own ``build_pod_manifest`` from ``configs/k8s-*.yaml`` exactly as
  its Kubernetes orchestrator builds them, serialised by the kubernetes client.
* ``kubeflow``: the KFP v2 pipeline spec YAML that ZenML's Kubeflow orchestrator (our
  ``diffexplainer_kubeflow`` flavor) compiles with ``kfp.compiler.Compiler`` for the training
  pipeline. The run happens in a child process on a throw-away ZenML store (a temporary
  ``ZENML_CONFIG_PATH`` with a stack: that orchestrator in compile-only mode, a container
  registry, the local artifact store), so the user's store is untouched and nothing is uploaded.

The step commands carry a placeholder snapshot id (a real submission gets the server's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from components.config import ExperimentConfig
from components.errors import UserError

__all__ = ["PLACEHOLDER_INPUTS", "training_step_ids", "step_pod_manifest", "compile_kubernetes", "compile_kubeflow"]

#: Pipeline inputs used when none are given (the spec only carries them as parameters).
PLACEHOLDER_INPUTS = {
    "train_source": "s3://diffexplainer-data/osic", "train_labels": "s3://diffexplainer-data/osic/labels.csv",
    "external_source": "s3://diffexplainer-data/external",
    "external_labels": "s3://diffexplainer-data/external/labels.csv",
}
_PLACEHOLDER_SNAPSHOT = "00000000-0000-0000-0000-000000000000"
_STEP_ENTRYPOINT = ["python", "-m", "zenml.entrypoints.step_entrypoint"]


def training_step_ids(cfg: ExperimentConfig, inputs: dict[str, str]) -> list[str]:
    """Step invocation ids of the training pipeline, in order (ZenML's own composition, no stack)."""
    from pipelines.training import training_pipeline

    pipe = training_pipeline.copy()
    pipe.prepare(config=cfg.model_dump(mode="json"), **inputs)
    return list(pipe.invocations)


def step_pod_manifest(settings: Any, step: str, image: str, snapshot_id: str = _PLACEHOLDER_SNAPSHOT) -> dict:
    """The step's Pod as ZenML 0.98's Kubernetes orchestrator builds it (a JSON-ready dict)."""
    from kubernetes.client import ApiClient
    from zenml.integrations.kubernetes import kube_utils
    from zenml.integrations.kubernetes.manifest_utils import build_pod_manifest

    orch = settings.orchestrator.model_copy(update={"pod_settings": settings.pod_settings_for(step)})
    pod_settings = kube_utils.apply_default_resource_requests(memory="400Mi", pod_settings=orch.pod_settings)
    pod = build_pod_manifest(
        pod_name=f"training-{step.replace('_', '-')}", image_name=image, command=_STEP_ENTRYPOINT,
        args=["--entrypoint_config_source", "zenml.entrypoints.step_entrypoint_configuration.StepEntrypointConfiguration",
              "--step_name", step, "--snapshot_id", snapshot_id],
        env={}, privileged=orch.privileged, pod_settings=pod_settings,
        service_account_name=orch.step_pod_service_account_name or orch.service_account_name,
        termination_grace_period_seconds=orch.pod_stop_grace_period,
        labels={"app.kubernetes.io/component": step.replace("_", "-")},
    )
    doc = ApiClient().sanitize_for_serialization(pod)
    doc["metadata"]["namespace"] = settings.namespace
    return doc


def compile_kubernetes(cfg: ExperimentConfig, k8s_settings: str | Path, out: str | Path,
                       inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``OUT/kubernetes/<step>.yaml`` (one Pod per training step).

    Returns:
        {orchestrator, out, steps: {step: file}, seconds}.
    """
    from pipelines.k8s import load_k8s_settings

    t0 = time.perf_counter()
    settings = load_k8s_settings(k8s_settings)
    if settings.docker is None or not settings.docker.parent_image:
        raise UserError(f"{k8s_settings}: docker.parent_image (the step image) is required to compile")
    folder = Path(out) / "kubernetes"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for step in training_step_ids(cfg, inputs or PLACEHOLDER_INPUTS):
        path = folder / f"{step}.yaml"
        path.write_text(yaml.safe_dump(step_pod_manifest(settings, step, settings.docker.parent_image), sort_keys=False))
        files[step] = str(path)
    return {"orchestrator": "kubernetes", "out": str(folder), "steps": files,
            "seconds": round(time.perf_counter() - t0, 2)}


def compile_kubeflow(cfg: ExperimentConfig, k8s_settings: str | Path, out: str | Path,
                     inputs: dict[str, str] | None = None, cron: str | None = None,
                     timeout_s: float = 1200) -> dict[str, Any]:
    """Write ``OUT/kubeflow/training.yaml``: the KFP v2 pipeline spec, compiled through ZenML.

    With ``cron`` the pipeline is run with a ZenML ``Schedule`` as ``schedule`` does, and
    ``OUT/kubeflow/training.schedule.json`` records the recurring run the orchestrator would
    create (``create_recurring_run``'s arguments) plus the schedule ZenML registered.

    Raises:
        UserError: kfp is not installed (``pip install '.[kubeflow]'``), bad settings, the
            compile failed (its last line) or ran past ``timeout_s`` (a starved CPU: 45-60 s on
            two idle cores, minutes when they are shared).
    """
    try:
        import kfp  # noqa: F401
        import kfp.kubernetes  # noqa: F401
    except ImportError:
        raise UserError("compile --orchestrator kubeflow needs the kubeflow extra: pip install '.[kubeflow]'") from None
    from pipelines.k8s import load_k8s_settings

    load_k8s_settings(k8s_settings)  # one-line errors before the child starts
    if cron is not None:
        from pipelines.schedule import check_cron

        check_cron(cron)
    t0 = time.perf_counter()
    folder = (Path(out) / "kubeflow").resolve()
    job = {"config": cfg.model_dump(mode="json"), "k8s_settings": str(Path(k8s_settings).resolve()),
           "inputs": inputs or PLACEHOLDER_INPUTS, "out": str(folder), "cron": cron}
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="diffexplainer-kfp-") as tmp:
        env = {**os.environ, "ZENML_CONFIG_PATH": str(Path(tmp) / "zenml"), "DIFFEXPLAINER_HOME": str(Path(tmp) / "state"),
               "MLFLOW_TRACKING_URI": f"sqlite:///{Path(tmp) / 'mlflow.db'}", "ZENML_ANALYTICS_OPT_IN": "false",
               "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        env.pop("ZENML_STORE_URL", None)
        env.pop("ZENML_STORE_API_KEY", None)
        try:
            proc = subprocess.run([sys.executable, "-m", "pipelines.compile_kubeflow_job"], input=json.dumps(job),
                                  capture_output=True, text=True, env=env, cwd=tmp, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise UserError(f"kubeflow compile did not finish within {timeout_s:.0f} s (45-60 s on 2 idle cores)") from None
    spec = folder / "training.yaml"
    if proc.returncode != 0 or not spec.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"kubeflow compile failed: {last}")
    result = {"orchestrator": "kubeflow", "out": str(folder), "spec": str(spec),
              "seconds": round(time.perf_counter() - t0, 2)}
    if cron is not None:
        result["schedule"] = str(folder / "training.schedule.json")
    return result
