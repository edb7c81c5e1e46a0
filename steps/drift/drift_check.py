"""ZenML step: drift of the incoming training cohort against the champion's, first in every training run.

The champion DiffAE encodes the freshly ingested cohort; its latents are compared with the
champion's own training cohort's cached latents (:func:`components.drift.check.check_cohort_drift`;
this step only finds the champion in the registry and records the result). The result sits
beside the Great Expectations data-quality verdict in MLflow (run ``drift-check``), the ZenML
run metadata, ``WORKDIR/drift/drift.json`` and the report. ``drift.on_drift`` decides what a
drifted cohort triggers; the step's ``drift_action`` output (``retrain`` / ``agent_only``) is
what the DiffAE step reads. A plain string: equal actions keep the DiffAE step's cache key,
so an unchanged cohort still reuses every cached artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import log_metadata, step

from components.artifacts import DatasetRef
from components.config import DriftConfig
from components.drift.check import check_cohort_drift
from components.errors import UserError
from registry.loaders import champion_diffae
from steps.logs import progress_logger
from steps.tracking import log_dict_artifact, step_run

__all__ = ["DriftAlert", "drift_check_step", "drift_alert_since", "drift_report_step"]

logger = progress_logger(__name__)


class DriftAlert(UserError):
    """A drifted cohort with ``drift.on_drift: alert``: the run stops before any training."""


@step(enable_cache=False)  # depends on the registry's champion, like the gate steps
def drift_check_step(
    dataset: DatasetRef, validation: dict, drift_config: dict, diffae_model_name: str, workdir: str, experiment: str,
) -> tuple[Annotated[dict, "drift"], Annotated[str, "drift_action"]]:
    """Record the cohort's drift and data quality; raise :class:`DriftAlert` when configured to.

    Returns:
        ``drift``: the record of :func:`~components.drift.check.check_cohort_drift` plus
        ``validation_success`` (the Great Expectations verdict), a free-form dict
        (:mod:`components.artifacts`); ``drift_action``: ``retrain`` or ``agent_only``.
    """
    cfg = DriftConfig.model_validate(drift_config)
    champion = champion_diffae(diffae_model_name) if cfg.enabled else None
    rec = check_cohort_drift(dataset, cfg, champion, Path(workdir))
    rec["validation_success"] = validation.get("success", rec.get("validation_success"))
    with step_run(experiment, "drift-check", tags={"stage": "drift", "dataset_hash": dataset.hash,
                                                    "drift": str(rec["drift"]).lower(), "drift_status": rec["status"],
                                                    "drift_action": rec["action"]}):
        if rec["status"] == "tested":
            mlflow.log_metrics({"drift_statistic": rec["statistic"], "drift_p_value": rec["p_value"],
                                **{f"drift_slice{s['slice']}_p_value": s["p_value"] for s in rec["per_slice"]},
                                **{f"drift_slice{s['slice']}_statistic": s["statistic"] for s in rec["per_slice"]}})
            if (rec.get("acquisition") or {}).get("status") == "tested":
                mlflow.log_metric("drift_acquisition_p_value", rec["acquisition"]["p_value"])
        log_dict_artifact(rec, "drift.json")
    out = Path(workdir) / "drift"
    if rec["action"] == "alert":
        rec["message"] = (f"drift alert: cohort {dataset.hash[:20]}... drifted from the champion's training cohort "
                          f"(energy distance {rec['statistic']:.4g}, p={rec['p_value']:.3g} < {cfg.alpha}); "
                          f"drift.on_drift is 'alert': nothing was trained (record: {out / 'drift.json'})")
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(rec, indent=2))
    log_metadata({"drift": rec})
    logger.info(f"[drift] {rec['status']}: drift={rec['drift']} p={rec.get('p_value')} -> {rec['action']}")
    acq = rec.get("acquisition") or {}
    if acq.get("drift"):
        logger.info(f"[drift] acquisition changed (p={acq['p_value']:.3g}): {', '.join(acq['changed'])}; the latent "
                    f"test decides the action")
    if rec["action"] == "alert":
        raise DriftAlert(rec["message"])
    return rec, rec["action"]


def drift_alert_since(workdir: str | Path, since: float) -> str | None:
    """The alert message of a drift check written at or after ``since`` (epoch s), else None.

    ZenML reports a failed step as ``RuntimeError("Pipeline run has failed ...")``; the caller
    uses this to turn a drift alert back into its one-line reason.
    """
    path = Path(workdir) / "drift" / "drift.json"
    if not path.is_file() or path.stat().st_mtime < since:
        return None
    rec = json.loads(path.read_text())
    return rec.get("message") if rec.get("action") == "alert" else None


@step(enable_cache=False)
def drift_report_step(drift: dict, workdir: str) -> None:
    """Add the drift record as the ``drift`` section of ``WORKDIR/report`` (metrics.json + HTML)."""
    from components.report.cohort import add_report_sections

    add_report_sections(workdir, drift=drift)
