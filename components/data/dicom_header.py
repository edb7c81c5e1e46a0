"""One DICOM file's header -> a PHI-free :class:`FileRecord` and, for a CT image, its
:class:`~components.data.dicom_pixels.DicomSlice` (pixel data located, not decoded).

:func:`read_file` starts from a prefix of the file (:data:`HEAD_BYTES`) and fetches the rest
only when needed. Plain native files are read by the hand parser
(:mod:`components.data.dicom_scan`, which says why it exists); the others, or every file with
``hand_parser=False``, by pydicom. A file is quarantined here with what was observed: not
DICOM, unreadable, no pixel data, not CT, multi-frame.

Identifiers: records carry no PS3.15 Annex E attribute. UIDs (also Annex E) are kept only
as :func:`uid_digest` (a sha256 prefix), which still identifies series and duplicates.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from components.data.dicom_pixels import DicomSlice, parse_bytes
from components.data.dicom_scan import MORE, NATIVE_LE, SCANNED_TAGS, pixel_location, scan_header

__all__ = ["HEAD_BYTES", "FileRecord", "uid_digest", "read_file"]

HEAD_BYTES = 16384  # bytes read first: OSIC headers end (PixelData starts) well before this


def uid_digest(uid: object) -> str:
    """Pseudonymous 16-hex-digit digest of a DICOM UID ('' for a missing one)."""
    text = str(uid or "").strip()
    return hashlib.sha256(text.encode()).hexdigest()[:16] if text else ""


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
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


_HEADER_TAGS = sorted(t for t in SCANNED_TAGS if t >> 16 != 0x0002)  # pydicom reads the file meta anyway


def _parse_header(data: bytes, hand_parser: bool) -> tuple[Any, tuple[int, int] | None]:
    """The header-only dataset and ``(value offset, value length)`` of its PixelData
    element (``None`` when parsing did not stop at one).

    With ``hand_parser`` the whole header is parsed and the element's header is read
    from the bytes (:func:`~components.data.dicom_scan.pixel_location`); without it
    pydicom reads only the tags ingestion records (``specific_tags``) and the offset
    follows from the encoding (an 8-byte element header in implicit VR, 12 for OB / OW
    in explicit VR); the length is then unknown (-1).
    """
    ds, pos = parse_bytes(data, header_only=True, tags=None if hand_parser else _HEADER_TAGS)
    implicit, little = ds.original_encoding
    if not little:
        return ds, None
    if hand_parser:
        return ds, pixel_location(data, pos, bool(implicit))
    return ds, ((pos + (8 if implicit else 12), -1) if pos < len(data) else None)


def _fill_fast(rec: FileRecord, v: dict[str, Any]) -> None:
    """:func:`_fill_record` from :func:`~components.data.dicom_scan.scan_header` values
    (same conversions as pydicom's)."""
    def multi(value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    spacing = _floats(multi(v.get("PixelSpacing")), 2)
    rec.modality = str(v.get("Modality", "") or "")
    rec.series = uid_digest(v.get("SeriesInstanceUID"))
    rec.sop = uid_digest(v.get("SOPInstanceUID"))
    rec.rows = v.get("Rows")
    rec.cols = v.get("Columns")
    rec.pixel_spacing_mm = spacing[0] if spacing else float("nan")
    rec.slice_thickness_mm = _float(v.get("SliceThickness"))
    rec.instance_number = _float(v.get("InstanceNumber"))
    rec.rescale_intercept = _float(v.get("RescaleIntercept"))
    rec.rescale_slope = _float(v.get("RescaleSlope"))
    rec.transfer_syntax = _ts_name(v["TransferSyntaxUID"])
    rec.ipp = _floats(multi(v.get("ImagePositionPatient")), 3)  # type: ignore[assignment]
    rec.iop = _floats(multi(v.get("ImageOrientationPatient")), 6)


def _read_fast(rel: str, patient: str, data: bytes, size: int) -> tuple[FileRecord, DicomSlice | None] | str | None:
    """:func:`read_file` for plain native files, without pydicom; ``None`` / :data:`~components.data.dicom_scan.MORE`
    when pydicom must parse the file (or more bytes are needed)."""
    scanned = scan_header(data)
    if scanned is None or isinstance(scanned, str):
        return scanned
    v, offset, length = scanned
    if (
        "Rows" not in v or "Columns" not in v or v.get("BitsAllocated") != 16
        or v.get("SamplesPerPixel", 1) != 1 or "ModalityLUTSequence" in v
        or _float(v.get("NumberOfFrames", "1") or "1") != 1
    ):
        return None  # unusual: pydicom reads it (and words any quarantine reason)
    rec = FileRecord(path=rel, patient=patient)
    _fill_fast(rec, v)
    if rec.modality != "CT":
        rec.mark("quarantined", f"modality {rec.modality or 'missing'}, not CT")
        return rec, None
    if len(data) < size:  # a prefix: keep the header only (pixels are read on demand)
        data = data[:offset]
    return rec, DicomSlice(None, size, offset, True, data, None, int(v["Rows"]), int(v["Columns"]), length, v)


def _fill_record(rec: FileRecord, ds: Any) -> str:
    """Copy the PHI-free metadata of ``ds`` into ``rec``; returns the transfer syntax UID."""
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
    return ts


def read_file(
    rel: str,
    patient: str,
    data: bytes,
    size: int | None = None,
    fetch: Callable[[], bytes] | None = None,
    fetch_range: Callable[[int, int], Any] | None = None,
    hand_parser: bool = True,
) -> tuple[FileRecord, DicomSlice | None]:
    """Parse one file's header and locate its pixel data (nothing is decoded here).

    Args:
        rel: path relative to the source.
        patient: the patient folder it belongs to.
        data: the file's bytes, or a prefix of them (see ``size`` and ``fetch``).
        size: the whole file's size (default ``len(data)``).
        fetch: returns the whole file's bytes; needed when ``data`` is a prefix (it is
            called when the header does not end inside the prefix, for non-native pixel
            data, and later for pixel reads).
        fetch_range: ``(offset, n) -> buffer`` of part of the file, for native pixel
            reads (see :class:`~components.data.dicom_pixels.DicomSlice`); optional.
        hand_parser: scan plain native files' headers and read their pixels without
            pydicom (:func:`~components.data.dicom_scan.scan_header`,
            :func:`~components.data.dicom_pixels.native_pixels`); ``False``: pydicom
            parses the header (``specific_tags``) and decodes uncompressed pixels on
            demand (``deferred``), the benchmark's ablation. Both give the same records
            and HU.

    Returns:
        ``(record, slice)``; ``slice`` is ``None`` when the file is quarantined here
        (not DICOM, no pixel data, not CT, multi-frame).
    """
    size = len(data) if size is None else size
    whole = len(data) >= size or fetch is None
    if hand_parser:
        fast = _read_fast(rel, patient, data, size)
        if fast == MORE and not whole:
            assert fetch is not None
            data, whole = fetch(), True
            size = len(data)
            fast = _read_fast(rel, patient, data, size)
        if isinstance(fast, tuple):
            rec, sl = fast
            if sl is not None:
                sl.fetch, sl.fetch_range = fetch, fetch_range
            return rec, sl
    rec = FileRecord(path=rel, patient=patient)
    try:
        try:
            ds, loc = _parse_header(data, hand_parser)
        except Exception:  # noqa: BLE001 - a prefix may cut an element; retried on the whole file
            if whole:
                raise
            ds, loc = None, None
        if loc is None and not whole:
            assert fetch is not None
            data, whole = fetch(), True
            size = len(data)
            ds, loc = _parse_header(data, hand_parser)
    except InvalidDicomError:
        rec.mark("quarantined", "not a DICOM file")
        return rec, None
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file, not a crash
        rec.mark("quarantined", f"unreadable DICOM ({type(exc).__name__})")
        return rec, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values are converted lazily, here
        ts = _fill_record(rec, ds)
    native = (
        hand_parser
        and loc is not None
        and loc[1] != 0xFFFFFFFF
        and ts in NATIVE_LE
        and int(ds.get("BitsAllocated", 0) or 0) == 16
        and int(ds.get("SamplesPerPixel", 1) or 1) == 1
        and "ModalityLUTSequence" not in ds
    )
    deferred = not hand_parser and loc is not None and ts in NATIVE_LE
    if not native and not deferred:
        # compressed, unusual or missing pixel data: pydicom parses the complete dataset
        try:
            if not whole:
                assert fetch is not None
                data, whole = fetch(), True
                size = len(data)
            ds, _ = parse_bytes(data, header_only=False)
        except Exception as exc:  # noqa: BLE001
            rec.mark("quarantined", f"unreadable DICOM ({type(exc).__name__})")
            return rec, None
    has_pixels = loc is not None or "PixelData" in ds
    if not has_pixels or rec.rows is None or rec.cols is None:
        rec.mark("quarantined", "no pixel data")
        return rec, None
    if rec.modality != "CT":
        rec.mark("quarantined", f"modality {rec.modality or 'missing'}, not CT")
        return rec, None
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        rec.mark("quarantined", "multi-frame image (one axial slice per file expected)")
        return rec, None
    offset, length = loc if loc is not None else (-1, -1)
    length = length if native else -1
    if deferred and not whole:
        data = data[:offset]  # the header only; pydicom decodes the fetched file
    return rec, DicomSlice(ds, size, offset, native, data, fetch, rec.rows, rec.cols, length, None, fetch_range, deferred)


@functools.lru_cache(maxsize=64)
def _ts_name(uid: str) -> str:
    """Transfer syntax name of a UID ('missing' when empty); cached, files share a few."""
    if not uid:
        return "missing"
    return UID(uid).name
