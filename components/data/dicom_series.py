"""Read one patient's DICOM files into a sorted Hounsfield-unit volume.

Steps (DESIGN.md §6 quirks): parse every file once (:func:`read_file`), keep CT images,
pick one series when a folder holds several (:func:`choose_series`: most slices, the choice
and why are recorded), sort (:func:`sort_slices`: ImagePositionPatient projected on the
slice normal from ImageOrientationPatient, else InstanceNumber, then the file number), drop
repeated instances and positions, and decode (:func:`load_volume`, :func:`to_hu`): native little-endian
pixel data straight from the buffer, compressed transfer syntaxes (JPEG Lossless,
JPEG 2000, ...) through pydicom's decoders (pylibjpeg plugins); stored values -> HU with
pydicom's ``apply_modality_lut``; padding (``PixelPaddingValue`` or < -1500 HU, e.g. a
circular field of view) -> air (-1000 HU), remembered in a mask.

Identifiers: records carry no PS3.15 Annex E attribute. UIDs (also Annex E) are kept only
as :func:`uid_digest` (a sha256 prefix), which still identifies series and duplicates.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "AIR_HU",
    "PAD_BELOW_HU",
    "FileRecord",
    "SeriesChoice",
    "SortedSeries",
    "Volume",
    "uid_digest",
    "file_number",
    "read_file",
    "choose_series",
    "sort_slices",
    "pixel_values",
    "to_hu",
    "load_volume",
]

AIR_HU = -1000
PAD_BELOW_HU = -1500.0
_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_DUP_POS_MM = 0.01


def uid_digest(uid: object) -> str:
    """Pseudonymous 16-hex-digit digest of a DICOM UID ('' for a missing one)."""
    text = str(uid or "").strip()
    return hashlib.sha256(text.encode()).hexdigest()[:16] if text else ""


def file_number(rel: str) -> float:
    """The integer in an OSIC file name (``train/P/12.dcm`` -> 12.0); ``inf`` if none."""
    stem = rel.rsplit("/", 1)[-1].split(".", 1)[0]
    return float(stem) if re.fullmatch(r"\d+", stem) else float("inf")


@dataclass
class FileRecord:
    """One input file: where it is, what happened to it, and its PHI-free metadata.

    ``status`` is ``used``, ``skipped`` or ``quarantined``; ``reason`` says why (empty for
    used files). Metadata fields are ``None`` / NaN when the file is not a readable DICOM.
    """

    path: str
    patient: str
    status: str = "used"
    reason: str = ""
    modality: str | None = None
    series: str = ""
    sop: str = ""
    rows: int | None = None
    cols: int | None = None
    pixel_spacing_mm: float = float("nan")
    slice_thickness_mm: float = float("nan")
    instance_number: float = float("nan")
    position_mm: float = float("nan")
    rescale_intercept: float = float("nan")
    rescale_slope: float = float("nan")
    transfer_syntax: str = ""
    ipp: tuple[float, float, float] | None = field(default=None, repr=False)
    iop: tuple[float, ...] | None = field(default=None, repr=False)

    def mark(self, status: str, reason: str) -> None:
        """Set status and reason unless the file was already quarantined."""
        if self.status != "quarantined":
            self.status, self.reason = status, reason

    def table_row(self) -> dict[str, Any]:
        """The row written to ``files.csv`` / validated by Great Expectations."""
        return {
            "path": self.path,
            "patient": self.patient,
            "status": self.status,
            "reason": self.reason,
            "modality": self.modality,
            "series": self.series,
            "sop": self.sop,
            "rows": self.rows,
            "cols": self.cols,
            "pixel_spacing_mm": self.pixel_spacing_mm,
            "slice_thickness_mm": self.slice_thickness_mm,
            "instance_number": self.instance_number,
            "position_mm": self.position_mm,
            "rescale_intercept": self.rescale_intercept,
            "rescale_slope": self.rescale_slope,
            "transfer_syntax": self.transfer_syntax,
        }


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def read_file(rel: str, patient: str, data: bytes) -> tuple[FileRecord, Any]:
    """Parse one file (pixel data stays undecoded bytes).

    Args:
        rel: path relative to the source.
        patient: the patient folder it belongs to.
        data: the file's bytes.

    Returns:
        ``(record, dataset)``; ``dataset`` is ``None`` when the file is quarantined here
        (not DICOM, no pixel data, not CT).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    rec = FileRecord(path=rel, patient=patient)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        rec.mark("quarantined", "not a DICOM file")
        return rec, None
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file, not a crash
        rec.mark("quarantined", f"unreadable DICOM ({type(exc).__name__})")
        return rec, None
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    spacing = _floats(ds.get("PixelSpacing"), 2)
    rec.modality = str(ds.get("Modality", "") or "")
    rec.series = uid_digest(ds.get("SeriesInstanceUID"))
    rec.sop = uid_digest(ds.get("SOPInstanceUID"))
    rec.rows = int(ds.Rows) if "Rows" in ds else None
    rec.cols = int(ds.Columns) if "Columns" in ds else None
    rec.pixel_spacing_mm = spacing[0] if spacing else float("nan")
    rec.slice_thickness_mm = _float(ds.get("SliceThickness"))
    rec.instance_number = _float(ds.get("InstanceNumber"))
    rec.rescale_intercept = _float(ds.get("RescaleIntercept"))
    rec.rescale_slope = _float(ds.get("RescaleSlope"))
    rec.transfer_syntax = _ts_name(ts)
    rec.ipp = _floats(ds.get("ImagePositionPatient"), 3)  # type: ignore[assignment]
    rec.iop = _floats(ds.get("ImageOrientationPatient"), 6)
    if "PixelData" not in ds or rec.rows is None or rec.cols is None:
        rec.mark("quarantined", "no pixel data")
        return rec, None
    if rec.modality != "CT":
        rec.mark("quarantined", f"modality {rec.modality or 'missing'}, not CT")
        return rec, None
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        rec.mark("quarantined", "multi-frame image (one axial slice per file expected)")
        return rec, None
    return rec, ds


