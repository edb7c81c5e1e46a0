"""ZenML step: train the default black box (MONAI DenseNet) and score it on the external cohort."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
import torch
from zenml import log_metadata, step

from components.artifacts import DatasetRef, TeacherRef
from components.config import TeacherConfig
from components.data.dataset import load_dataset
from components.training.train_teacher import evaluate_teacher, train_teacher
from steps.logs import progress_logger
from steps.tracking import log_dict_artifact, step_run

__all__ = ["train_teacher_step"]

logger = progress_logger(__name__)


@step
def train_teacher_step(
    dataset: DatasetRef, external: DatasetRef, teacher_config: dict, workdir: str, experiment: str
) -> Annotated[TeacherRef, "teacher"]:
    """Patient-level CV on the training cohort; metrics of the selected model on the external one.

    Returns:
        The :class:`~components.artifacts.TeacherRef`; its file is a ``torch.save``d module
        satisfying the black-box contract (DESIGN.md §3).
    """
    cfg = TeacherConfig.model_validate(teacher_config)
    ds = load_dataset(dataset.path)
    ext = load_dataset(external.path)
    with step_run(experiment, "train-teacher", tags={"stage": "teacher", "dataset_hash": ds.hash,
                  "external_dataset_hash": ext.hash}, params={"teacher": teacher_config}) as run:
        model, metrics = train_teacher(
            np.asarray(ds.images), ds.labels, ds.folds, cfg,
            progress=lambda frac, msg: logger.info(f"[teacher {100 * frac:5.1f}%] {msg}"),
            log_metrics=lambda m, s: mlflow.log_metrics({k: float(v) for k, v in m.items()}, step=s),
        )
        ext_metrics = evaluate_teacher(model, np.asarray(ext.images), ext.labels)
        mlflow.log_metrics({f"cv_{k}": float(v) for k, v in metrics["cv_mean"].items()})
        mlflow.log_metrics({f"external_{k}": float(v) for k, v in ext_metrics.items()})
        log_dict_artifact(metrics, "teacher_metrics.json")
        path = Path(workdir) / "models" / "teacher.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model, path)
    result = TeacherRef(path=str(path), run_id=run.info.run_id, dataset_hash=ds.hash, cv_mean=metrics["cv_mean"],
                        external=ext_metrics, seconds=metrics.get("seconds"))
    log_metadata({"teacher": {"cv_mean": metrics["cv_mean"], "external": ext_metrics}})
    return result
