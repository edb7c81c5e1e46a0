"""Latents of an ingested dataset folder for a drift check, reusing the pipeline's latent cache.

The training pipeline writes ``WORKDIR/latents/{train,external}.npy`` with ``meta.json``
recording the DiffAE weights hash and both datasets' hashes
(``steps/agent/encode_latents.py``); a dataset folder at ``WORKDIR/datasets/<cohort>`` whose
hash and DiffAE match that record is not encoded again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from components.blackbox import state_hash
from components.data.dataset import load_dataset
from components.drift.acquisition import ACQUISITION_FIELDS
from components.errors import UserError
from components.models.diffae import DiffAE
from components.training.latents import encode_latents

__all__ = ["cached_latents", "cohort_latents", "reference_latents", "dataset_acquisition", "reference_acquisition",
           "keep_acquisition"]


def cached_latents(cache: Path, dataset_hash: str, diffae_sha256: str, n_rows: int | None = None) -> np.ndarray | None:
    """The pipeline's cached ``[N,4Z]`` latents (``cache`` = ``WORKDIR/latents``) of the dataset
    with ``dataset_hash`` for these DiffAE weights, or None."""
    try:
        meta = json.loads((cache / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("diffae_sha256") != diffae_sha256:
        return None
    for key, name in (("dataset_hash", "train"), ("external_hash", "external")):
        path = cache / f"{name}.npy"
        if meta.get(key) == dataset_hash and path.is_file():
            q = np.load(path)
            if n_rows is None or q.shape[0] == n_rows:
                return q
    return None


def cohort_latents(model: DiffAE, dataset_dir: str | Path, diffae_sha256: str | None = None) -> tuple[np.ndarray, bool]:
    """``[N,4Z]`` float32 latents of an ingested dataset folder.

    Args:
        model: the DiffAE (its image size must equal the dataset's).
        dataset_dir: an ``ingest --out`` folder.
        diffae_sha256: the model's weights hash when already known.

    Returns:
        (latents, True when read from the pipeline's cache).

    Raises:
        UserError: not a dataset folder, no usable patients, or an image size the DiffAE was
            not trained for.
    """
    root = Path(dataset_dir)
    ds = load_dataset(root)
    if len(ds) < 2:
        raise UserError(f"{root}: {len(ds)} usable patient(s); a drift test needs at least 2")
    size = int(ds.images.shape[-1])
    if model.config is not None and int(model.config.image_size) != size:
        raise UserError(f"{root}: images are {size} px, the DiffAE was trained on {model.config.image_size} px")
    sha = diffae_sha256 or state_hash(model)
    q = cached_latents(root.resolve().parent.parent / "latents", ds.hash, sha, len(ds))
    if q is not None:
        return q, True
    return encode_latents(model, ds.images), False


def reference_latents(
    keep_dir: Path, search: list[Path], dataset_hash: str, diffae_sha256: str
) -> tuple[np.ndarray | None, str]:
    """The training cohort's latents under these DiffAE weights, without the cohort's images.

    Looks in ``keep_dir`` (a copy this function keeps, so a later run that overwrites the
    pipeline's latent cache does not lose them), then in each ``WORKDIR/latents`` of
    ``search``; a hit found in a cache is copied to ``keep_dir``.

    Returns:
        (``[N,4Z]`` latents or None, where they were found or ``""``).
    """
    name = f"{diffae_sha256[:16]}-{dataset_hash.removeprefix('sha256:')[:16]}.npy"
    kept = keep_dir / name
    if kept.is_file():
        return np.load(kept), str(kept)
    for cache in search:
        q = cached_latents(cache, dataset_hash, diffae_sha256)
        if q is not None:
            keep_dir.mkdir(parents=True, exist_ok=True)
            np.save(kept, q)
            return q, str(cache)
    return None, ""


def dataset_acquisition(dataset_dir: str | Path) -> pd.DataFrame:
    """The acquisition fields (and ``status``) of an ingested dataset folder's ``patients.csv``;
    patient identifiers are not kept.

    Raises:
        UserError: the folder has no ``patients.csv``.
    """
    path = Path(dataset_dir) / "patients.csv"
    if not path.is_file():
        raise UserError(f"{dataset_dir}: no patients.csv (not an ingested dataset folder)")
    table = pd.read_csv(path)
    return table[[c for c in ("status", *ACQUISITION_FIELDS) if c in table.columns]]


def reference_acquisition(keep_dir: Path, workdirs: list[Path], dataset_hash: str) -> tuple[pd.DataFrame | None, str]:
    """The acquisition table of the dataset with ``dataset_hash``, kept like :func:`reference_latents`.

    Looks in ``keep_dir`` (a copy without patient identifiers), then in each
    ``WORKDIR/datasets/*`` of ``workdirs`` for a ``dataset.json`` with that hash.

    Returns:
        (the table or None, where it was found or ``""``).
    """
    kept = _kept_acquisition(keep_dir, dataset_hash)
    if kept.is_file():
        return pd.read_csv(kept), str(kept)
    for workdir in workdirs:
        for meta in sorted(workdir.glob("datasets/*/dataset.json")):
            try:
                found = json.loads(meta.read_text()).get("hash") == dataset_hash
            except (OSError, ValueError):
                continue
            if found and (meta.parent / "patients.csv").is_file():
                return keep_acquisition(keep_dir, meta.parent, dataset_hash), str(meta.parent)
    return None, ""


def _kept_acquisition(keep_dir: Path, dataset_hash: str) -> Path:
    return keep_dir / f"acquisition-{dataset_hash.removeprefix('sha256:')[:16]}.csv"


def keep_acquisition(keep_dir: Path, dataset_dir: str | Path, dataset_hash: str) -> pd.DataFrame:
    """Keep ``dataset_dir``'s acquisition table (no identifiers) under ``keep_dir`` by its hash,
    so that a later run, after the dataset folder was re-ingested, still finds it.

    Raises:
        UserError: the folder has no ``patients.csv``.
    """
    table = dataset_acquisition(dataset_dir)
    keep_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(_kept_acquisition(keep_dir, dataset_hash), index=False)
    return table