def _ts_name(uid: str) -> str:
    if not uid:
        return "missing"
    from pydicom.uid import UID

    return UID(uid).name


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


def pixel_values(ds: Any) -> np.ndarray:
    """Stored pixel values of a single-frame grayscale image, ``[rows, cols]``.

    Native little-endian 16-bit data is read straight from the buffer (masked /
    sign-extended to BitsStored exactly as pydicom does); everything else, compressed
    transfer syntaxes included, goes through ``ds.pixel_array``.

    Raises:
        ValueError: truncated or undecodable pixel data.
    """
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    rows, cols = int(ds.Rows), int(ds.Columns)
    if (
        ts in _NATIVE_LE
        and int(ds.get("BitsAllocated", 0)) == 16
        and int(ds.get("SamplesPerPixel", 1)) == 1
    ):
        raw = ds.PixelData
        need = rows * cols * 2
        if len(raw) < need:
            raise ValueError(f"truncated pixel data ({len(raw)} of {need} bytes)")
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        arr = np.frombuffer(raw, dtype="<i2" if signed else "<u2", count=rows * cols).reshape(rows, cols)
        bits = int(ds.get("BitsStored", 16))
        if bits < 16:
            if signed:
                shift = 16 - bits
                arr = (arr << shift) >> shift
            else:
                arr = arr & np.uint16((1 << bits) - 1)
        return arr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = ds.pixel_array
    if arr.shape != (rows, cols):
        raise ValueError(f"pixel array shape {arr.shape} is not {(rows, cols)}")
    return arr


