"""The drift check that opens every training run: the new cohort against the champion's.

The champion DiffAE encodes the freshly ingested cohort; its latents are compared with the
champion's own training cohort's cached latents (:func:`components.drift.latent.latent_drift`),
and the cohorts' acquisition tables are compared beside it (reported, never the trigger). The
registry lookup is the caller's (``steps/drift/drift_check.py``): it passes the champion in as a
:class:`ChampionDiffAE`, or None when there is none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.artifacts import DatasetRef
from components.blackbox import state_hash
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

__all__ = ["ChampionDiffAE", "check_cohort_drift"]


@dataclass(frozen=True)
class ChampionDiffAE:
    """The registered champion DiffAE a drift check compares against.

    Attributes:
        version: its registry version.
        dataset_hash: hash of the cohort it was trained on (its ``dataset_hash`` tag; ``""`` if none).
        workdir: the workdir of the run that trained it (its ``workdir`` tag), where its cached
            latents and dataset folder may still be; None if not recorded.
        load: loads its weights; called only when the cohorts differ and a test is needed.
    """

    version: str
    dataset_hash: str
    workdir: str | None
    load: Callable[[], DiffAE]


def check_cohort_drift(current: DatasetRef, cfg: DriftConfig, champion: ChampionDiffAE | None,
                       workdir: Path) -> dict[str, Any]:
    """Drift record of the ingested cohort ``current``.

    Args:
        current: the ingest step's reference of the new training cohort.
        cfg: the ``drift`` config (enabled, alpha, permutations, seed, on_drift).
        champion: the champion DiffAE, or None when the registry has none (first run).
        workdir: this run's workdir; its ``drift/reference/`` keeps each cohort's acquisition
            table (and reference latents) for later runs, which overwrite ``datasets/``.

    Returns:
        ``status``: ``disabled``, ``no_champion`` (first run), ``unchanged`` (same dataset hash as
        the champion's: no test needed), ``no_reference`` (the champion's training latents are
        nowhere on disk) or ``tested``; ``action``: ``retrain`` unless a tested cohort drifted,
        then ``cfg.on_drift``; with a test, its statistic, p-value, per-slice rows and the
        acquisition test (free-form evidence, written as is to drift.json and MLflow).
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
    if champion is None:
        return {**rec, "status": "no_champion"}
    ref_hash = champion.dataset_hash
    rec.update(reference_hash=ref_hash, champion_version=champion.version)
    if ref_hash == current.hash:
        return {**rec, "status": "unchanged", "statistic": 0.0, "p_value": 1.0,
                "n_reference": current.patients_ok, "n_current": current.patients_ok}
    model = champion.load()
    sha = state_hash(model)
    workdirs = [Path(p) for p in (champion.workdir, str(workdir)) if p]
    rec["acquisition"] = _acquisition(current, cfg, keep, workdirs, ref_hash)
    q_ref, found = reference_latents(keep, [w / "latents" for w in workdirs], ref_hash, sha)
    if q_ref is None:
        return {**rec, "status": "no_reference",
                "reason": f"no cached latents of {ref_hash} under DiffAE v{champion.version}'s weights"}
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
