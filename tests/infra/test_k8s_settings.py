"""configs/k8s-*.yaml -> ZenML Kubernetes settings -> the pods ZenML would create (offline)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from infra_common import K8S, ROOT, by_kind, render, validate

from components.errors import UserError
from pipelines.compile import step_pod_manifest
from pipelines.k8s import ORCHESTRATOR_SETTINGS_KEY, load_k8s_settings

PROD = ROOT / "configs" / "k8s-prod.yaml"
DEV = ROOT / "configs" / "k8s-dev.yaml"
GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _step_ids() -> set[str]:
    """Step invocation ids of the pipelines: ``id=`` if given, else the step function's name."""
    ids = set()
    for path in (ROOT / "pipelines").glob("*.py"):
        imported = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("steps."):
                imported |= {a.asname or a.name for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
                given = [k.value.value for k in node.keywords
                         if k.arg == "id" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)]
                ids |= set(given) or {node.func.id}
    return ids


def _pod(settings, step: str) -> dict:
    """The step pod exactly as ZenML 0.98's Kubernetes orchestrator builds it (what `compile` writes)."""
    return step_pod_manifest(settings, step, settings.docker.parent_image)


@pytest.fixture(scope="module")
def prod():
    return load_k8s_settings(PROD)


def test_configured_steps_exist_in_the_pipelines(prod):
    ids = _step_ids()
    assert {"train_diffae_step", "ingest_osic", "register_models_step"} <= ids
    for path in (PROD, DEV):
        assert set(load_k8s_settings(path).step_profiles) <= ids, path


