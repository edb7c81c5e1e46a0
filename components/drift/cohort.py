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

from components.blackbox import state_hash
from components.data.dataset import load_dataset
from components.errors import UserError
from components.models.diffae import DiffAE
from components.training.latents import encode_latents

__all__ = ["cached_latents", "cohort_latents"]


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