def to_hu(stored: np.ndarray, ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stored values -> (float32 HU with padding set to -1000, bool padding mask).

    HU come from pydicom's ``apply_modality_lut`` (rescale or Modality LUT Sequence).
    Padding: stored value equal to ``PixelPaddingValue`` (or within
    ``PixelPaddingRangeLimit``), or HU below -1500.
    """
    from pydicom.pixels import apply_modality_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hu = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    pad = hu < PAD_BELOW_HU
    ppv = ds.get("PixelPaddingValue")
    if isinstance(ppv, (int, float)):
        limit = ds.get("PixelPaddingRangeLimit")
        if isinstance(limit, (int, float)):
            lo, hi = sorted((ppv, limit))
            pad |= (stored >= lo) & (stored <= hi)
        else:
            pad |= stored == ppv
    hu[pad] = AIR_HU
    return hu, pad


@dataclass
class Volume:
    """A decoded series on a strided grid, with full-resolution access to chosen slices.

    Attributes:
        hu: float32 ``[S, h, w]`` HU on the grid ``[::step, ::step]``, superior slice first,
            padding set to -1000.
        pad: bool ``[S, h, w]`` True where the scanner stored padding.
        positions_mm: float64 ``[S]`` positions along the slice normal (NaN if unknown).
        z_mm: float64 ``[S]`` ImagePositionPatient z (NaN if unknown).
        indices: record index of each slice.
        shape: full-resolution ``(H, W)``.
        step: grid stride.
        pixel_spacing_mm: median in-plane spacing.
        datasets: parsed datasets of the slices (for :meth:`full`).
    """

    hu: np.ndarray
    pad: np.ndarray
    positions_mm: np.ndarray
    z_mm: np.ndarray
    indices: list[int]
    shape: tuple[int, int]
    step: int
    pixel_spacing_mm: float
    datasets: list[Any] = field(repr=False)

    def full(self, slices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution float32 HU ``[K, H, W]`` and padding ``[K, H, W]`` of some slices."""
        pairs = [to_hu(pixel_values(self.datasets[k]), self.datasets[k]) for k in slices]
        return np.stack([h for h, _ in pairs]), np.stack([p for _, p in pairs])


def load_volume(
    records: list[FileRecord], datasets: list[Any], order: SortedSeries, max_grid: int = 128
) -> Volume | None:
    """Decode the sorted slices; files that fail to decode are quarantined.

    Every slice is decoded (so truncated or undecodable files are found), but HU are only
    computed on a strided grid of at most ``max_grid`` pixels per side; :meth:`Volume.full`
    gives full resolution for the few selected slices. Slices whose matrix differs from the
    series' most common one are skipped (one volume needs one shape).

    Returns:
        The :class:`Volume`, or ``None`` when no slice decodes.
    """
    shapes = [(records[i].rows, records[i].cols) for i in order.indices]
    if not shapes:
        return None
    values, counts = np.unique(np.array(shapes), axis=0, return_counts=True)
    main = tuple(int(v) for v in values[int(np.argmax(counts))])
    step = max(1, -(-max(main) // max_grid))
    slices: list[np.ndarray] = []
    pads: list[np.ndarray] = []
    kept: list[int] = []
    pos: list[float] = []
    for i, p in zip(order.indices, order.positions_mm):
        rec, ds = records[i], datasets[i]
        if (rec.rows, rec.cols) != main:
            rec.mark("skipped", f"matrix {rec.rows}x{rec.cols} differs from the series' {main[0]}x{main[1]}")
            continue
        try:
            stored = pixel_values(ds)
            hu, pad = to_hu(np.ascontiguousarray(stored[::step, ::step]), ds)
        except Exception as exc:  # noqa: BLE001 - a bad file is quarantined, never a crash
            msg = str(exc).split(" - ")[0][:120] if isinstance(exc, ValueError) else type(exc).__name__
            rec.mark("quarantined", f"pixel data unreadable: {msg}")
            continue
        slices.append(hu)
        pads.append(pad)
        kept.append(i)
        pos.append(float(p))
    if not slices:
        return None
    z = np.array([records[i].ipp[2] if records[i].ipp else np.nan for i in kept], dtype=np.float64)
    spacing = np.array([records[i].pixel_spacing_mm for i in kept], dtype=np.float64)
    spacing = spacing[np.isfinite(spacing)]
    return Volume(
        hu=np.stack(slices),
        pad=np.stack(pads),
        positions_mm=np.array(pos, dtype=np.float64),
        z_mm=z,
        indices=kept,
        shape=main,  # type: ignore[arg-type]
        step=step,
        pixel_spacing_mm=float(np.median(spacing)) if spacing.size else float("nan"),
        datasets=[datasets[i] for i in kept],
    )
