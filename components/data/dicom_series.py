"""Read one patient's DICOM files into a sorted Hounsfield-unit volume.

Steps (DESIGN.md §6 quirks): parse every file's header once (:func:`read_file`; the pixel
data is located, not decoded), keep CT images,
pick one series when a folder holds several (:func:`choose_series`: most slices, the choice
and why are recorded), sort (:func:`sort_slices`: ImagePositionPatient projected on the
slice normal from ImageOrientationPatient, else InstanceNumber, then the file number), drop
repeated instances and positions, and decode (:func:`load_volume`, :func:`to_hu`): native little-endian
16-bit pixel data straight from the file's buffer, lazily and only where needed (a strided
low-resolution grid of some slices, full resolution of the selected ones; truncation is
checked for every file from its header: the PixelData element's length and the file's
size against Rows x Columns x 2 bytes; HU come from the scanned rescale values without a
pydicom parse when they are plain numbers), compressed transfer syntaxes (JPEG Lossless,
JPEG 2000, ...) through pydicom's decoders (pylibjpeg plugins; every such slice is decoded
once, so undecodable files are found); stored values -> HU with
pydicom's ``apply_modality_lut``; padding (``PixelPaddingValue`` or < -1500 HU, e.g. a
circular field of view) -> air (-1000 HU), remembered in a mask.

Identifiers: records carry no PS3.15 Annex E attribute. UIDs (also Annex E) are kept only
as :func:`uid_digest` (a sha256 prefix), which still identifies series and duplicates.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom  # imported here so that ingestion's worker server preloads it
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.uid import UID

__all__ = [
    "AIR_HU",
    "HEAD_BYTES",
    "PAD_BELOW_HU",
    "DicomSlice",
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
    "native_pixels",
    "to_hu",
    "load_volume",
]

AIR_HU = -1000
PAD_BELOW_HU = -1500.0
_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_DUP_POS_MM = 0.01
HEAD_BYTES = 16384  # bytes read first: OSIC headers end (PixelData starts) well before this
_PIXEL_TAG = (0x7FE0, 0x0010)
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


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
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class DicomSlice:
    """One CT image file: its header and where its pixels are (decoded only on demand).

    Attributes:
        parsed: the pydicom dataset when already parsed (``ds`` parses it lazily):
            complete (with ``PixelData``) for non-native pixel data.
        size: the file's size in bytes.
        offset: byte offset of the PixelData value in the file.
        native: pixels are read straight from the file's bytes (native little-endian,
            16 bits allocated, one sample, defined length, no Modality LUT Sequence);
            otherwise they are decoded with :func:`pixel_values` from ``ds``.
        data: the file's bytes when they are all in memory (``None`` or a prefix otherwise).
        fetch: returns the whole file's bytes (called at most once per pixel read).
        fetch_range: ``(offset, n) -> buffer`` of ``n`` bytes from ``offset`` (fewer at the
            end of the file), valid until its next call; native pixels are read with it,
            in preference to ``fetch``, when ``data`` does not hold them.
        rows: matrix rows.
        cols: matrix columns.
        length: the PixelData element's value length from the header (-1: unknown).
        values: header values scanned without pydicom (:func:`_scan`); when they cover
            the pixel module, native pixels are converted to HU without parsing the
            header with pydicom (same result as :func:`to_hu`).
        deferred: uncompressed pixel data that pydicom decodes on demand from ``fetch``
            (the whole file); ``parsed`` is then the header-only dataset and ``offset``
            where the PixelData value starts (the hand parser off, :func:`read_file`).
    """

    parsed: Any
    size: int
    offset: int = -1
    native: bool = False
    data: bytes | None = field(default=None, repr=False)
    fetch: Callable[[], bytes] | None = field(default=None, repr=False)
    rows: int = 0
    cols: int = 0
    length: int = -1
    values: dict[str, Any] | None = field(default=None, repr=False)
    fetch_range: Callable[[int, int], Any] | None = field(default=None, repr=False)
    deferred: bool = False

    @property
    def lazy(self) -> bool:
        """Pixels are decoded only on demand; truncation is checked from the header."""
        return self.native or self.deferred

    @property
    def ds(self) -> Any:
        """The pydicom dataset (header only on the native path)."""
        if self.parsed is None:
            assert self.data is not None
            self.parsed, _ = _parse(self.data, header_only=True)
        return self.parsed

    def check(self) -> None:
        """Raise ``ValueError`` when lazily decoded pixel data is shorter than the matrix needs.

        Header-level: neither the PixelData element's declared length (when known) nor the
        bytes the file holds after its start may fall short of ``rows * cols`` pixels of 2
        bytes (native) or of SamplesPerPixel x BitsAllocated / 8 bytes (deferred); no
        pixel is read.
        """
        if not self.lazy:
            return
        per_pixel = 2
        if self.deferred:
            ds = self.ds
            per_pixel = int(ds.get("SamplesPerPixel", 1) or 1) * -(-int(ds.get("BitsAllocated", 16) or 16) // 8)
        need = self.rows * self.cols * per_pixel
        have = max(self.size - self.offset, 0)
        if 0 <= self.length < have:
            have = self.length
        if have < need:
            raise ValueError(f"truncated pixel data ({have} of {need} bytes)")

    def _pixel_module(self) -> tuple[bool, int]:
        """(signed, bits stored) of native pixel data, from scanned values when present."""
        v = self.values
        if v is not None:
            return v.get("PixelRepresentation", 0) == 1, int(v.get("BitsStored", 16))
        ds = self.ds
        return int(ds.get("PixelRepresentation", 0)) == 1, int(ds.get("BitsStored", 16))

    def stored(self, step: int = 1) -> np.ndarray:
        """Stored values on the grid ``[::step, ::step]``: ``[ceil(rows/step), ceil(cols/step)]``.

        Native data is viewed in the file's bytes and only the strided pixels are copied.

        Raises:
            ValueError: truncated or undecodable pixel data.
        """
        if self.deferred:  # pydicom decodes the whole file
            self.check()
            data = self.data if self.data is not None and len(self.data) >= self.size else None
            if data is None:
                if self.fetch is None:
                    raise ValueError("pixel data not available")
                data = self.fetch()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = pixel_array(io.BytesIO(data))
            if arr.shape != (self.rows, self.cols):
                raise ValueError(f"pixel array shape {arr.shape} is not {(self.rows, self.cols)}")
            return np.ascontiguousarray(arr[::step, ::step])
        if not self.native:
            return np.ascontiguousarray(pixel_values(self.ds)[::step, ::step])
        self.check()
        signed, bits = self._pixel_module()
        data, offset = self.data, self.offset
        if data is None or len(data) < self.size:
            if self.fetch_range is not None:  # just the pixel bytes, into a reused buffer
                data, offset = self.fetch_range(offset, self.rows * self.cols * 2), 0
            elif self.fetch is not None:
                data = self.fetch()
            else:
                raise ValueError("pixel data not available")
        return native_pixels(data, offset, self.rows, self.cols, signed=signed, bits_stored=bits, step=step)

    def hu(self, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """:func:`to_hu` of :meth:`stored`: float32 HU and bool padding, both ``[h, w]``."""
        stored = self.stored(step)
        lut = _scanned_lut(self.values) if self.native and self.values is not None else None
        if lut is None:
            return to_hu(stored, self.ds)
        return _to_hu_linear(stored, *lut)


def _pixel_location(data: bytes, pos: int, implicit: bool) -> tuple[int, int] | None:
    """(value offset, value length) of a PixelData element starting at ``pos``, else ``None``.

    The length is ``0xFFFFFFFF`` for encapsulated (compressed) data.
    """
    if pos + 8 > len(data) or struct.unpack_from("<HH", data, pos) != _PIXEL_TAG:
        return None
    if implicit:
        return pos + 8, struct.unpack_from("<I", data, pos + 4)[0]
    vr = bytes(data[pos + 4 : pos + 6])
    if vr in _LONG_VRS:
        if pos + 12 > len(data):
            return None
        return pos + 12, struct.unpack_from("<I", data, pos + 8)[0]
    return pos + 8, struct.unpack_from("<H", data, pos + 6)[0]


def _parse(data: bytes, header_only: bool, tags: list[int] | None = None) -> tuple[Any, int]:
    """``pydicom.dcmread`` of in-memory bytes (only ``tags`` and the file meta when
    given); returns the dataset and where parsing stopped (with ``header_only``: the
    start of the PixelData element, or the end of the bytes)."""
    fp = io.BytesIO(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(fp, stop_before_pixels=header_only, specific_tags=tags)
    return ds, fp.tell()


def _parse_header(data: bytes, hand_parser: bool) -> tuple[Any, tuple[int, int] | None]:
    """The header-only dataset and ``(value offset, value length)`` of its PixelData
    element (``None`` when parsing did not stop at one).

    With ``hand_parser`` the whole header is parsed and the element's header is read
    from the bytes (:func:`_pixel_location`); without it pydicom reads only the tags
    ingestion records (``specific_tags``) and the offset follows from the encoding
    (an 8-byte element header in implicit VR, 12 for OB / OW in explicit VR); the
    length is then unknown (-1).
    """
    ds, pos = _parse(data, header_only=True, tags=None if hand_parser else _HEADER_TAGS)
    implicit, little = ds.original_encoding
    if not little:
        return ds, None
    if hand_parser:
        return ds, _pixel_location(data, pos, bool(implicit))
    return ds, ((pos + (8 if implicit else 12), -1) if pos < len(data) else None)


_TAGS = {
    0x00020010: "TransferSyntaxUID",
    0x00080018: "SOPInstanceUID",
    0x00080060: "Modality",
    0x00180050: "SliceThickness",
    0x0020000E: "SeriesInstanceUID",
    0x00200013: "InstanceNumber",
    0x00200032: "ImagePositionPatient",
    0x00200037: "ImageOrientationPatient",
    0x00280002: "SamplesPerPixel",
    0x00280008: "NumberOfFrames",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280030: "PixelSpacing",
    0x00280100: "BitsAllocated",
    0x00280101: "BitsStored",
    0x00280103: "PixelRepresentation",
    0x00280120: "PixelPaddingValue",
    0x00281052: "RescaleIntercept",
    0x00281053: "RescaleSlope",
    0x00283000: "ModalityLUTSequence",
    0x00280121: "PixelPaddingRangeLimit",
}
_HEADER_TAGS = sorted(t for t in _TAGS if t >> 16 != 0x0002)  # pydicom reads the file meta anyway
_US_TAGS = {"Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "PixelRepresentation"}
_US_OR_SS_TAGS = {"PixelPaddingValue", "PixelPaddingRangeLimit"}  # VR from the file: US or SS
_MORE = "more"  # the header does not end inside the bytes given
_AMBIGUOUS = object()  # a scanned value only pydicom can interpret
_EXPLICIT = struct.Struct("<HH2sH")  # group, element, VR, short length
_IMPLICIT = struct.Struct("<HHI")  # group, element, length
_LONG_LEN = struct.Struct("<I")


def _scan(data: bytes) -> tuple[dict[str, Any], int, int] | str | None:
    """Read the few header values ingestion needs without pydicom (Part 10 files whose
    dataset is native little endian with defined lengths only).

    Returns:
        ``(values, pixel value offset, pixel value length)``; :data:`_MORE` when ``data``
        ends before PixelData; ``None`` for anything else (pydicom parses those files).
        Strings are stripped, ``US`` values are ints, ``US or SS`` values (pixel padding)
        ints when the file states their VR (else :data:`_AMBIGUOUS`), multi-valued strings
        are split on backslashes.
    """
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    raw: dict[str, bytes] = {}
    vrs: dict[str, bytes] = {}
    pos, n, implicit, ts = 132, len(data), False, ""
    unpack = struct.unpack_from
    explicit_head, implicit_head, long_len = _EXPLICIT.unpack_from, _IMPLICIT.unpack_from, _LONG_LEN.unpack_from
    while True:
        if pos + 8 > n:
            return _MORE
        if implicit:
            (group, elem, length), head, vr = implicit_head(data, pos), 8, b""
        else:
            (group, elem, vr, length), head = explicit_head(data, pos), 8
            if vr in _LONG_VRS:
                if pos + 12 > n:
                    return _MORE
                length, head = long_len(data, pos + 8)[0], 12
        if group != 2 and not ts:  # end of the file meta group (always explicit VR)
            ts = raw.get("TransferSyntaxUID", b"").decode("ascii", "replace").strip(" \x00")
            if ts not in _NATIVE_LE:
                return None
            implicit = ts == "1.2.840.10008.1.2"
            if implicit:
                continue  # read this element again, as implicit VR
        tag = (group << 16) | elem
        if tag == 0x7FE00010:
            if length == 0xFFFFFFFF:
                return None
            break
        if length == 0xFFFFFFFF or group > 0x7FE0:
            return None
        name = _TAGS.get(tag)
        if name is not None:
            if pos + head + length > n:
                return _MORE
            raw[name] = data[pos + head : pos + head + length]
            if name in _US_OR_SS_TAGS:
                vrs[name] = vr
        pos += head + length
    values: dict[str, Any] = {"TransferSyntaxUID": ts}
    for name, value in raw.items():
        if name in _US_TAGS:
            if len(value) != 2:
                return None
            values[name] = unpack("<H", value)[0]
        elif name in _US_OR_SS_TAGS:
            # one US / SS value as pydicom reads it; anything else (implicit VR, where
            # pydicom infers the VR, or an unusual length) is left to pydicom
            fmt = {b"US": "<H", b"SS": "<h"}.get(vrs[name])
            values[name] = unpack(fmt, value)[0] if fmt is not None and len(value) == 2 else _AMBIGUOUS
        elif name != "TransferSyntaxUID":
            text = value.decode("ascii", "replace").strip(" \x00")
            values[name] = text.split("\\") if "\\" in text else text
    return values, pos + head, length


def _fill_fast(rec: FileRecord, v: dict[str, Any]) -> None:
    """:func:`_fill_record` from :func:`_scan` values (same conversions as pydicom's)."""
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
    """:func:`read_file` for plain native files, without pydicom; ``None`` / :data:`_MORE`
    when pydicom must parse the file (or more bytes are needed)."""
    scanned = _scan(data)
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
            reads (see :class:`DicomSlice`); optional.
        hand_parser: scan plain native files' headers and read their pixels without
            pydicom (:func:`_scan`, :func:`native_pixels`); ``False``: pydicom parses
            the header (``specific_tags``) and decodes uncompressed pixels on demand
            (``deferred``), the benchmark's ablation. Both give the same records and HU.

    Returns:
        ``(record, slice)``; ``slice`` is ``None`` when the file is quarantined here
        (not DICOM, no pixel data, not CT, multi-frame).
    """
    size = len(data) if size is None else size
    whole = len(data) >= size or fetch is None
    if hand_parser:
        fast = _read_fast(rel, patient, data, size)
        if fast == _MORE and not whole:
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
        and ts in _NATIVE_LE
        and int(ds.get("BitsAllocated", 0) or 0) == 16
        and int(ds.get("SamplesPerPixel", 1) or 1) == 1
        and "ModalityLUTSequence" not in ds
    )
    deferred = not hand_parser and loc is not None and ts in _NATIVE_LE
    if not native and not deferred:
        # compressed, unusual or missing pixel data: pydicom parses the complete dataset
        try:
            if not whole:
                assert fetch is not None
                data, whole = fetch(), True
                size = len(data)
            ds, _ = _parse(data, header_only=False)
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


def native_pixels(
    data: bytes | memoryview,
    offset: int,
    rows: int,
    cols: int,
    signed: bool,
    bits_stored: int = 16,
    step: int = 1,
) -> np.ndarray:
    """Native little-endian 16-bit stored values viewed in a buffer, on a strided grid.

    Only the pixels of ``[::step, ::step]`` are copied; values are masked (unsigned) or
    sign-extended (signed) to ``bits_stored`` as pydicom's ``pixel_array`` does.

    Args:
        data: buffer holding the pixel data at ``offset``.
        offset: byte offset of the first pixel.
        rows: matrix rows.
        cols: matrix columns.
        signed: PixelRepresentation 1.
        bits_stored: BitsStored (<= 16).
        step: grid stride.

    Returns:
        int16 / uint16 ``[ceil(rows/step), ceil(cols/step)]``.

    Raises:
        ValueError: the buffer ends before ``rows * cols`` pixels.
    """
    need = rows * cols * 2
    have = max(len(data) - offset, 0)
    if have < need:
        raise ValueError(f"truncated pixel data ({have} of {need} bytes)")
    full = np.frombuffer(data, dtype="<i2" if signed else "<u2", count=rows * cols, offset=offset)
    arr = np.array(full.reshape(rows, cols)[::step, ::step], dtype=np.int16 if signed else np.uint16)
    if bits_stored < 16:
        if signed:
            shift = 16 - bits_stored
            arr = (arr << shift) >> shift
        else:
            arr &= np.uint16((1 << bits_stored) - 1)
    return arr


def pixel_values(ds: Any) -> np.ndarray:
    """Stored pixel values of a single-frame grayscale image, ``[rows, cols]``.

    Native little-endian 16-bit data is read straight from the buffer (masked /
    sign-extended to BitsStored exactly as pydicom does, :func:`native_pixels`);
    everything else, compressed transfer syntaxes included, goes through
    ``ds.pixel_array``.

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
        return native_pixels(
            ds.PixelData, 0, rows, cols,
            signed=int(ds.get("PixelRepresentation", 0)) == 1,
            bits_stored=int(ds.get("BitsStored", 16)),
        )
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hu = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    ppv, limit = ds.get("PixelPaddingValue"), ds.get("PixelPaddingRangeLimit")
    return _mark_padding(stored, hu, ppv if isinstance(ppv, (int, float)) else None,
                         limit if isinstance(limit, (int, float)) else None)


def _mark_padding(
    stored: np.ndarray, hu: np.ndarray, ppv: float | None, limit: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Padding mask (HU below -1500, or the stored padding value / range) and HU with it
    set to -1000 (``hu`` is modified in place). Returns ``(hu, pad)``, both ``[h, w]``."""
    pad = hu < PAD_BELOW_HU
    if ppv is not None:
        if limit is not None:
            lo, hi = sorted((ppv, limit))
            pad |= (stored >= lo) & (stored <= hi)
        else:
            pad |= stored == ppv
    hu[pad] = AIR_HU
    return hu, pad


def _ds_float(value: Any) -> float | None:
    """A scanned single DS value as pydicom's float; ``None`` if empty, multi-valued or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def _scanned_lut(v: dict[str, Any]) -> tuple[float | None, float, int | None, int | None] | None:
    """``(slope, intercept, padding value, padding range limit)`` of scanned header values.

    ``slope`` is ``None`` when the file has no rescale (pydicom's ``apply_modality_lut``
    then returns the stored values). ``None`` overall when only pydicom can say what the
    values mean (a Modality LUT Sequence, one of slope / intercept missing, empty or
    multi-valued, a padding value whose VR is not stated).
    """
    if "ModalityLUTSequence" in v:
        return None
    ppv, limit = v.get("PixelPaddingValue"), v.get("PixelPaddingRangeLimit")
    if ppv is _AMBIGUOUS or limit is _AMBIGUOUS:
        return None
    has_slope, has_intercept = "RescaleSlope" in v, "RescaleIntercept" in v
    if not has_slope and not has_intercept:
        return None, 0.0, ppv, limit
    slope, intercept = _ds_float(v.get("RescaleSlope")), _ds_float(v.get("RescaleIntercept"))
    if slope is None or intercept is None:
        return None
    return slope, intercept, ppv, limit


def _to_hu_linear(
    stored: np.ndarray, slope: float | None, intercept: float, ppv: int | None, limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`to_hu` for a linear rescale given as numbers (no pydicom dataset needed).

    Computes exactly what ``apply_modality_lut`` does (float64 ``stored * slope +
    intercept``; stored values unchanged when ``slope`` is ``None``; for slope 1 and an
    integral intercept, float32 arithmetic, which is exact there), then the same padding
    rule as :func:`to_hu`.

    Returns:
        float32 HU ``[h, w]`` with padding set to -1000 and bool padding ``[h, w]``.
    """
    if slope is None:
        hu = stored.astype(np.float32)
    elif slope == 1.0 and intercept == int(intercept) and abs(intercept) < 2**23:
        # integers below 2**24 are exact in float32: the same bits as the float64 path
        hu = stored.astype(np.float32)
        hu += np.float32(intercept)
    else:
        wide = stored.astype(np.float64) * slope
        wide += intercept
        hu = wide.astype(np.float32)
    return _mark_padding(stored, hu, ppv, limit)


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
        slices: the :class:`DicomSlice` of each slice.
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
        slices: :class:`DicomSlice` (or ``None``) per record.
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
