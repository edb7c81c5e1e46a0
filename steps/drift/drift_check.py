"""ZenML step: drift of the incoming training cohort against the champion's, first in every training run.

The champion DiffAE encodes the freshly ingested cohort; its latents are compared with the
champion's own training cohort's cached latents (:mod:`components.drift`). The result sits
beside the Great Expectations data-quality verdict in MLflow (run ``drift-check``), the ZenML
run metadata, ``WORKDIR/drift/drift.json`` and the report. ``drift.on_drift`` decides what a
drifted cohort triggers; the step's ``drift_action`` output (``retrain`` / ``agent_only``) is
what the DiffAE step reads. A plain string: equal actions keep the DiffAE step's cache key,
so an unchanged cohort still reuses every cached artifact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, cast

import mlflow
from zenml import log_metadata, step

from components.artifacts import DatasetRef
from components.config import DriftConfig
from components.drift.acquisition import acquisition_drift
from components.drift.cohort import (
    cohort_latents,
    dataset_acquisition,
    keep_acquisition,
    reference_acquisition,
    reference_latents,
)
from components.drift.latent import latent_drift
from components.errors import UserError
from components.models.diffae import DiffAE
from registry.loaders import load_registered, registered_version, weights_sha256
from steps.tracking import log_dict_artifact, step_run

__all__ = ["DriftAlert", "check_cohort_drift", "drift_check_step", "drift_alert_since", "drift_report_step"]


class DriftAlert(UserError):
    """A drifted cohort with ``drift.on_drift: alert``: the run stops before any training."""


def check_cohort_drift(current: DatasetRef, cfg: DriftConfig, diffae_model_name: str, workdir: Path) -> dict[str, Any]:
    """Drift record of the ingested cohort ``current`` (the ingest step's dataset reference).

    ``status``: ``disabled``, ``no_champion`` (first run), ``unchanged`` (same dataset hash as
    the champion's: no test needed), ``no_reference`` (the champion's training latents are
    nowhere on disk) or ``tested``; ``action``: ``retrain`` unless a tested cohort drifted, then
    ``cfg.on_drift``.
    """
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"current_hash": current.hash, "validation_success": current.validation_success,
                           "on_drift": cfg.on_drift, "alpha": cfg.alpha, "action": "retrain", "drift": False}
    if not cfg.enabled:
        return {**rec, "status": "disabled"}
    keep = workdir / "drift" / "reference"
    try:  # this cohort's acquisition table, for a later run's reference (the dataset folder is re-ingested)
        keep_acquisition(keep, current.path, current.hash)
    except (UserError, OSError, ValueError) as exc:
        rec["acquisition_kept"] = f"not kept: {exc}"
    try:
        mv = registered_version(diffae_model_name, "champion")
    except UserError:
        return {**rec, "status": "no_champion"}
    ref_hash = mv.tags.get("dataset_hash", "")
    rec.update(reference_hash=ref_hash, champion_version=str(mv.version))
    if ref_hash == current.hash:
        return {**rec, "status": "unchanged", "statistic": 0.0, "p_value": 1.0,
                "n_reference": current.patients_ok, "n_current": current.patients_ok}
    model = cast(DiffAE, load_registered(diffae_model_name, str(mv.version))[0])  # registered as a DiffAE
    sha = weights_sha256(model)
    workdirs = [Path(p) for p in (mv.tags.get("workdir"), str(workdir)) if p]
    rec["acquisition"] = _acquisition(current, cfg, keep, workdirs, ref_hash)
    q_ref, found = reference_latents(keep, [w / "latents" for w in workdirs], ref_hash, sha)
    if q_ref is None:
        return {**rec, "status": "no_reference",
                "reason": f"no cached latents of {ref_hash} under DiffAE v{mv.version}'s weights"}
    q_cur, _ = cohort_latents(model, current.path, sha)
    report = latent_drift(q_ref, q_cur, alpha=cfg.alpha, n_permutations=cfg.n_permutations, seed=cfg.seed)
    action = cfg.on_drift if report.drift else "retrain"
    return {**rec, **report.to_dict(), "status": "tested", "action": action, "reference_latents": found,
            "seconds_total": round(time.perf_counter() - t0, 3)}


def _acquisition(current: DatasetRef, cfg: DriftConfig, keep: Path, workdirs: list[Path], ref_hash: str) -> dict:
    """The acquisition test (reported beside the latent one, never the trigger; its failure is recorded)."""
    ref, found = reference_acquisition(keep, workdirs, ref_hash)
    if ref is None:
        return {"status": "no_reference", "reason": f"no acquisition table of the champion's cohort {ref_hash[:20]}... "
                "(kept by the run that ingested it, or its dataset folder)"}
    try:
        res = acquisition_drift(ref, dataset_acquisition(current.path), alpha=cfg.alpha)
    except (UserError, ValueError) as exc:
        return {"status": "not_tested", "reason": str(exc)}
    if not res.fields:
        return {"status": "not_tested", "reason": "no acquisition field to compare", "skipped": res.skipped}
    return {"status": "tested", **res.to_dict(), "changed": res.changed(), "reference": found}


@step(enable_cache=False)  # depends on the registry's champion, like the gate steps
def drift_check_step(
    dataset: DatasetRef, validation: dict, drift_config: dict, diffae_model_name: str, workdir: str, experiment: str,
) -> tuple[Annotated[dict, "drift"], Annotated[str, "drift_action"]]:
    """Record the cohort's drift and data quality; raise :class:`DriftAlert` when configured to.

    Returns:
        ``drift``: the record of :func:`check_cohort_drift` plus ``validation_success`` (the
        Great Expectations verdict), a free-form dict (:mod:`components.artifacts`);
        ``drift_action``: ``retrain`` or ``agent_only``.
    """
    cfg = DriftConfig.model_validate(drift_config)
    rec = check_cohort_drift(dataset, cfg, diffae_model_name, Path(workdir))
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
    print(f"[drift] {rec['status']}: drift={rec['drift']} p={rec.get('p_value')} -> {rec['action']}", flush=True)
    acq = rec.get("acquisition") or {}
    if acq.get("drift"):
        print(f"[drift] acquisition changed (p={acq['p_value']:.3g}): {', '.join(acq['changed'])}; the latent "
              f"test decides the action", flush=True)
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
