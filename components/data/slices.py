"""Lung extent, 4-level slice selection, lung window and area resize.

Slices are ordered superior first (see :mod:`components.data.dicom_series`), so relative
level 0 is the apex end of the lung extent and 1 the base end. Images are windowed
(``cfg.window_hu`` -> [-1, 1]) *before* resizing; non-square matrices are padded to a
square with air (mask value 0) around the centre, then box-filter (area) resampled, which
anti-aliases when shrinking and equals ``torch.nn.functional.interpolate(mode="area")``
whenever the size divides evenly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "EXACT_SLICES",
    "SAMPLE_SLICES",
    "lung_extent",
    "sample_slices",
    "sampled_lung_extent",
    "select_levels",
    "window",
    "pad_square",
    "area_weights",
    "area_resize",
    "render_images",
    "render_fraction",
]


def lung_extent(lung: np.ndarray, fraction: float) -> tuple[int, int] | None:
    """First..last slice whose lung area is at least ``fraction`` of the largest.

    Args:
        lung: ``bool [S, H, W]`` lung voxels.
        fraction: in (0, 1).

    Returns:
        ``(first, last)`` slice indices (inclusive), or ``None`` when no slice has lung.
    """
    area = lung.reshape(lung.shape[0], -1).sum(axis=1)
    if area.max(initial=0) <= 0:
        return None
    hits = np.flatnonzero(area >= fraction * area.max())
    return int(hits[0]), int(hits[-1])


EXACT_SLICES = 32
SAMPLE_SLICES = 24


def sample_slices(n: int, target: int = SAMPLE_SLICES, exact: int = EXACT_SLICES) -> list[int]:
    """Slices used for the HU check and the lung-extent search of an ``n``-slice series.

    Every slice up to ``exact`` slices; beyond, every ``k``-th slice (``k = ceil(n/target)``)
    and the last one, so about ``target`` slices whatever ``n`` is.
    """
    if n <= exact:
        return list(range(n))
    k = -(-n // target)
    picks = list(range(0, n, k))
    return picks if picks[-1] == n - 1 else [*picks, n - 1]


def sampled_lung_extent(
    area: Callable[[list[int]], np.ndarray],
    n: int,
    sample: Sequence[int],
    sample_area: np.ndarray,
    fraction: float,
) -> tuple[int, int] | None:
    """:func:`lung_extent` from lung areas of a sample of slices, refined to single slices.

    The maximum is hill-climbed from the best sampled slice; the first / last slice at or
    above ``fraction`` of it is found by bisection between the neighbouring samples. With
    every slice sampled this is exactly :func:`lung_extent`; otherwise it assumes the lung
    area rises and falls once between neighbouring samples (true of chest anatomy at
    OSIC slice gaps).

    Args:
        area: lung voxel count of the given slices, ``[K]``.
        n: slices in the series.
        sample: sorted sampled slice indices (first 0, last ``n - 1``).
        sample_area: their lung voxel counts, ``[len(sample)]``.
        fraction: in (0, 1).

    Returns:
        ``(first, last)`` (inclusive), or ``None`` when no sampled slice has lung.
    """
    known = {int(i): float(a) for i, a in zip(sample, sample_area)}

    def at(i: int) -> float:
        if i not in known:
            known[i] = float(area([i])[0])
        return known[i]

    if max(known.values(), default=0.0) <= 0:
        return None
    best = max(sample, key=lambda i: (known[i], -i))
    for direction in (-1, 1):
        while 0 <= best + direction < n and at(best + direction) > at(best):
            best += direction
    threshold = fraction * at(best)
    hits = [j for j, i in enumerate(sample) if known[i] >= threshold]
    first_j, last_j = hits[0], hits[-1]

    def bisect(lo: int, hi: int, rising: bool) -> int:
        # lo below / hi at-or-above the threshold (rising); mirrored for a falling edge
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (at(mid) >= threshold) == rising:
                hi = mid
            else:
                lo = mid
        return hi if rising else lo

    first = sample[first_j] if first_j == 0 else bisect(sample[first_j - 1], sample[first_j], True)
    last = sample[last_j] if last_j == len(sample) - 1 else bisect(sample[last_j], sample[last_j + 1], False)
    return int(min(first, best)), int(max(last, best))


def select_levels(first: int, last: int, levels: Sequence[float]) -> list[int]:
    """Slice index at each relative level of ``first..last`` (rounded to nearest)."""
    return [int(round(first + lv * (last - first))) for lv in levels]


def window(hu: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip HU to ``[lo, hi]`` and map linearly to float32 ``[-1, 1]``."""
    x = (np.clip(hu.astype(np.float32), lo, hi) - lo) / (hi - lo)
    return (2.0 * x - 1.0).astype(np.float32)


def pad_square(x: np.ndarray, fill: float) -> np.ndarray:
    """Pad ``[..., H, W]`` to ``[..., M, M]`` (``M = max(H, W)``), content centred."""
    h, w = x.shape[-2:]
    m = max(h, w)
    if h == w:
        return x
    top, left = (m - h) // 2, (m - w) // 2
    width = [(0, 0)] * (x.ndim - 2) + [(top, m - h - top), (left, m - w - left)]
    return np.pad(x, width, constant_values=fill)


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``float64 [n_out, n_in]`` box-filter weights; each row sums to 1.

    Output pixel ``j`` averages input interval ``[j, j + 1) * n_in / n_out`` weighted by
    overlap.
    """
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    i = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, i + 1) - np.maximum(lo, i), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_resize(x: np.ndarray, size: int) -> np.ndarray:
    """Area-resample ``[..., H, W]`` to float32 ``[..., size, size]``."""
    h, w = x.shape[-2:]
    if h % size == 0 and w % size == 0:  # whole blocks: a plain block mean
        fh, fw = h // size, w // size
        blocks = x.astype(np.float32, copy=False).reshape(*x.shape[:-2], size, fh, size, fw)
        return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)
    wr = area_weights(h, size)
    wc = area_weights(w, size)
    return (wr @ x.astype(np.float64) @ wc.T).astype(np.float32)


def render_images(hu: np.ndarray, window_hu: tuple[float, float], size: int) -> np.ndarray:
    """Selected slices ``[K, H, W]`` HU -> float32 ``[K, size, size]`` in [-1, 1]."""
    x = pad_square(window(hu, *window_hu), fill=-1.0)
    return np.clip(area_resize(x, size), -1.0, 1.0)


def render_fraction(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary or fractional masks ``[K, H, W]`` -> float32 ``[K, size, size]`` in [0, 1]."""
    x = pad_square(mask.astype(np.float32), fill=0.0)
    return np.clip(area_resize(x, size), 0.0, 1.0)
