"""A UserError raised inside a pipeline step reaches the user as the CLI's one `error:` line, exit 2;
a bug in a step still ends with its traceback and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# `diffexplainer train` as the console script runs it, with the training pipeline replaced by a
# one-step pipeline of the same signature whose step fails (after the pre-flight checks pass)
_PROBE = """
import sys
from pipelines.env import configure_local_state
configure_local_state()
from zenml import pipeline, step
import pipelines.training
from components.errors import UserError
from pipelines.cli import main

KIND, COHORT = sys.argv[1], sys.argv[2]

@step(enable_cache=False)
def failing(kind: str) -> int:
    if kind == "user":
        raise UserError("labels.csv: patient ID00007 has mortality_1y 'maybe'")
    raise ValueError("a bug inside a step")

@pipeline(name="probe_training", enable_cache=False)
def probe_training(config: dict, train_source: str, train_labels: str, external_source: str,
                   external_labels: str, train_fingerprint: str = "", external_fingerprint: str = "") -> None:
    failing(kind=KIND)

pipelines.training.training_pipeline = probe_training
labels = COHORT + "/labels.csv"
sys.exit(main(["train", "--source", COHORT, "--labels", labels, "--external-source", COHORT,
               "--external-labels", labels, "--workdir", "work"]))
"""


@pytest.mark.parametrize("kind", ["user", "bug"])
def test_a_step_user_error_is_one_line_and_a_bug_keeps_its_traceback(tmp_path: Path, kind: str) -> None:
    cohort = tmp_path / "cohort"
    (cohort / "ID00007").mkdir(parents=True)
    (cohort / "ID00007" / "1.dcm").write_bytes(b"\0" * 132)
    (cohort / "labels.csv").write_text("Patient,mortality_1y\nID00007,maybe\n")
    (tmp_path / "probe_run.py").write_text(_PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_")}
    env.update(PYTHONPATH=str(ROOT), DIFFEXPLAINER_HOME=str(tmp_path / "state"),
               ZENML_CONFIG_PATH=str(tmp_path / "state" / "zenml"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
    proc = subprocess.run([sys.executable, "probe_run.py", kind, str(cohort)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    both = proc.stdout + proc.stderr
    if kind == "user":
        assert proc.returncode == 2, both[-3000:]
        assert proc.stderr.splitlines() == ["error: labels.csv: patient ID00007 has mortality_1y 'maybe'"], both[-3000:]
        assert "Traceback" not in both
    else:
        assert proc.returncode == 1, both[-3000:]
        assert "Traceback" in proc.stderr and "ValueError: a bug inside a step" in both
        assert not any(line.startswith("error: ") for line in proc.stderr.splitlines())
