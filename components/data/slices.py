"""Lung extent, 4-level slice selection, lung window and area resize.

Slices are ordered superior first (see :mod:`components.data.dicom_series`), so relative
level 0 is the apex end of the lung extent and 1 the base end. Images are windowed
(``cfg.window_hu`` -> [-1, 1]) *before* resizing; non-square matrices are padded to a
square with air (mask value 0) around the centre, then box-filter (area) resampled, which
anti-aliases when shrinking and equals ``torch.nn.functional.interpolate(mode="area")``
whenever the size divides evenly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "lung_extent",
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
