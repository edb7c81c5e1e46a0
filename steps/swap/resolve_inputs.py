"""ZenML steps that resolve what a new black box reuses: the dataset folders and the registered DiffAE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from zenml import step

from components.errors import UserError
from registry.loaders import fetch_registered_diffae

__all__ = ["dataset_ref_step", "fetch_diffae_step"]


@step(enable_cache=False)
def dataset_ref_step(path: str, cohort: str) -> Annotated[dict, "dataset"]:
    """Reference an already ingested dataset folder (as the ingest step would return it)."""
    meta = Path(path) / "dataset.json"
    if not meta.is_file():
        raise UserError(f"{path}: no ingested {cohort} dataset (run `diffexplainer train` or `demo` first)")
    info = json.loads(meta.read_text())
    return {"path": str(Path(path).resolve()), "cohort": cohort, "hash": info["hash"],
            "patients_ok": info["counts"]["patients_ok"], "patients_quarantined": info["counts"]["patients_quarantined"],
            "wall_s": 0.0}


@step(enable_cache=False)
def fetch_diffae_step(model_name: str, spec: str, out_path: str, dataset: dict) -> Annotated[dict, "diffae"]:
    """Load the registered DiffAE (never retrained here) and check it matches the dataset."""
    ref = fetch_registered_diffae(model_name, spec, Path(out_path))
    if ref["dataset_hash"] and ref["dataset_hash"] != dataset["hash"]:
        raise UserError(
            f"registered DiffAE {model_name} v{ref['version']} was trained on dataset {ref['dataset_hash']}, "
            f"but {dataset['path']} holds {dataset['hash']}"
        )
    print(f"[swap] reusing DiffAE {model_name} v{ref['version']} (weights sha256 {ref['sha256'][:12]})", flush=True)
    return {**ref, "stage_wall_s": 0.0}
