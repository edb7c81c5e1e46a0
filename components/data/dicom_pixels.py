"""One CT image's pixels: stored values decoded on demand, and Hounsfield units.

A :class:`DicomSlice` knows where a file's pixel data is; nothing is decoded until asked
(:meth:`DicomSlice.stored`, on a strided grid or at full resolution). Native little-endian
16-bit data is viewed straight in the file's bytes (:func:`native_pixels`: only the strided
pixels are copied, masked / sign-extended to BitsStored as pydicom does); other uncompressed
data (the hand parser off) is decoded by ``pydicom.pixels.pixel_array``; compressed transfer
syntaxes (JPEG Lossless, JPEG 2000, ...) by pydicom's decoders (pylibjpeg plugins). Truncated
lazily read data is found from the header (:meth:`DicomSlice.check`), without decoding.

Stored values -> HU (:func:`to_hu`): pydicom's ``apply_modality_lut`` (rescale or Modality
LUT Sequence), or the same arithmetic from scanned rescale values; padding
(``PixelPaddingValue`` / range, or < -1500 HU, e.g. a circular field of view) -> air
(-1000 HU), remembered in a mask.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom  # imported here so that ingestion's worker server preloads it
from pydicom.pixels import apply_modality_lut, pixel_array

from components.data.dicom_scan import NATIVE_LE, scanned_lut

__all__ = ["AIR_HU", "PAD_BELOW_HU", "DicomSlice", "parse_bytes", "native_pixels", "pixel_values", "to_hu"]

AIR_HU = -1000
PAD_BELOW_HU = -1500.0


def parse_bytes(data: bytes, header_only: bool, tags: list[int] | None = None) -> tuple[Any, int]:
    """``pydicom.dcmread`` of in-memory bytes (only ``tags`` and the file meta when
    given); returns the dataset and where parsing stopped (with ``header_only``: the
    start of the PixelData element, or the end of the bytes)."""
    fp = io.BytesIO(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(fp, stop_before_pixels=header_only, specific_tags=tags)
    return ds, fp.tell()


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
        values: header values scanned without pydicom
            (:func:`~components.data.dicom_scan.scan_header`); when they cover the pixel
            module, native pixels are converted to HU without parsing the header with
            pydicom (same result as :func:`to_hu`).
        deferred: uncompressed pixel data that pydicom decodes on demand from ``fetch``
            (the whole file); ``parsed`` is then the header-only dataset and ``offset``
            where the PixelData value starts (the hand parser off,
            :func:`~components.data.dicom_header.read_file`).
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
            self.parsed, _ = parse_bytes(self.data, header_only=True)
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
        lut = scanned_lut(self.values) if self.native and self.values is not None else None
        if lut is None:
            return to_hu(stored, self.ds)
        return _to_hu_linear(stored, *lut)


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
        ts in NATIVE_LE
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
