"""Energy distance between two samples with a permutation p-value.

Why the energy distance (Székely & Rizzo 2004, 2013) and not MMD: it needs no kernel
bandwidth (MMD's power depends on the bandwidth, whose median heuristic is itself a choice
made on the data), it is zero if and only if the two distributions are equal (for finite
first moments), and its 1-D form is in SciPy (``scipy.stats.energy_distance``, used in the
tests as the reference for our multivariate statistic). The p-value comes from SciPy's
``scipy.stats.permutation_test`` (randomised, ``(k + 1) / (n_resamples + 1)``), a well-kept
implementation we do not re-derive. torchdrift / alibi-detect would add a dependency (and, for
alibi-detect, TensorFlow-era pins) for the same two lines of statistic.

The statistic is the V-statistic ``E = 2 mean|X-Y| - mean|X-X'| - mean|Y-Y'|`` on
Euclidean distances. The pairwise distance matrix of the pooled sample is computed once;
each permutation only re-partitions it, as block sums ``m^T D m`` of a 0/1 membership vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import cdist
from scipy.stats import permutation_test

__all__ = ["TwoSampleResult", "energy_statistic", "energy_test"]


@dataclass(frozen=True)
class TwoSampleResult:
    """Result of :func:`energy_test`.

    Attributes:
        statistic: energy distance (>= 0 up to rounding; 0 for identical samples).
        p_value: permutation p-value in (0, 1], one-sided (large statistic = drift).
        n_reference: rows of the reference sample.
        n_current: rows of the current sample.
        n_permutations: permutations drawn.
    """

    statistic: float
    p_value: float
    n_reference: int
    n_current: int
    n_permutations: int


def _as_2d(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"{name}: expected [N,D] with N >= 2, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: non-finite values")
    return a


def _block_energy(dist: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Energy distance for each row of ``member`` ([B,N] 0/1, 1 = first sample) over ``dist`` [N,N]."""
    total = dist.sum()
    md = member @ dist                                   # [B,N]
    s_xx = np.einsum("bn,bn->b", md, member)             # sum over x,x' pairs
    s_x_all = md.sum(axis=1)                             # sum over x, any
    s_xy = s_x_all - s_xx
    s_yy = total - 2.0 * s_xy - s_xx
    n_x = member.sum(axis=1)
    n_y = member.shape[1] - n_x
    return 2.0 * s_xy / (n_x * n_y) - s_xx / n_x**2 - s_yy / n_y**2


def energy_statistic(reference: ArrayLike, current: ArrayLike) -> float:
    """Energy distance (V-statistic) between samples ``[N,D]`` and ``[M,D]`` (1-D arrays: D = 1)."""
    x, y = _as_2d(reference, "reference"), _as_2d(current, "current")
    pooled = np.concatenate([x, y])
    member = np.zeros((1, len(pooled)))
    member[0, : len(x)] = 1.0
    return float(_block_energy(cdist(pooled, pooled), member)[0])


def energy_test(
    reference: ArrayLike, current: ArrayLike, n_permutations: int = 999, seed: int = 0, batch: int = 64
) -> TwoSampleResult:
    """Two-sample energy-distance test.

    Args:
        reference: ``[N,D]`` float (e.g. standardised latents of the training cohort).
        current: ``[M,D]`` float, same D.
        n_permutations: random re-partitions of the pooled sample (p-value floor 1/(n+1)).
        seed: seed of the permutations (the result is deterministic given it).
        batch: permutations per vectorised evaluation (memory ``batch * (N+M)`` floats).

    Returns:
        :class:`TwoSampleResult`.

    Raises:
        ValueError: fewer than 2 rows, mismatched D or non-finite values.
    """
    x, y = _as_2d(reference, "reference"), _as_2d(current, "current")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"reference has {x.shape[1]} features, current {y.shape[1]}")
    pooled = np.concatenate([x, y])
    dist = cdist(pooled, pooled)
    n = len(pooled)

    def statistic(ix: np.ndarray, iy: np.ndarray, axis: int = -1) -> np.ndarray:
        ix = np.moveaxis(np.asarray(ix, dtype=np.int64), axis, -1)
        flat = ix.reshape(-1, ix.shape[-1])
        member = np.zeros((len(flat), n))
        np.put_along_axis(member, flat, 1.0, axis=1)
        return _block_energy(dist, member).reshape(ix.shape[:-1])

    # The samples are passed as row indices into the pooled distance matrix: permuting the
    # indices is permuting the rows, and the matrix is never recomputed.
    res = permutation_test(
        (np.arange(len(x)), np.arange(len(x), n)), statistic, permutation_type="independent",
        vectorized=True, n_resamples=n_permutations, alternative="greater", batch=batch,
        rng=np.random.default_rng(seed),
    )
    return TwoSampleResult(float(res.statistic), float(res.pvalue), len(x), len(y), int(n_permutations))
