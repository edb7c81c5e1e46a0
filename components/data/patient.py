"""Everything done to one patient folder: files -> 4 windowed slices (or a quarantine reason).

:func:`process_patient` runs in an ingestion worker process; it holds one patient's series
in memory at a time and returns only the small per-patient arrays. Per file only the header
is read and parsed; pixels are read for a sample of slices (HU check, lung extent, on a
<= 128 px grid) and at full resolution for the four selected slices. Bad input never
raises: unreadable files are quarantined file by file, and a patient that cannot yield
four slices is quarantined with a one-line reason. Only a storage failure
(:class:`~components.errors.UserError` from the source) propagates.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.config import IngestConfig
from components.data.dicom_header import HEAD_BYTES, FileRecord, read_file
from components.data.dicom_pixels import AIR_HU, PAD_BELOW_HU, DicomSlice
from components.data.dicom_series import choose_series, file_number, sort_slices
from components.data.dicom_volume import Volume, load_volume
from components.data.hu import check_hu, segment
from components.data.slices import (
    render_fraction,
    render_images,
    sample_slices,
    sampled_lung_extent,
    select_levels,
)
from components.data.sources import Source, read_head, read_range
from components.errors import UserError

__all__ = ["PatientOutcome", "process_patient"]


@dataclass
class PatientOutcome:
    """One patient's result.

    Attributes:
        row: the ``patients.csv`` row (status ``ok`` / ``quarantined``, reason, stats).
        files: the patient's :class:`FileRecord` s, every file exactly once.
        images: float32 ``[4, S, S]`` in [-1, 1] (``None`` unless ok).
        lung_masks: uint8 ``[4, S, S]`` in {0, 1}.
        masks: float32 ``[4, S, S]`` in [0, 1] ground-truth disease fraction, if supplied.
        distractor: float32 ``[4, S, S]`` in [0, 1] distractor fraction, if supplied.
        marker: float32 ``[4, S, S]`` in [0, 1] shortcut-marker fraction, if supplied.
    """

    row: dict[str, Any]
    files: list[FileRecord]
    images: np.ndarray | None = None
    lung_masks: np.ndarray | None = None
    masks: np.ndarray | None = None
    distractor: np.ndarray | None = None
    marker: np.ndarray | None = None
    mask_note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _empty_row(patient: str, n_files: int) -> dict[str, Any]:
    nan = float("nan")
    return {
        "patient": patient,
        "status": "quarantined",
        "reason": "",
        "label": None,
        "cohort": "",
        "split": "",
        "fold": -1,
        "slice_indices": "",
        "selected_files": "",
        "series": "",
        "series_choice": "",
        "sort_method": "",
        "hu_air": nan,
        "hu_lung": nan,
        "hu_correction": 0,
        "n_files": n_files,
        "n_slices": 0,
        "slice_spacing_mm": nan,
        "max_gap_mm": nan,
        "pixel_spacing_mm": nan,
        "rows": None,
        "cols": None,
        "lung_first": None,
        "lung_last": None,
        "has_mask": False,
        "note": "",
    }


def _quarantine(out: PatientOutcome, reason: str) -> PatientOutcome:
    out.row["status"], out.row["reason"] = "quarantined", reason
    for rec in out.files:
        if rec.status == "used":
            rec.mark("quarantined", f"patient quarantined: {reason}")
    out.images = out.lung_masks = out.masks = out.distractor = out.marker = None
    return out


def _match_mask_slices(vol: Volume, recs: list[FileRecord], idx: list[int], z: np.ndarray, spacing: float) -> list[int] | str:
    """Mask slice per selected slice: nearest ``z`` (within half a slice), else file number."""
    ks: list[int] = []
    tol = max(0.5 * spacing, 0.01) if math.isfinite(spacing) else 0.5
    for i in idx:
        zi = vol.z_mm[i]
        if np.isfinite(zi) and z.size:
            k = int(np.argmin(np.abs(z - zi)))
            if abs(z[k] - zi) > tol:
                return f"no mask slice within {tol:.2f} mm of z={zi:.2f}"
        else:
            k = int(file_number(recs[vol.indices[i]].path)) - 1
            if not 0 <= k < len(z):
                return "mask slice cannot be matched"
        ks.append(k)
    return ks


_EXTRA_MASKS = ("distractor", "marker")


def _load_masks(source: Source, mask_rel: str, vol: Volume, recs: list[FileRecord], idx: list[int], spacing: float,
                size: int) -> tuple[np.ndarray | None, dict[str, np.ndarray | None], str]:
    """Disease mask and the optional ``distractor`` / ``marker`` masks of the selected slices."""
    none: dict[str, np.ndarray | None] = dict.fromkeys(_EXTRA_MASKS)
    try:
        npz = np.load(io.BytesIO(source.read(mask_rel)), allow_pickle=False)
        mask, z = np.asarray(npz["mask"]), np.asarray(npz["z"], dtype=np.float64).ravel()
        extra = {k: np.asarray(npz[k]) if k in npz.files else None for k in _EXTRA_MASKS}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bad mask file is noted, not fatal
        return None, none, f"mask file unreadable ({type(exc).__name__})"
    if mask.ndim != 3 or mask.shape[1:] != tuple(vol.shape):
        return None, none, f"mask shape {mask.shape} does not match the images"
    if z.size != mask.shape[0]:
        return None, none, "mask z has a different length than mask"
    ks = _match_mask_slices(vol, recs, idx, z, spacing)
    if isinstance(ks, str):
        return None, none, ks
    m = render_fraction(mask[ks] > 0, size)
    rendered = {k: render_fraction(a[ks] > 0, size) if a is not None and a.shape == mask.shape else None
                for k, a in extra.items()}
    return m, rendered, ""


def process_patient(
    source: Source, patient: str, rels: list[str], mask_rel: str | None, cfg: IngestConfig
) -> PatientOutcome:
    """Read, check and reduce one patient folder.

    Args:
        source: where the files are.
        patient: the pseudonymous patient ID (folder name).
        rels: the patient's files, relative to the source.
        mask_rel: ``masks/<patient>.npz`` when the cohort ships ground truth.
        cfg: ingestion settings.

    Returns:
        :class:`PatientOutcome`; label, cohort and fold are filled in later.
    """
    out = PatientOutcome(row=_empty_row(patient, len(rels)), files=[])
    datasets: list[DicomSlice | None] = []
    for rel in rels:
        try:
            head, size = read_head(source, rel, HEAD_BYTES)
        except OSError as exc:
            rec, sl = FileRecord(rel, patient, "quarantined", f"cannot read file ({type(exc).__name__})"), None
        else:
            rec, sl = read_file(
                rel, patient, head, size,
                lambda r=rel: source.read(r),  # type: ignore[misc]
                lambda offset, n, r=rel: read_range(source, r, offset, n),  # type: ignore[misc]
                hand_parser=cfg.hand_parser,
            )
        out.files.append(rec)
        datasets.append(sl)
    try:
        return _reduce(source, out, datasets, mask_rel, cfg)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - never crash the run on one patient
        return _quarantine(out, f"internal error while reading ({type(exc).__name__})")


def _lung_area(vol: Volume, correction: int) -> Any:
    """Lung voxel count per slice on the grid, after ``correction``, as :func:`check_hu` sees it."""

    def area(ks: list[int]) -> np.ndarray:
        hu, pad = vol.grid(ks)
        hu = hu + correction
        _, lung, _ = segment(hu, pad | (hu < PAD_BELOW_HU), close=False)
        return lung.reshape(len(ks), -1).sum(axis=1)

    return area


def _reduce(source: Source, out: PatientOutcome, datasets: list[Any], mask_rel: str | None, cfg: IngestConfig) -> PatientOutcome:
    row = out.row
    ct = [i for i, ds in enumerate(datasets) if ds is not None]
    recs = [out.files[i] for i in ct]
    dss = [datasets[i] for i in ct]
    choice = choose_series(recs)
    if choice is None:
        return _quarantine(out, "no readable CT image")
    row["series"], row["series_choice"] = choice.series, choice.reason
    order = sort_slices(recs, choice.indices)
    row["sort_method"] = order.method
    if len(order.indices) < cfg.min_slices:
        return _quarantine(out, f"too few slices ({len(order.indices)} < {cfg.min_slices})")
    vol = load_volume(recs, dss, order)  # checks every file, decodes none (native data)
    if vol is None:
        return _quarantine(out, "no slice could be decoded")
    n = len(vol.indices)
    gaps = np.abs(np.diff(vol.positions_mm))
    finite = gaps[np.isfinite(gaps)]
    spacing = float(np.median(finite)) if finite.size else order.spacing_mm
    row.update(
        n_slices=n,
        slice_spacing_mm=spacing,
        max_gap_mm=float(finite.max()) if finite.size else order.max_gap_mm,
        pixel_spacing_mm=vol.pixel_spacing_mm,
        rows=int(vol.shape[0]),
        cols=int(vol.shape[1]),
    )
    if n < cfg.min_slices:
        return _quarantine(out, f"too few decodable slices ({n} < {cfg.min_slices})")
    # HU check and lung extent on the <= 128 px grid of a sample of slices (all up to 32)
    sample = sample_slices(n)
    small, small_pad = vol.grid(sample)
    chk = check_hu(small, small_pad, cfg.air_hu_range, cfg.lung_hu_range, cfg.hu_autocorrect)
    row.update(hu_air=chk.air_median, hu_lung=chk.lung_median)
    extent: tuple[int, int] | None
    if chk.ok:
        row["hu_correction"], row["note"] = chk.correction, chk.reason
        assert chk.lung is not None
        sample_area = chk.lung.reshape(len(sample), -1).sum(axis=1)
        extent = sampled_lung_extent(_lung_area(vol, chk.correction), n, sample, sample_area, cfg.lung_area_fraction)
    elif cfg.require_chest:
        return _quarantine(out, chk.reason)
    else:  # lenient (explain on a non-chest CT): keep going, say so
        row["hu_correction"], row["note"], extent = 0, f"lenient: {chk.reason}", None
    if extent is None and not cfg.require_chest:
        extent = (0, n - 1)
        row["note"] = "; ".join(x for x in (row["note"], "lenient: slice levels of the whole series") if x)
    if extent is None:
        return _quarantine(out, "no lung found inside the body")
    row["lung_first"], row["lung_last"] = extent
    idx = select_levels(*extent, cfg.slice_levels)
    if len(set(idx)) < len(idx) and not cfg.require_chest and extent[1] - extent[0] + 1 >= len(idx):
        idx = [int(round(v)) for v in np.linspace(extent[0], extent[1], len(idx))]
        row["note"] = "; ".join(x for x in (row["note"], "lenient: evenly spaced slices") if x)
    if len(set(idx)) < len(idx):
        return _quarantine(out, f"lung extent spans only {extent[1] - extent[0] + 1} slice(s)")
    sel, sel_pad = vol.full(idx)
    # the grid of the selected slices is the full-resolution HU strided (to_hu is pointwise)
    sel_small, sel_small_pad = sel[:, :: vol.step, :: vol.step], sel_pad[:, :: vol.step, :: vol.step]
    if chk.correction:
        sel = np.where(sel_pad, AIR_HU, sel + chk.correction).astype(np.float32)
        sel_small = np.where(sel_small_pad, AIR_HU, sel_small + chk.correction).astype(np.float32)
    out.images = render_images(sel, cfg.window_hu, cfg.image_size)
    # lung masks of the selected slices on the segmentation grid, area-resized like the images
    _, sel_lung, _ = segment(sel_small, sel_small_pad | (sel_small < PAD_BELOW_HU))
    out.lung_masks = (render_fraction(sel_lung, cfg.image_size) >= 0.5).astype(np.uint8)
    row["slice_indices"] = ";".join(str(i) for i in idx)
    row["selected_files"] = ";".join(recs[vol.indices[i]].path.rsplit("/", 1)[-1] for i in idx)
    if mask_rel is not None:
        out.masks, extra, out.mask_note = _load_masks(source, mask_rel, vol, recs, idx, spacing, cfg.image_size)
        out.distractor, out.marker = extra["distractor"], extra["marker"]
        row["has_mask"] = out.masks is not None
        if out.mask_note:
            row["note"] = "; ".join(x for x in (row["note"], out.mask_note) if x)
    row["status"], row["reason"] = "ok", ""
    return out
