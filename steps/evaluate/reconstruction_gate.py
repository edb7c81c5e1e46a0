"""ZenML step: the reconstruction gate on held-out slices of both cohorts."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
from zenml import log_metadata, step

from components.artifacts import DatasetRef, DiffAERef, TeacherRef
from components.caches import cached_reconstructions
from components.config import GateConfig
from components.data.dataset import load_dataset
from components.gates import reconstruction_evidence
from components.metrics.reconstruction_eval import (
    evaluate_reconstruction,
    gate_semantic_cases,
    score_reconstruction,
)
from components.models.diffae import load_diffae
from components.report.figures import plot_reconstructions
from registry.champion import champion_reconstruction
from registry.gate_decision import decide
from registry.loaders import load_teacher
from steps.logs import progress_logger
from steps.tracking import log_dict_artifact, step_run

__all__ = ["reconstruction_gate_step"]

logger = progress_logger(__name__)


# not cached: the decision depends on the registry's current champion, not only on the inputs
@step(enable_cache=False)
def reconstruction_gate_step(
    diffae: DiffAERef,
    teacher: TeacherRef,
    dataset: DatasetRef,
    external: DatasetRef,
    gate_config: dict,
    ddim_steps: int,
    experiment: str,
    cache_dir: str | None = None,
    champion_model: str | None = None,
) -> Annotated[dict, "reconstruction_gate"]:
    """PSNR/SSIM (windowed image mapped to [0,1]) and teacher agreement of DDIM-inversion
    reconstructions; gated on the external cohort's one-sided bootstrap lower bounds (and, when
    ``champion_model`` has a champion, non-inferiority to it on the same patients), the
    training cohort's held-out fold reported.

    The external cohort's reconstructions (and DDIM codes) are cached under ``cache_dir`` (see
    :func:`components.caches.cached_reconstructions`); only the black box's scoring is redone for
    a new one.

    Returns:
        the gate dict (name, passed, checks, message, evidence) plus the measured values per
        cohort and ``inversions`` ({path, reused, key fields}) for the counterfactual step: a
        plain dict on purpose, free-form evidence (:mod:`components.artifacts`).
    """
    t0 = time.time()
    gcfg = GateConfig.model_validate(gate_config)
    model = load_diffae(diffae.path)
    bb = load_teacher(teacher)
    ds, ext = load_dataset(dataset.path), load_dataset(external.path)
    holdout = diffae.holdout_fold
    with step_run(experiment, "reconstruction-gate", tags={"stage": "reconstruction_gate", "dataset_hash": ds.hash,
                  "external_dataset_hash": ext.hash}) as _:
        arrays, inversions = cached_reconstructions(
            model, np.asarray(ext.images), ext.hash, ddim_steps, cache_dir, say=logger.info,
            progress=lambda f, m: logger.info(f"[gate {100 * f:5.1f}%] external: {m}"))
        per_cohort = {"external": score_reconstruction(bb, np.asarray(ext.images), arrays["recon"], keep_samples=4)}
        originals, recons = per_cohort["external"].pop("samples")
        per_case = per_cohort["external"].pop("per_case")
        if gcfg.semantic_cases > 0:  # what z alone carries: the first patients decoded from a prior x_T
            logger.info(f"[gate] semantic reconstruction: {min(gcfg.semantic_cases, len(ext))} patients decoded from z "
                        "with x_T ~ N(0, I)")
            semantic = gate_semantic_cases(model, np.asarray(ext.images), arrays["q"], ddim_steps,
                                           gcfg.semantic_cases, gcfg.bootstrap_seed)
            per_case.update(semantic)
            per_cohort["external"].update({m: float(np.mean(v)) for m, v in semantic.items()})
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_reconstructions(originals, recons, Path(tmp) / "reconstructions.png",
                                       title=f"external cohort, DDIM inversion, {ddim_steps} steps")
            mlflow.log_artifact(str(png))
        if holdout >= 0 and (np.asarray(ds.folds) == holdout).any():
            per_cohort["osic_holdout"] = evaluate_reconstruction(
                model, bb, np.asarray(ds.images)[np.asarray(ds.folds) == holdout], ddim_steps)
            per_cohort["osic_holdout"].pop("per_case", None)
        champ = champion_reconstruction(champion_model, model, bb, np.asarray(ext.images), ddim_steps, per_case,
                                        gcfg.semantic_cases, gcfg.bootstrap_seed) if champion_model else None
        evidence = reconstruction_evidence(
            per_case, gcfg, champion_per_case=None if champ is None else champ.per_case,
            champion_version=None if champ is None else champ.version,
            champion_reason=None if champ is None else champ.reason)
        evidence.context.update(cohort="external", dataset_hash=ext.hash, ddim_steps=ddim_steps)
        gate = decide(evidence)
        for cohort, vals in per_cohort.items():
            mlflow.log_metrics({f"{cohort}_{k}": float(v) for k, v in vals.items()})
        mlflow.log_metrics({f"gate_{m}_lower": float(ev.lower) for m, ev in evidence.metrics.items()
                            if ev.lower is not None})
        mlflow.log_metric("gate_reconstruction_passed", float(gate.passed))
        result = {**gate.to_dict(), "values": per_cohort, "ddim_steps": ddim_steps, "inversions": inversions,
                  "window_hu": list(gcfg.psnr_window_hu), "range": "[0, 1]", "wall_s": time.time() - t0}
        log_dict_artifact(result, "reconstruction_gate.json")
    logger.info(f"[gate] {gate.message}")
    log_metadata({"reconstruction_gate": result})
    return result
