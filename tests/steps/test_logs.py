"""Steps' progress lines are log records that still reach the console of a ZenML run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# a one-step pipeline whose step logs through a real step module's logger, run the way the
# CLI runs pipelines: the project's local state with ZenML's verbosity at WARN (pipelines/env.py)
_PROBE = """
from pipelines.env import configure_local_state
configure_local_state()
import logging
from zenml import pipeline, step
from steps.ingest.ingest_cohort import logger

@step(enable_cache=False)
def probe() -> int:
    logger.info("[probe] a progress line from inside a step")
    logging.getLogger("zenml.probe").info("zenml chatter at INFO")
    return 1

@pipeline(enable_cache=False)
def probe_pipeline() -> None:
    probe()

assert logging.getLogger().getEffectiveLevel() == logging.WARNING
probe_pipeline()
"""


def test_step_progress_lines_show_on_the_console_at_the_cli_verbosity(tmp_path: Path) -> None:
    (tmp_path / "probe_run.py").write_text(_PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_LOGGING")}
    env.update(PYTHONPATH=str(ROOT), DIFFEXPLAINER_HOME=str(tmp_path / "state"),
               ZENML_CONFIG_PATH=str(tmp_path / "state" / "zenml"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
    proc = subprocess.run([sys.executable, "probe_run.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any("[probe] a progress line from inside a step" in line for line in lines), proc.stdout[-3000:]
    assert not any("zenml chatter" in line for line in lines)  # ZenML's own INFO stays hidden
