"""One patient's CT image records -> one series in anatomical order (DESIGN.md §6 quirks).

:func:`choose_series` picks one series when a folder holds several (the most slices; the
choice and why are recorded); :func:`sort_slices` orders it by ImagePositionPatient
projected on the slice normal from ImageOrientationPatient, else InstanceNumber, then the
file number, and drops repeated instances and positions (those files are marked ``skipped``
with the reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from components.data.dicom_header import FileRecord

__all__ = ["SeriesChoice", "SortedSeries", "file_number", "choose_series", "sort_slices"]

_DUP_POS_MM = 0.01


def file_number(rel: str) -> float:
    """The integer in an OSIC file name (``train/P/12.dcm`` -> 12.0); ``inf`` if none."""
    stem = rel.rsplit("/", 1)[-1].split(".", 1)[0]
    return float(stem) if re.fullmatch(r"\d+", stem) else float("inf")


@dataclass
class SeriesChoice:
    """Which series of a patient folder is used, and why."""

    series: str
    reason: str
    indices: list[int]


def choose_series(records: list[FileRecord]) -> SeriesChoice | None:
    """Pick the series with the most distinct slices; other series' files are skipped.

    Args:
        records: the patient's CT image records (datasets available).

    Returns:
        The choice (indices into ``records``), or ``None`` when ``records`` is empty. Ties go
        to the series whose digest sorts first, so the choice is deterministic.
    """
    if not records:
        return None
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(rec.series, []).append(i)
    counts = {s: len({records[i].sop or records[i].path for i in idx}) for s, idx in groups.items()}
    best = sorted(groups, key=lambda s: (-counts[s], s))[0]
    if len(groups) == 1:
        reason = "only series"
    else:
        others = ", ".join(f"{s or 'no-uid'}:{counts[s]}" for s in sorted(groups) if s != best)
        reason = f"most slices ({counts[best]}; other series {others})"
    for s, idx in groups.items():
        if s != best:
            for i in idx:
                records[i].mark("skipped", f"other series {s or 'no-uid'} not chosen ({counts[s]} slices)")
    return SeriesChoice(series=best, reason=reason, indices=groups[best])


@dataclass
class SortedSeries:
    """Slices in anatomical order (superior first), duplicates removed.

    ``positions_mm`` are the projections on the slice normal in that order (NaN when the
    order came from a fallback); ``method`` names the sort key used.
    """

    indices: list[int]
    positions_mm: np.ndarray
    method: str
    spacing_mm: float
    max_gap_mm: float


def _normal(iop: tuple[float, ...]) -> np.ndarray:
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


def sort_slices(records: list[FileRecord], indices: list[int]) -> SortedSeries:
    """Order one series' slices superior -> inferior and drop duplicates.

    Sort key: ImagePositionPatient projected on the normal ``row x col`` of the (first)
    ImageOrientationPatient, oriented so that the most superior (+z) slice comes first;
    when any slice lacks position/orientation, InstanceNumber ascending; then the file
    number. A repeated SOP instance or a position within 0.01 mm of the previous kept slice
    is a duplicate: the file is marked ``skipped`` and the first (by file number) is kept.

    Args:
        records: all records of the patient (duplicates are marked in place).
        indices: the chosen series' indices into ``records``.

    Returns:
        :class:`SortedSeries`; ``spacing_mm`` is the median gap between kept positions
        (SliceThickness when positions are unusable), ``max_gap_mm`` the largest gap.
    """
    idx = sorted(indices, key=lambda i: (file_number(records[i].path), records[i].path))
    seen: dict[str, str] = {}
    unique: list[int] = []
    for i in idx:
        sop = records[i].sop
        if sop and sop in seen:
            records[i].mark("skipped", f"duplicate instance (same SOP UID as {seen[sop]})")
        else:
            seen[sop] = records[i].path
            unique.append(i)
    have_geometry = all(records[i].ipp is not None and records[i].iop is not None for i in unique)
    if have_geometry and unique:
        normal = _normal(records[unique[0]].iop)  # type: ignore[arg-type]
        sign = -1.0 if normal[2] >= 0 else 1.0  # superior first
        proj = {i: float(np.dot(records[i].ipp, normal)) for i in unique}  # type: ignore[arg-type]
        for i in unique:
            records[i].position_mm = proj[i]
        order = sorted(unique, key=lambda i: sign * proj[i])  # stable: file number breaks ties
        kept: list[int] = []
        for i in order:
            if kept and abs(proj[i] - proj[kept[-1]]) < _DUP_POS_MM:
                records[i].mark("skipped", f"duplicate slice position {proj[i]:.2f} mm (kept {records[kept[-1]].path})")
            else:
                kept.append(i)
        pos = np.array([proj[i] for i in kept], dtype=np.float64)
        gaps = np.abs(np.diff(pos))
        spacing = float(np.median(gaps)) if gaps.size else float("nan")
        return SortedSeries(kept, pos, "ImagePositionPatient", spacing, float(gaps.max()) if gaps.size else float("nan"))
    have_inst = all(np.isfinite(records[i].instance_number) for i in unique)
    if have_inst:
        order = sorted(unique, key=lambda i: records[i].instance_number)
        method = "InstanceNumber"
    else:
        order = unique
        method = "file number"
    thick = [records[i].slice_thickness_mm for i in order if np.isfinite(records[i].slice_thickness_mm)]
    spacing = float(np.median(thick)) if thick else float("nan")
    return SortedSeries(order, np.full(len(order), np.nan), method, spacing, spacing)