def test_diffae_step_pod_on_the_gpu_pool(prod):
    pod = _pod(prod, "train_diffae_step")
    validate(pod)
    spec, main = pod["spec"], pod["spec"]["containers"][0]
    assert spec["nodeSelector"] == {"diffexplainer.io/node-pool": "gpu"}
    assert spec["tolerations"] == [GPU]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert main["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert spec["serviceAccountName"] == "diffexplainer-pipeline"
    assert {"configMapRef": {"name": "diffexplainer-settings"}} in main["envFrom"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in main["volumeMounts"]
    assert spec["securityContext"]["runAsNonRoot"] is True and main["securityContext"] == {"privileged": False}
    assert pod["metadata"]["labels"]["diffexplainer.io/environment"] == "prod"


@pytest.mark.parametrize("step", ["ingest_osic", "distill_agent_step", "register_models_step"])
def test_light_steps_on_cpu(prod, step):
    pod = _pod(prod, step)
    validate(pod)
    assert pod["spec"]["nodeSelector"] == {"diffexplainer.io/node-pool": "cpu"}
    assert not pod["spec"].get("tolerations")
    res = pod["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in res["limits"] and "nvidia.com/gpu" not in res["requests"]


def test_zenml_merge_of_step_over_pipeline_settings_keeps_the_gpu_profile(prod):
    """What ZenML does at compile time (deep merge step over pipeline) leaves no CPU values."""
    from zenml.config.step_configurations import _apply_pipeline_configuration

    pipeline_level = {"settings": {k: v.model_dump() for k, v in prod.pipeline_settings().items()}}
    step_level = prod.step_settings()["train_diffae_step"]
    merged = _apply_pipeline_configuration(step_level, pipeline_level)
    pod_settings = merged["settings"][ORCHESTRATOR_SETTINGS_KEY]["pod_settings"]
    assert pod_settings["resources"] == prod.pod_settings_for("train_diffae_step").resources
    assert pod_settings["node_selectors"] == {"diffexplainer.io/node-pool": "gpu"}


def test_schedule_renders_a_valid_cron_job(prod):
    from kubernetes.client import ApiClient
    from zenml.integrations.kubernetes import manifest_utils as mu

    orch = prod.orchestrator.model_copy(update={"pod_settings": prod.orchestrator.orchestrator_pod_settings})
    pod = mu.build_pod_manifest(pod_name=None, image_name=prod.docker.parent_image, command=["python"],
                                args=["-m", "zenml"], privileged=False, pod_settings=orch.pod_settings,
                                service_account_name=orch.service_account_name)
    job = mu.build_job_manifest(job_name="training-orchestrator", pod_template=mu.pod_template_manifest_from_pod(pod),
                                backoff_limit=orch.orchestrator_job_backoff_limit,
                                ttl_seconds_after_finished=orch.ttl_seconds_after_finished)
    cron = mu.build_cron_job_manifest(
        job_template=mu.job_template_manifest_from_job(job), cron_expression="0 3 * * 1",
        successful_jobs_history_limit=orch.successful_jobs_history_limit,
        failed_jobs_history_limit=orch.failed_jobs_history_limit,
        concurrency_policy=orch.concurrency_policy, starting_deadline_seconds=orch.starting_deadline_seconds,
    )
    obj = ApiClient().sanitize_for_serialization(cron)
    validate(obj)
    assert obj["spec"]["concurrencyPolicy"] == "Forbid"
    assert obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["nodeSelector"] == {"diffexplainer.io/node-pool": "cpu"}


@pytest.mark.parametrize("overlay,config", [("dev", DEV), ("prod", PROD)])
def test_cluster_gpu_template_matches_the_config(overlay, config):
    settings = load_k8s_settings(config)
    gpu = settings.pod_settings_for("train_diffae_step")
    objs = render(K8S / "overlays" / overlay)
    tpl = by_kind(objs, "PodTemplate", "diffexplainer-gpu-step")[0]["template"]["spec"]
    assert tpl["nodeSelector"] == gpu.node_selectors
    assert tpl["tolerations"] == gpu.tolerations
    assert tpl["containers"][0]["resources"] == gpu.resources
    assert tpl["serviceAccountName"] == settings.orchestrator.service_account_name
    assert settings.namespace == by_kind(objs, "Namespace")[0]["metadata"]["name"]
    cm = by_kind(objs, "ConfigMap", "diffexplainer-settings")[0]
    refs = {e.get("configMapRef", {}).get("name") for e in gpu.env_from}
    assert cm["metadata"]["name"] in refs


def test_dev_trains_only_diffae_on_gpu():
    dev = load_k8s_settings(DEV)
    assert dev.step_profiles == {"train_diffae_step": "gpu"}
    assert "nvidia.com/gpu" not in dev.pod_settings_for("train_teacher_step").resources["limits"]


def test_docker_settings_use_the_project_image(prod, monkeypatch):
    assert prod.docker.install_stack_requirements is False and prod.docker.skip_build is True
    monkeypatch.setenv("DIFFEXPLAINER_IMAGE", "reg.example/diffexplainer:abc")
    assert load_k8s_settings(PROD).docker.parent_image == "reg.example/diffexplainer:abc"


def test_with_options_accepts_the_settings(prod):
    from zenml import pipeline, step

    @step
    def train_diffae_step() -> int:
        return 1

    @pipeline
    def tiny() -> None:
        train_diffae_step()

    configured = tiny.with_options(settings=prod.pipeline_settings(), steps=prod.step_settings())
    assert ORCHESTRATOR_SETTINGS_KEY in configured.configuration.settings


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(PROD.read_text())
    mutate(raw)
    path = tmp_path / "k8s-bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r["profiles"]["gpu"]["resources"]["limits"].pop("cpu"), "must also set"),
    (lambda r: r["profiles"]["gpu"]["tolerations"][0].update(toleration_seconds=5), "camelCase"),
    (lambda r: r["steps"].update(train_teacher_step="tpu"), "unknown profile"),
    (lambda r: r.update(replicas=3), "unknown key"),
    (lambda r: r["profiles"]["gpu"].update(env=[]), "unknown key"),
    (lambda r: r["orchestrator"].update(max_parallelism=0), "max_parallelism"),
    (lambda r: r["docker"].update(parent_image="${NO_SUCH_VARIABLE_HERE}"), "NO_SUCH_VARIABLE_HERE"),
    (lambda r: r["common"].update(container_security_context={"runAsNonRoot": True}), "pod level"),
])
def test_bad_files_are_rejected_with_the_reason(tmp_path, mutate, message):
    with pytest.raises(UserError, match=message):
        load_k8s_settings(_write(tmp_path, mutate))
