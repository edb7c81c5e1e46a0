"""ZenML steps that resolve what a new black box reuses: the dataset folders and the registered
DiffAE; and the reference of the black box itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

from zenml import step

from components.artifacts import DatasetRef, DiffAERef, TeacherRef
from components.errors import UserError
from registry.loaders import fetch_registered_diffae
from steps.logs import progress_logger

__all__ = ["dataset_ref_step", "fetch_diffae_step", "classifier_ref_step"]

logger = progress_logger(__name__)


@step(enable_cache=False)
def dataset_ref_step(path: str, cohort: str) -> Annotated[DatasetRef, "dataset"]:
    """Reference an already ingested dataset folder (as the ingest step would return it)."""
    if not (Path(path) / "dataset.json").is_file():
        raise UserError(f"{path}: no ingested {cohort} dataset (run `diffexplainer train` or `demo` first)")
    return DatasetRef.read(path, cohort)


@step(enable_cache=False)
def fetch_diffae_step(model_name: str, spec: str, out_path: str, dataset: DatasetRef) -> Annotated[DiffAERef, "diffae"]:
    """Load the registered DiffAE (never retrained here) and check it matches the dataset."""
    ref = fetch_registered_diffae(model_name, spec, Path(out_path))
    if ref.dataset_hash and ref.dataset_hash != dataset.hash:
        raise UserError(
            f"registered DiffAE {model_name} v{ref.registered_version} was trained on dataset {ref.dataset_hash}, "
            f"but {dataset.path} holds {dataset.hash}"
        )
    logger.info(f"[swap] reusing DiffAE {model_name} v{ref.registered_version} (weights sha256 {ref.sha256[:12]})")
    return dataclasses.replace(ref, stage_wall_s=0.0)


@step(enable_cache=False)
def classifier_ref_step(classifier: str, head_name: str | None = None) -> Annotated[TeacherRef, "teacher"]:
    """The swapped-in black box (``--classifier``, ``--head-name``) as the teacher reference."""
    return TeacherRef(path=classifier, head_name=head_name)
