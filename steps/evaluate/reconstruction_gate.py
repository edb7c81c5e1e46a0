"""ZenML step: the reconstruction gate on held-out slices of both cohorts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
from zenml import log_metadata, step

from steps.registry.loaders import load_classifier
from components.config import GateConfig
from components.data.dataset import load_dataset
from components.gates import reconstruction_gate
from components.metrics.reconstruction_eval import evaluate_reconstruction
from components.models.diffae import load_diffae
from components.report.figures import plot_reconstructions
from steps.tracking import log_dict_artifact, step_run

__all__ = ["reconstruction_gate_step"]


@step
def reconstruction_gate_step(
    diffae: dict,
    teacher: dict,
    dataset: dict,
    external: dict,
    gate_config: dict,
    ddim_steps: int,
    experiment: str,
) -> Annotated[dict, "reconstruction_gate"]:
    """PSNR/SSIM (windowed image mapped to [0,1]) and teacher agreement of DDIM-inversion
    reconstructions; gated on the external cohort, the training cohort's held-out fold reported.

    Returns:
        the gate dict (name, passed, checks, message) plus the measured values per cohort.
    """
    gcfg = GateConfig.model_validate(gate_config)
    model = load_diffae(diffae["path"])
    bb = load_classifier(teacher["path"])
    ds, ext = load_dataset(dataset["path"]), load_dataset(external["path"])
    holdout = diffae.get("holdout_fold", -1)
    with step_run(experiment, "reconstruction-gate", tags={"stage": "reconstruction_gate", "dataset_hash": ds.hash,
                  "external_dataset_hash": ext.hash}) as _:
        per_cohort = {"external": evaluate_reconstruction(model, bb, np.asarray(ext.images), ddim_steps,
                                                          keep_samples=4)}
        originals, recons = per_cohort["external"].pop("samples")
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_reconstructions(originals, recons, Path(tmp) / "reconstructions.png",
                                       title=f"external cohort, DDIM inversion, {ddim_steps} steps")
            mlflow.log_artifact(str(png))
        if holdout >= 0 and (np.asarray(ds.folds) == holdout).any():
            per_cohort["osic_holdout"] = evaluate_reconstruction(
                model, bb, np.asarray(ds.images)[np.asarray(ds.folds) == holdout], ddim_steps)
        values = per_cohort["external"]
        gate = reconstruction_gate(values, gcfg)
        for cohort, vals in per_cohort.items():
            mlflow.log_metrics({f"{cohort}_{k}": float(v) for k, v in vals.items()})
        mlflow.log_metric("gate_reconstruction_passed", float(gate.passed))
        result = {**gate.to_dict(), "values": per_cohort, "ddim_steps": ddim_steps,
                  "window_hu": list(gcfg.psnr_window_hu), "range": "[0, 1]"}
        log_dict_artifact(result, "reconstruction_gate.json")
    print(f"[gate] {gate.message}", flush=True)
    log_metadata({"reconstruction_gate": result})
    return result
