"""The embedded default environment: ZenML and MLflow state in a project-local folder.

Nothing is written to the user's home. Call :func:`configure_local_state` before the first
``import zenml`` (ZenML reads ``ZENML_CONFIG_PATH`` at import time). Values the user already
exported win, so a production shell pointing at a ZenML server / remote MLflow keeps them.

Layout under the state root (default ``./.diffexplainer/state``, or ``$DIFFEXPLAINER_HOME``)::

    zenml/            ZenML global config, SQLite store, local artifact store
    mlflow.db         MLflow tracking + registry (SQLite)
    mlartifacts/      MLflow artifact root
    audit.jsonl       append-only promotion audit log
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["state_root", "configure_local_state", "mlflow_tracking_uri", "mlflow_artifact_root"]


def state_root() -> Path:
    """The project-local state folder (created on demand)."""
    root = Path(os.environ.get("DIFFEXPLAINER_HOME", ".diffexplainer/state")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def mlflow_tracking_uri() -> str:
    """MLflow tracking URI: ``$MLFLOW_TRACKING_URI`` or the project-local SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state_root() / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    """Default artifact location for experiments created on the local store."""
    return (state_root() / "mlartifacts").as_uri()


def configure_local_state() -> Path:
    """Point ZenML and MLflow at the project-local folder and switch telemetry off.

    Returns:
        The state root.
    """
    root = state_root()
    os.environ.setdefault("ZENML_CONFIG_PATH", str(root / "zenml"))
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("MLFLOW_TRACKING_URI", mlflow_tracking_uri())
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("AUTOGRAPH_VERBOSITY", "0")
    return root
