"""``diffexplainer drift``: two ingested cohorts compared in a DiffAE's latent space, no pipeline."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

from components.config import ExperimentConfig
from components.drift.acquisition import acquisition_drift
from components.drift.cohort import cohort_latents, dataset_acquisition
from components.drift.latent import latent_drift
from components.errors import UserError

__all__ = ["run_drift"]


def _load_model(cfg: ExperimentConfig, alias: str, diffae_path: str | None) -> tuple[Any, str]:
    """The DiffAE from a checkpoint file or the registry (``alias``), and where it came from."""
    from components.models.diffae import DiffAE, load_diffae

    if diffae_path:
        try:
            return load_diffae(diffae_path), str(Path(diffae_path))
        except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise UserError(f"--diffae {diffae_path}: not a DiffAE checkpoint ({type(exc).__name__})") from None
    import logging

    from registry.loaders import load_registered

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # a new store's set-up lines
    model, mv = load_registered(cfg.tracking.diffae_model_name, alias)
    if not isinstance(model, DiffAE):
        raise UserError(f"models:/{cfg.tracking.diffae_model_name}/{mv.version} is not a DiffAE")
    return model, f"models:/{cfg.tracking.diffae_model_name}/{mv.version}"


def run_drift(
    cfg: ExperimentConfig, reference: str, current: str, alias: str = "champion", diffae_path: str | None = None
) -> dict[str, Any]:
    """Encode both dataset folders (or read the pipeline's cached latents) and test for drift.

    Returns:
        the :class:`~components.drift.latent.DriftReport` fields (``drift`` is the latent test's
        verdict), ``acquisition`` (:func:`~components.drift.acquisition.acquisition_drift` of the
        two ``patients.csv`` tables, plus ``changed``: the fields that moved), ``diffae`` (its source),
        ``reference_cached`` / ``current_cached`` (latents read from the cache) and ``seconds``.

    Raises:
        UserError: a folder that is not an ingested dataset, no model at ``alias``, or image
            sizes the DiffAE was not trained for.
    """
    t0 = time.perf_counter()
    for name, path in (("--reference", reference), ("--current", current)):
        if not (Path(path) / "dataset.json").is_file():
            raise UserError(f"{name} {path}: not an ingested dataset folder (no dataset.json; see `diffexplainer ingest`)")
    model, source = _load_model(cfg, alias, diffae_path)
    q_ref, ref_cached = cohort_latents(model, reference)
    q_cur, cur_cached = cohort_latents(model, current)
    d = cfg.drift
    report = latent_drift(q_ref, q_cur, alpha=d.alpha, n_permutations=d.n_permutations, seed=d.seed)
    acquisition = acquisition_drift(dataset_acquisition(reference), dataset_acquisition(current), alpha=d.alpha)
    return {**report.to_dict(), "acquisition": {**acquisition.to_dict(), "changed": acquisition.changed()},
            "diffae": source, "reference_cached": ref_cached, "current_cached": cur_cached,
            "seconds_total": round(time.perf_counter() - t0, 3)}
