"""The one decision path of every promotion gate: MLflow's model-validation API on bounds.

:mod:`components.gates` turns per-case measurements into evidence (points, one-sided lower
bounds, floors, non-inferiority bounds against the champion). This adapter hands each bound to
``mlflow.validate_evaluation_results`` as a ``MetricThreshold`` (greater is better; the floor,
or ``-delta`` for a non-inferiority bound) and reads back the verdict; MLflow logs nothing on a
failure, so the verdicts are recorded here: in the returned :class:`GateResult` and in the
decision record written at registration (:func:`decision_record`).
"""

from __future__ import annotations

import logging
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import mlflow
from mlflow.models import MetricThreshold
from mlflow.models.evaluation import EvaluationResult
from mlflow.models.evaluation.validation import ModelValidationFailedException

from components.gates import GateEvidence, GateResult, finalize_gate

__all__ = ["decide", "decision_record", "library_versions"]

_LIBRARIES = ("mlflow", "scipy", "scikit-learn", "numpy", "torch", "zenml")


def _validate_one(name: str, value: float | None, floor: float) -> bool:
    """One bound through MLflow's validation: True when it clears ``floor``."""
    metrics = {} if value is None else {name: float(value)}  # absent -> MLflow reports it missing
    thresholds = {name: MetricThreshold(threshold=float(floor), greater_is_better=True)}
    log = logging.getLogger("mlflow.models.evaluation.validation")
    level = log.level
    log.setLevel(logging.WARNING)  # two INFO lines per bound otherwise; the verdicts are recorded by us
    try:
        mlflow.validate_evaluation_results(thresholds, EvaluationResult(metrics=metrics, artifacts={}))
    except ModelValidationFailedException:
        return False
    finally:
        log.setLevel(level)
    return True


def decide(evidence: GateEvidence) -> GateResult:
    """Decide a gate on its evidence with MLflow's validation API (one call per bound).

    Each bound is validated on its own so that the record names every failing metric;
    the gate passes only when all of them pass.
    """
    values, floors = evidence.validation_inputs()
    verdicts = {key: _validate_one(key, values.get(key), floor) for key, floor in floors.items()}
    return finalize_gate(evidence, verdicts)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a decision depends on (recorded for audits)."""
    out = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def decision_record(
    gates: list[GateResult],
    cohort_hashes: dict[str, str],
    champion_versions: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The decision record of one candidate: what was decided, on what, and how.

    Args:
        gates: the decided gates (with their evidence).
        cohort_hashes: dataset hashes of the cohorts the evidence was measured on.
        champion_versions: model name -> champion version compared against (None: no champion).

    Returns:
        ``{verdict, failing, method, bootstrap, thresholds, gates, champion_versions,
        cohort_hashes, library_versions, decided_at}``; ``failing`` lists ``gate.metric``.
    """
    failing = [f"{g.name}.{m}" for g in gates for m in g.failing]
    bootstrap = next(((g.evidence or {}).get("bootstrap") for g in gates if g.evidence), None)
    thresholds = {g.name: {c["metric"]: c["threshold"] for c in g.checks} for g in gates}
    return {
        "verdict": "pass" if gates and all(g.passed for g in gates) else "fail",
        "failing": failing,
        "method": "one-sided bootstrap lower bounds (scipy.stats.bootstrap, paired over cases) decided by "
                  "mlflow.validate_evaluation_results with MetricThreshold(greater_is_better=True)",
        "bootstrap": bootstrap,
        "thresholds": thresholds,
        "gates": {g.name: g.to_dict() for g in gates},
        "champion_versions": dict(champion_versions or {}),
        "cohort_hashes": dict(cohort_hashes),
        "library_versions": library_versions(),
        "decided_at": datetime.now(UTC).isoformat(),
    }
