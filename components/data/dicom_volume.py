"""A sorted series as a volume of Hounsfield units, decoded lazily and only where needed.

:func:`load_volume` checks every slice (lazily read data: truncation from the header,
nothing decoded; compressed data: decoded once, its grid kept) and quarantines the unusable
files; a :class:`Volume` then gives HU on a strided low-resolution grid for any slices
(cached) and at full resolution for the few selected ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.data.dicom_header import FileRecord
from components.data.dicom_pixels import DicomSlice
from components.data.dicom_series import SortedSeries

__all__ = ["Volume", "load_volume"]


@dataclass
class Volume:
    """A sorted series whose pixels are decoded on demand.

    HU are available on the strided grid ``[::step, ::step]`` (at most 128 px a side) for
    any slices (:meth:`grid`, cached) and at full resolution for a few (:meth:`full`).

    Attributes:
        positions_mm: float64 ``[S]`` positions along the slice normal (NaN if unknown),
            superior slice first.
        z_mm: float64 ``[S]`` ImagePositionPatient z (NaN if unknown).
        indices: record index of each slice.
        shape: full-resolution ``(H, W)``.
        step: grid stride.
        pixel_spacing_mm: median in-plane spacing.
        slices: the :class:`~components.data.dicom_pixels.DicomSlice` of each slice.
    """

    positions_mm: np.ndarray
    z_mm: np.ndarray
    indices: list[int]
    shape: tuple[int, int]
    step: int
    pixel_spacing_mm: float
    slices: list[DicomSlice] = field(repr=False)
    _grid: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    def grid(self, ks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Float32 HU ``[K, h, w]`` (padding set to -1000) and bool padding ``[K, h, w]``
        of slices ``ks`` on the strided grid."""
        for k in ks:
            if k not in self._grid:
                self._grid[k] = self.slices[k].hu(self.step)
        return np.stack([self._grid[k][0] for k in ks]), np.stack([self._grid[k][1] for k in ks])

    @property
    def hu(self) -> np.ndarray:
        """Float32 ``[S, h, w]`` grid HU of every slice (decodes them all)."""
        return self.grid(range(len(self)))[0]

    @property
    def pad(self) -> np.ndarray:
        """Bool ``[S, h, w]`` grid padding of every slice."""
        return self.grid(range(len(self)))[1]

    def full(self, slices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution float32 HU ``[K, H, W]`` and padding ``[K, H, W]`` of some slices."""
        pairs = [self.slices[k].hu(1) for k in slices]
        return np.stack([h for h, _ in pairs]), np.stack([p for _, p in pairs])


def load_volume(
    records: list[FileRecord], slices: list[Any], order: SortedSeries, max_grid: int = 128
) -> Volume | None:
    """Check the sorted slices; files whose pixel data is unusable are quarantined.

    Native pixel data is checked from the file size (a truncated file is found without
    decoding); any other pixel data (compressed, unusual bit depths) is decoded here once,
    its grid kept. Slices whose matrix differs from the series' most common one are skipped
    (one volume needs one shape).

    Args:
        records: the patient's records.
        slices: :class:`~components.data.dicom_pixels.DicomSlice` (or ``None``) per record.
        order: the chosen, sorted series.
        max_grid: the grid has at most this many pixels per side.

    Returns:
        The :class:`Volume`, or ``None`` when no slice is usable.
    """
    shapes = [(records[i].rows, records[i].cols) for i in order.indices]
    if not shapes:
        return None
    values, counts = np.unique(np.array(shapes), axis=0, return_counts=True)
    main = tuple(int(v) for v in values[int(np.argmax(counts))])
    step = max(1, -(-max(main) // max_grid))
    kept: list[int] = []
    pos: list[float] = []
    grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, p in zip(order.indices, order.positions_mm):
        rec, sl = records[i], slices[i]
        if (rec.rows, rec.cols) != main:
            rec.mark("skipped", f"matrix {rec.rows}x{rec.cols} differs from the series' {main[0]}x{main[1]}")
            continue
        try:
            if sl.lazy:
                sl.check()
            else:
                grids[len(kept)] = sl.hu(step)
        except Exception as exc:  # noqa: BLE001 - a bad file is quarantined, never a crash
            msg = str(exc).split(" - ")[0][:120] if isinstance(exc, ValueError) else type(exc).__name__
            rec.mark("quarantined", f"pixel data unreadable: {msg}")
            continue
        kept.append(i)
        pos.append(float(p))
    if not kept:
        return None
    z = np.array([ipp[2] if (ipp := records[i].ipp) else np.nan for i in kept], dtype=np.float64)
    spacing = np.array([records[i].pixel_spacing_mm for i in kept], dtype=np.float64)
    spacing = spacing[np.isfinite(spacing)]
    return Volume(
        positions_mm=np.array(pos, dtype=np.float64),
        z_mm=z,
        indices=kept,
        shape=main,  # type: ignore[arg-type]
        step=step,
        pixel_spacing_mm=float(np.median(spacing)) if spacing.size else float("nan"),
        slices=[slices[i] for i in kept],
        _grid=grids,
    )
