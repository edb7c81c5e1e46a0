"""`diffexplainer compile`: the paper preset's pod manifests and KFP v2 spec, offline, checked.

The Kubernetes manifests pass strict schema validation; the KFP spec is parsed back with kfp's
own protos (unknown fields are errors) and checked step by step: image, resources (the GPU on
the GPU steps), node pool, toleration, environment from the ConfigMap and the S3 Secret. The
checkers are shown to fail on a spec with the GPU request, the image or the secret removed.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml
from infra_common import K8S, ROOT, validate

from components.config import load_config
from pipelines.cli import main
from pipelines.compile import PLACEHOLDER_INPUTS, compile_kubernetes, training_step_ids
from pipelines.k8s import load_k8s_settings

PAPER = ROOT / "configs" / "paper.yaml"
PROD = ROOT / "configs" / "k8s-prod.yaml"
GPU_STEPS = {"train_diffae_step", "train_teacher_step", "encode_latents_step", "reconstruction_gate_step",
             "evaluate_counterfactuals_step"}
S3_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@pytest.fixture(scope="module")
def steps() -> list[str]:
    return training_step_ids(load_config(PAPER), PLACEHOLDER_INPUTS)


@pytest.fixture(scope="module")
def settings():
    return load_k8s_settings(PROD)


# ---------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, dict]]:
    out = compile_kubernetes(load_config(PAPER), PROD, tmp_path_factory.mktemp("k8s"))
    return out, {step: yaml.safe_load(Path(f).read_text()) for step, f in out["steps"].items()}


def check_pod(pod: dict, step: str, image: str) -> None:
    """What a step pod must carry (raises AssertionError)."""
    validate(pod)
    spec, main_c = pod["spec"], pod["spec"]["containers"][0]
    assert main_c["image"] == image
    assert {"secretRef": {"name": "diffexplainer-s3"}} in main_c["envFrom"]
    assert {"configMapRef": {"name": "diffexplainer-settings"}} in main_c["envFrom"]
    gpu = step in GPU_STEPS
    assert spec["nodeSelector"] == {"diffexplainer.io/node-pool": "gpu" if gpu else "cpu"}
    limits = main_c["resources"]["limits"]
    assert (limits.get("nvidia.com/gpu") == "1") == gpu, step
    assert any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations") or []) == gpu, step
    assert step in main_c["args"]


def test_kubernetes_pods_for_every_step_validate(pods, steps, settings) -> None:
    out, docs = pods
    assert list(docs) == steps and {"drift_check", "train_diffae_step", "register_models_step"} <= set(steps)
    for step, pod in docs.items():
        check_pod(pod, step, settings.docker.parent_image)
        assert pod["metadata"]["namespace"] == "diffexplainer-prod"
    # compile time is a benchmark target (benchmarks/compile.py, `make bench-compile`), not asserted here


@pytest.mark.parametrize("damage", ["gpu", "image", "secret"])
def test_pod_checker_catches_a_missing_gpu_image_or_secret(pods, settings, damage: str) -> None:
    pod = copy.deepcopy(pods[1]["train_diffae_step"])
    c = pod["spec"]["containers"][0]
    if damage == "gpu":
        c["resources"]["limits"].pop("nvidia.com/gpu")
    elif damage == "image":
        c["image"] = "python:3.11"
    else:
        c["envFrom"] = [e for e in c["envFrom"] if "secretRef" not in e]
    with pytest.raises(AssertionError):
        check_pod(pod, "train_diffae_step", settings.docker.parent_image)


# ---------------------------------------------------------------- Kubeflow


def _kfp_name(step: str) -> str:
    return step.replace("_", "-")


@pytest.fixture(scope="module")
def kfp_spec(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, float, dict]:
    pytest.importorskip("kfp.kubernetes", reason="needs the kubeflow extra (make test installs it)")
    out = tmp_path_factory.mktemp("kfp")
    t0 = time.perf_counter()
    rc = main(["compile", "--orchestrator", "kubeflow", "--config", str(PAPER), "--out", str(out),
               "--cron", "0 3 * * 1"])
    wall = time.perf_counter() - t0
    assert rc == 0
    docs = list(yaml.safe_load_all((out / "kubeflow" / "training.yaml").read_text()))
    assert len(docs) == 2, "pipeline spec + kubernetes platform spec"
    schedule = json.loads((out / "kubeflow" / "training.schedule.json").read_text())
    return docs[0], docs[1], wall, schedule


def _configmap_keys() -> set[str]:
    return set(yaml.safe_load((K8S / "base" / "configmap.yaml").read_text())["data"])


def check_kfp(spec: dict, platform: dict, steps: list[str], image: str) -> None:
    """Parse with kfp's protos and check every step's task (raises AssertionError / ParseError)."""
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as kpb
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    parsed = json_format.ParseDict(spec, pb.PipelineSpec())  # unknown fields raise
    tasks = parsed.root.dag.tasks
    assert set(tasks) == {_kfp_name(s) for s in steps}
    assert "drift-check" in tasks["train-diffae-step"].dependent_tasks
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    deployment = json_format.MessageToDict(parsed.deployment_spec)
    for step in steps:
        name = _kfp_name(step)
        executor = tasks[name].component_ref.name.replace("comp-", "exec-", 1)
        container = deployment["executors"][executor]["container"]
        assert container["image"] == image
        assert "--step_name" in container["args"] and step in container["args"]
        res = container.get("resources", {})
        gpu = step in GPU_STEPS
        assert (res.get("accelerator", {}).get("resourceType") == "nvidia.com/gpu") == gpu, step
        if gpu:
            assert res["accelerator"]["resourceCount"] == "1"
            assert res["resourceMemoryRequest"] == "48Gi"
        else:
            assert res["resourceCpuRequest"] == "2" and res["resourceMemoryLimit"] == "8Gi"
        assert any(e["name"] == "ZENML_STORE_URL" for e in container["env"])
        k8s = json_format.ParseDict(executors[executor], kpb.KubernetesExecutorConfig())
        assert dict(k8s.node_selector.labels) == {"diffexplainer.io/node-pool": "gpu" if gpu else "cpu"}
        assert any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule" for t in k8s.tolerations) == gpu
        secrets = {s.secret_name: {m.secret_key for m in s.key_to_env} for s in k8s.secret_as_env}
        assert secrets == {"diffexplainer-s3": S3_KEYS}
        maps = {c.config_map_name: {m.config_map_key for m in c.key_to_env} for c in k8s.config_map_as_env}
        assert maps == {"diffexplainer-settings": _configmap_keys()}
        assert dict(k8s.pod_metadata.labels)["diffexplainer.io/environment"] == "prod"
        assert k8s.security_context.run_as_user == 10001 and k8s.security_context.run_as_non_root
        assert [m.mount_path for m in k8s.empty_dir_mounts] == (["/dev/shm"] if gpu else [])


def test_kubeflow_spec_loads_with_kfp_and_has_every_step(kfp_spec, steps, settings) -> None:
    spec, platform, wall, _ = kfp_spec
    check_kfp(spec, platform, steps, settings.docker.parent_image)
    from kfp.components import load_component_from_text

    component = load_component_from_text(yaml.safe_dump(spec))  # kfp's own loader
    assert component.pipeline_spec.root.dag.tasks["drift-check"].task_info.name == "drift_check"
    print(json.dumps({"kubeflow_compile_wall_s": round(wall, 1)}))


@pytest.mark.parametrize("damage", ["gpu", "image", "secret"])
def test_kfp_checker_catches_a_missing_gpu_image_or_secret(kfp_spec, steps, settings, damage: str) -> None:
    spec, platform = copy.deepcopy(kfp_spec[0]), copy.deepcopy(kfp_spec[1])
    executor = "exec-train-diffae-step"
    if damage == "gpu":
        spec["deploymentSpec"]["executors"][executor]["container"]["resources"].pop("accelerator")
    elif damage == "image":
        spec["deploymentSpec"]["executors"][executor]["container"]["image"] = "python:3.11"
    else:
        platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor].pop("secretAsEnv")
    with pytest.raises(AssertionError):
        check_kfp(spec, platform, steps, settings.docker.parent_image)


def test_kubeflow_schedule_goes_through_zenml_to_a_recurring_run(kfp_spec) -> None:
    """`--cron` runs the pipeline with a ZenML Schedule, as `schedule --orchestrator kubeflow` does;
    the orchestrator's recurring-run arguments are recorded instead of sent."""
    schedule = kfp_spec[3]
    run = schedule["recurring_run"]
    assert run["cron_expression"] == "0 3 * * 1" and run["experiment"] == "training"
    assert run["namespace"] == "diffexplainer-prod" and run["no_catchup"] is True
    assert [s["cron_expression"] for s in schedule["zenml_schedules"]] == ["0 3 * * 1"]


