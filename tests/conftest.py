"""Test-session isolation: ZenML and MLflow state in a temporary folder, telemetry off."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Must happen before anything imports zenml (it reads its config path at import time).
_STATE = Path(tempfile.mkdtemp(prefix="diffexplainer-test-state-"))
os.environ["DIFFEXPLAINER_HOME"] = str(_STATE)
os.environ["ZENML_CONFIG_PATH"] = str(_STATE / "zenml")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_STATE / 'mlflow.db'}"
os.environ.setdefault("OMP_NUM_THREADS", "2")

from pipelines.env import configure_local_state  # noqa: E402

configure_local_state()


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    """Remove the session's temporary ZenML / MLflow state."""
    import shutil

    shutil.rmtree(_STATE, ignore_errors=True)
