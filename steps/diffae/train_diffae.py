"""ZenML step: train (or reuse) the diffusion autoencoder on the training cohort."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
from zenml import log_metadata, step

from components.artifacts import DatasetRef, DiffAERef
from components.config import DiffAEConfig
from components.data.dataset import load_dataset
from components.models.diffae import save_diffae
from components.training.train_diffae import train_diffae
from registry.loaders import fetch_registered_diffae
from steps.logs import progress_logger
from steps.tracking import step_run

__all__ = ["train_diffae_step"]

logger = progress_logger(__name__)


@step
def train_diffae_step(
    dataset: DatasetRef,
    diffae_config: dict,
    workdir: str,
    experiment: str,
    holdout_fold: int = -1,
    drift_action: str = "retrain",
    champion_model: str = "",
) -> Annotated[DiffAERef, "diffae"]:
    """Train the DiffAE on every training-cohort slice except the held-out fold.

    ZenML caches this step on (dataset hash, config, ``drift_action``): an unchanged
    retraining reuses it. ``drift_action == "agent_only"`` (a drifted cohort with
    ``drift.on_drift: agent_only``) trains nothing: the registered champion ``champion_model``
    is returned instead (``registered_version`` set; registration then skips the DiffAE).

    Returns:
        The :class:`~components.artifacts.DiffAERef` (checkpoint path, MLflow run, training
        metrics).
    """
    if drift_action == "agent_only":
        ref = fetch_registered_diffae(champion_model, "champion", Path(workdir) / "models" / "diffae-champion.pt")
        logger.info(f"[diffae] drift action agent_only: reusing the champion DiffAE v{ref.registered_version}")
        return dataclasses.replace(ref, holdout_fold=holdout_fold)
    cfg = DiffAEConfig.model_validate(diffae_config)
    ds = load_dataset(dataset.path)
    keep = np.asarray(ds.folds) != holdout_fold if holdout_fold >= 0 else np.ones(len(ds.labels), bool)
    images = np.asarray(ds.images)[keep]
    out = Path(workdir) / "models"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with step_run(experiment, "train-diffae", tags={"stage": "diffae", "dataset_hash": ds.hash},
                  params={"diffae": diffae_config, "holdout_fold": holdout_fold}) as run:
        model, metrics = train_diffae(
            images,
            cfg,
            Path(workdir) / "checkpoints",
            progress=logger.info,
            log_metrics=lambda m, s: mlflow.log_metrics(m, step=s),
        )
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        scalars["stage_wall_s"] = time.time() - t0
        mlflow.log_metrics(scalars)
        path = out / "diffae.pt"
        save_diffae(model, path, extra={"dataset_hash": ds.hash, "metrics": scalars, "config": diffae_config})
    log_metadata({"diffae": scalars})
    return DiffAERef(path=str(path), run_id=run.info.run_id, dataset_hash=ds.hash, holdout_fold=holdout_fold,
                     stage_wall_s=scalars["stage_wall_s"], metrics=scalars)