def test_schedule_refuses_a_stack_without_the_requested_orchestrator(capsys) -> None:
    argv = ["schedule", "--cron", "0 3 * * 1", "--source", "s", "--labels", "l", "--external-source", "e",
            "--external-labels", "el"]
    assert main([*argv, "--orchestrator", "kubeflow"]) == 2  # the test store's stack is local
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not support schedules" in err[0]
    assert main([*argv[:1], "--cron", "0 3 * *", *argv[3:]]) == 2
    assert "expected 5 fields" in capsys.readouterr().err


def test_configmap_keys_match_the_kubeflow_env_keys(settings) -> None:
    """KFP maps ConfigMap keys one by one: a key added to the ConfigMap must be listed too."""
    for path in (PROD, ROOT / "configs" / "k8s-dev.yaml"):
        keys = load_k8s_settings(path).kubeflow["env_keys"]
        assert set(keys["diffexplainer-settings"]) == _configmap_keys()
        assert set(keys["diffexplainer-s3"]) == S3_KEYS


def test_compile_kubeflow_without_the_extra_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    import builtins

    real = builtins.__import__

    def no_kfp(name, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "kfp" or name.startswith("kfp."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_kfp)
    assert main(["compile", "--orchestrator", "kubeflow", "--config", str(PAPER), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kubeflow extra" in err[0]
