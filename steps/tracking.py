"""MLflow helpers shared by the steps: one MLflow run per step, tagged for lineage.

Every run carries the tags that the lineage command follows back: ``dataset_hash``,
``zenml_pipeline_run``, ``zenml_step``, ``git_commit``, ``preset``. MLflow is configured from
the environment (``pipelines.env.configure_local_state`` sets the project-local default).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlflow

from components.nested import flatten

__all__ = ["git_commit", "step_run", "log_dict_artifact", "ensure_experiment", "zenml_context_tags", "numeric_metrics"]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the code that runs (``unknown`` outside a git checkout); ``+dirty`` if modified."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("DIFFEXPLAINER_CODE_VERSION", "unknown")


def ensure_experiment(name: str) -> str:
    """Create (if needed) and select the experiment; returns its id."""
    from pipelines.env import mlflow_artifact_root

    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        uri = mlflow.get_tracking_uri()
        location = mlflow_artifact_root() if uri.startswith("sqlite:") else None
        exp_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def zenml_context_tags() -> dict[str, str]:
    """ZenML pipeline-run / step names when called inside a step, else empty."""
    try:
        from zenml import get_step_context

        ctx = get_step_context()
        return {
            "zenml_pipeline": ctx.pipeline.name,
            "zenml_pipeline_run": str(ctx.pipeline_run.id),
            "zenml_pipeline_run_name": ctx.pipeline_run.name,
            "zenml_step": ctx.step_run.name,
        }
    except Exception:  # noqa: BLE001 - outside a step there is no context
        return {}


@contextmanager
def step_run(
    experiment: str, run_name: str, tags: dict[str, str] | None = None, params: dict[str, Any] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Open an MLflow run for one step with lineage tags and flattened params."""
    ensure_experiment(experiment)
    all_tags = {"git_commit": git_commit(), **zenml_context_tags(), **(tags or {})}
    with mlflow.start_run(run_name=run_name, tags=all_tags) as run:
        if params:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
        yield run


def log_dict_artifact(data: dict[str, Any], name: str) -> None:
    """Log a JSON-serialisable dict as ``name`` in the active run."""
    mlflow.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), name)


def numeric_metrics(d: Mapping[str, Any], sep: str = "_") -> dict[str, float]:
    """The finite numbers of a nested dict as MLflow metrics, keys joined with ``sep``
    (``{"a": {"b": 1}} -> {"a_b": 1.0}``); booleans, None, strings, lists, nan and inf are left out."""
    return {k: float(v) for k, v in flatten(d, sep=sep).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
