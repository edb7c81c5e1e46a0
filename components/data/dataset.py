"""Load an ingested dataset folder (written by :func:`components.data.ingest.ingest`).

Downstream stages use only this: images are memory-mapped, so loading is cheap and the
folder stays the single source of truth. The files are plain ``.npy`` / ``.csv`` / ``.json``
and equally readable without this code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.errors import UserError

__all__ = ["Dataset", "load_dataset"]


@dataclass
class Dataset:
    """An ingested cohort.

    Attributes:
        images: float32 ``[N, 4, H, W]`` in [-1, 1], memory-mapped read-only.
        patients: the ``ok`` rows of ``patients.csv`` (N rows, same order as ``images``).
        labels: int64 ``[N]`` in {0, 1}.
        folds: int64 ``[N]``; ``-1`` = held out (``split`` column), else ``0..n_folds-1``.
        cohort: ``[N]`` cohort names (object array; '' when ``labels.csv`` had none).
        hash: ``sha256:<hex>`` content hash (images, labels, patient order).
        lung_masks: uint8 ``[N, 4, H, W]`` in {0, 1}.
        masks: float32 ``[N, 4, H, W]`` ground-truth disease fraction in [0, 1] (NaN rows
            for patients without one), or ``None`` when the source had no masks.
        distractor: like ``masks`` for the label-independent distractor, or ``None``.
        marker: like ``masks`` for the planted shortcut marker (outside the lungs), or ``None``.
        info: the parsed ``dataset.json``.
    """

    images: np.ndarray
    patients: pd.DataFrame
    labels: np.ndarray
    folds: np.ndarray
    cohort: np.ndarray
    hash: str
    lung_masks: np.ndarray
    masks: np.ndarray | None
    distractor: np.ndarray | None
    info: dict[str, Any]
    marker: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _optional(path: Path) -> np.ndarray | None:
    return np.load(path, mmap_mode="r") if path.is_file() else None


def load_dataset(out_dir: str | Path) -> Dataset:
    """Open a dataset folder.

    Args:
        out_dir: the ``--out`` folder of an ingest run.

    Returns:
        :class:`Dataset`.

    Raises:
        UserError: missing files or arrays that disagree with ``patients.csv``.
    """
    root = Path(out_dir)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise UserError(f"{root}: not an ingested dataset (dataset.json missing)")
    info = json.loads(meta_path.read_text())
    try:
        images = np.load(root / "images.npy", mmap_mode="r")
        lung = np.load(root / "lung_masks.npy", mmap_mode="r")
        table = pd.read_csv(root / "patients.csv", dtype={"patient": str, "cohort": str}, keep_default_na=False)
    except FileNotFoundError as exc:
        raise UserError(f"{root}: dataset incomplete ({Path(str(exc.filename)).name} missing)") from None
    ok = table[table.status == "ok"].reset_index(drop=True)
    if len(ok) != images.shape[0] or lung.shape != images.shape:
        raise UserError(f"{root}: images.npy has {images.shape[0]} rows, patients.csv {len(ok)} ok rows")
    return Dataset(
        images=images,
        patients=ok,
        labels=ok["label"].astype(float).astype(np.int64).to_numpy(),
        folds=ok["fold"].astype(np.int64).to_numpy(),
        cohort=ok["cohort"].astype(str).to_numpy(dtype=object),
        hash=str(info["hash"]),
        lung_masks=lung,
        masks=_optional(root / "masks.npy"),
        distractor=_optional(root / "distractor.npy"),
        info=info,
        marker=_optional(root / "marker.npy"),
    )
