"""Patient-level, label-stratified K-fold assignment.

Each patient is one row, so a patient can never sit in two folds. Patients are sorted by
ID before splitting, so the assignment depends only on (IDs, labels, n_folds, seed), not
on processing order. Patients whose ``split`` (from ``labels.csv``) is set and is not
``train`` are held out: fold ``-1``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold

__all__ = ["HELD_OUT", "assign_folds"]

HELD_OUT = -1


def assign_folds(
    patients: Sequence[str],
    labels: Sequence[int],
    n_folds: int,
    seed: int,
    splits: Sequence[str] | None = None,
) -> tuple[np.ndarray, int]:
    """Stratified fold index per patient.

    Args:
        patients: unique patient IDs, any order.
        labels: 0/1 label per patient.
        n_folds: requested number of folds (>= 2).
        seed: shuffling seed.
        splits: optional per-patient ``split`` text; non-empty and not ``train`` -> held out.

    Returns:
        ``(folds int64 [N] in {-1, 0..k-1}, k)`` aligned with ``patients``; ``k`` is
        ``n_folds`` capped by the number of patients taking part (``k = 1``: all in fold 0).
    """
    if len(set(patients)) != len(patients):
        raise ValueError("patient IDs must be unique")
    n = len(patients)
    folds = np.full(n, HELD_OUT, dtype=np.int64)
    held = [bool(s) and s.strip().lower() != "train" for s in (splits or [""] * n)]
    part = sorted((p, i) for i, p in enumerate(patients) if not held[i])
    if not part:
        return folds, 0
    idx = np.array([i for _, i in part])
    y = np.asarray(labels, dtype=np.int64)[idx]
    counts = np.bincount(y, minlength=2)
    k = min(n_folds, len(idx), int(counts.max()))
    if k < 2:
        folds[idx] = 0
        return folds, 1
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class smaller than k: some folds lack it, as intended
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, test) in enumerate(skf.split(np.zeros(len(idx)), y)):
            folds[idx[test]] = f
    return folds, k
