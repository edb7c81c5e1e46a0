"""Interventional stacks of synthetic patients: the same patient with and without a component.

For a black box, the ground-truth importance of a phantom component (``disease``,
``distractor``, ``marker``) is how much its output moves when the component is removed from
the input and nothing else changes (FunnyBirds, Hesse et al. 2023; DESIGN.md §5b). This
module produces the inputs of that measurement without writing DICOM: it renders a patient
with :func:`components.data.synth.patient_phantom`, stores and reads back its HU as the
synthetic scanner and the DICOM reader would (rounded stored values, padding -> -1000 HU),
selects the 4 slice levels as ingestion does (HU check and lung extent on the <= 128 px
grid, :mod:`components.data.hu`, :mod:`components.data.slices`) and windows / area-resizes
them with the ingest functions. The slice indices are chosen once per patient, on the
rendering with every component, and reused for every variant, so a variant differs from the
full stack only where the removed component was. On request the same stack is also rendered
with every component removed (the patient's anatomy alone): the input a counterfactual that
removed exactly the planted components would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from components.config import IngestConfig, SynthConfig
from components.data.dicom_pixels import AIR_HU, PAD_BELOW_HU
from components.data.hu import check_hu, segment
from components.data.phantom import COMPONENTS, PAD_HU, Phantom
from components.data.slices import (
    render_fraction,
    render_images,
    sample_slices,
    sampled_lung_extent,
    select_levels,
)
from components.data.synth import (
    PatientRecord,
    ScannerProfile,
    _stored_pixels,
    draw_patients,
    patient_phantom,
    scanner_profile,
)
from components.errors import UserError

__all__ = [
    "InterventionStacks",
    "scanner_hu",
    "select_slices",
    "render_interventions",
    "cohort_interventions",
]

_MAX_GRID = 128  # the DICOM reader's grid (components.data.dicom_volume.load_volume)


@dataclass
class InterventionStacks:
    """Ingested-style stacks of N synthetic patients, with every component and without each.

    Attributes:
        patients: N patient IDs.
        images: float32 ``[N,4,H,W]`` in [-1,1], every component the patient has.
        removed: component -> float32 ``[N,4,H,W]`` in [-1,1], the same stacks without it.
        masks: component -> float32 ``[N,4,H,W]`` in [0,1], its area fraction per pixel
            (``distractor``: the ground-glass core, as ``distractor.npy``).
        present: component -> bool ``[N]``: removing it changes the stack.
        lung_masks: uint8 ``[N,4,H,W]`` in {0,1}, as ingestion segments them.
        slice_indices: int64 ``[N,4]`` selected slices (0 = most superior).
        bare: float32 ``[N,4,H,W]`` in [-1,1], the same stacks with every component removed
            (the patient's anatomy alone), or None when not asked for.
    """

    patients: list[str]
    images: np.ndarray
    removed: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    lung_masks: np.ndarray
    slice_indices: np.ndarray
    components: tuple[str, ...] = field(default=COMPONENTS)
    bare: np.ndarray | None = None


def scanner_hu(hu: np.ndarray, profile: ScannerProfile) -> tuple[np.ndarray, np.ndarray]:
    """Phantom HU -> the HU the DICOM reader gets back from this scanner's files.

    Args:
        hu: float32 ``[S,H,W]`` phantom Hounsfield units (PAD_HU outside a circular FOV).
        profile: the scanner (intercept, signedness, padding).

    Returns:
        ``(hu float32 [S,H,W], pad bool [S,H,W])``: stored values rounded and clipped as the
        writer stores them, padding set to -1000 HU as the reader does.
    """
    stored = _stored_pixels(hu, profile)
    out = stored.astype(np.float32) + np.float32(profile.rescale_intercept)
    pad = out < PAD_BELOW_HU
    if profile.circular_fov:
        pad |= stored == int(PAD_HU - profile.rescale_intercept)
    out[pad] = AIR_HU
    return out, pad


def select_slices(hu: np.ndarray, pad: np.ndarray, cfg: IngestConfig) -> tuple[list[int], int] | str:
    """Slice indices at ``cfg.slice_levels`` of the lung extent, as ingestion picks them.

    Args:
        hu: float32 ``[S,H,W]`` HU from :func:`scanner_hu`.
        pad: bool ``[S,H,W]`` padding.
        cfg: ingestion settings (HU ranges, lung-area fraction, levels).

    Returns:
        ``(indices, hu_correction)``, or the quarantine reason.
    """
    n = hu.shape[0]
    step = max(1, -(-max(hu.shape[1:]) // _MAX_GRID))
    sample = sample_slices(n)
    small, small_pad = hu[sample, ::step, ::step], pad[sample, ::step, ::step]
    chk = check_hu(small, small_pad, cfg.air_hu_range, cfg.lung_hu_range, cfg.hu_autocorrect)
    if not chk.ok or chk.lung is None:
        return chk.reason or "HU check failed"

    def area(ks: list[int]) -> np.ndarray:
        g, gp = hu[ks, ::step, ::step] + chk.correction, pad[ks, ::step, ::step]
        return segment(g, gp | (g < PAD_BELOW_HU), close=False)[1].reshape(len(ks), -1).sum(axis=1)

    sample_area = chk.lung.reshape(len(sample), -1).sum(axis=1)
    extent = sampled_lung_extent(area, n, sample, sample_area, cfg.lung_area_fraction)
    if extent is None:
        return "no lung found inside the body"
    idx = select_levels(*extent, cfg.slice_levels)
    if len(set(idx)) < len(idx):
        return f"lung extent spans only {extent[1] - extent[0] + 1} slice(s)"
    return idx, int(chk.correction)


def _stack(ph: Phantom, profile: ScannerProfile, idx: list[int], correction: int, cfg: IngestConfig) -> np.ndarray:
    hu, pad = scanner_hu(ph.hu[idx], profile)
    if correction:
        hu = np.where(pad, AIR_HU, hu + correction).astype(np.float32)
    return render_images(hu, cfg.window_hu, cfg.image_size)


def _lung(ph: Phantom, profile: ScannerProfile, idx: list[int], correction: int, cfg: IngestConfig) -> np.ndarray:
    hu, pad = scanner_hu(ph.hu[idx], profile)
    step = max(1, -(-max(hu.shape[1:]) // _MAX_GRID))
    small, small_pad = hu[:, ::step, ::step], pad[:, ::step, ::step]
    if correction:
        small = np.where(small_pad, AIR_HU, small + correction).astype(np.float32)
    _, lung, _ = segment(small, small_pad | (small < PAD_BELOW_HU))
    return (render_fraction(lung, cfg.image_size) >= 0.5).astype(np.uint8)


def render_interventions(
    records: Sequence[PatientRecord],
    profile: ScannerProfile,
    synth_cfg: SynthConfig,
    ingest_cfg: IngestConfig,
    components: Sequence[str] = COMPONENTS,
    bare: bool = False,
) -> InterventionStacks:
    """Ingested-style stacks of ``records`` with every component and without each one.

    Args:
        records: patients from :func:`components.data.synth.draw_patients`.
        profile: their scanner (:func:`components.data.synth.scanner_profile`).
        synth_cfg: ``slices_per_patient`` and ``marker_size_mm`` of the cohort.
        ingest_cfg: window, image size and slice levels of the dataset the black box reads.
        components: the components to remove, one at a time (``()``: only the full stacks).
        bare: also render the stacks with every component removed (``InterventionStacks.bare``).

    Returns:
        :class:`InterventionStacks` (float32 stacks in [-1,1], ``H = W = ingest_cfg.image_size``).

    Raises:
        UserError: a patient that ingestion would quarantine (named with the reason).
    """
    unknown = set(components) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown components {sorted(unknown)}; known: {COMPONENTS}")
    comps = tuple(components)
    n_slices = synth_cfg.slices_per_patient
    images, lungs, indices = [], [], []
    removed: dict[str, list[np.ndarray]] = {c: [] for c in comps}
    masks: dict[str, list[np.ndarray]] = {c: [] for c in comps}
    without_all: list[np.ndarray] = []
    for rec in records:
        full = patient_phantom(rec, profile, n_slices, synth_cfg.marker_size_mm)
        hu, pad = scanner_hu(full.hu, profile)
        chosen = select_slices(hu, pad, ingest_cfg)
        if isinstance(chosen, str):
            raise UserError(f"patient {rec.patient_id}: ingestion would quarantine it ({chosen})")
        idx, corr = chosen
        indices.append(idx)
        images.append(_stack(full, profile, idx, corr, ingest_cfg))
        lungs.append(_lung(full, profile, idx, corr, ingest_cfg))
        truth = {"disease": full.mask, "distractor": full.distractor, "marker": full.marker}
        for c in comps:
            keep = tuple(x for x in COMPONENTS if x != c)
            variant = patient_phantom(rec, profile, n_slices, synth_cfg.marker_size_mm, components=keep)
            removed[c].append(_stack(variant, profile, idx, corr, ingest_cfg))
            masks[c].append(render_fraction(truth[c][idx] > 0, ingest_cfg.image_size))
        if bare:
            anatomy = patient_phantom(rec, profile, n_slices, synth_cfg.marker_size_mm, components=())
            without_all.append(_stack(anatomy, profile, idx, corr, ingest_cfg))
    x = np.stack(images).astype(np.float32)
    out_removed = {c: np.stack(v).astype(np.float32) for c, v in removed.items()}
    return InterventionStacks(
        patients=[r.patient_id for r in records],
        images=x,
        removed=out_removed,
        masks={c: np.stack(v).astype(np.float32) for c, v in masks.items()},
        present={c: np.any(out_removed[c] != x, axis=(1, 2, 3)) for c in comps},
        lung_masks=np.stack(lungs),
        slice_indices=np.asarray(indices, dtype=np.int64),
        components=comps,
        bare=np.stack(without_all).astype(np.float32) if bare else None,
    )


def cohort_interventions(
    cohort: str,
    n_patients: int,
    seed: int,
    synth_cfg: SynthConfig,
    ingest_cfg: IngestConfig,
    patient_ids: Sequence[str] | None = None,
    components: Sequence[str] = COMPONENTS,
    bare: bool = False,
) -> InterventionStacks:
    """:func:`render_interventions` for patients of a cohort written by ``write_cohort``.

    Args:
        cohort: ``"osic"`` or ``"external"``.
        n_patients, seed, synth_cfg: the arguments the cohort was written with.
        ingest_cfg: the dataset's ingestion settings.
        patient_ids: the patients to render, in this order (default: all).
        components: the components to remove, one at a time.
        bare: also render the stacks with every component removed.

    Raises:
        UserError: a patient ID that is not in the cohort.
    """
    records = draw_patients(cohort, n_patients, seed, synth_cfg)  # type: ignore[arg-type]
    if patient_ids is not None:
        by_id = {r.patient_id: r for r in records}
        missing = [p for p in patient_ids if p not in by_id]
        if missing:
            raise UserError(f"{len(missing)} patient(s) not in the {cohort} cohort (seed {seed}): {missing[0]} ...")
        records = [by_id[p] for p in patient_ids]
    return render_interventions(records, scanner_profile(cohort, synth_cfg), synth_cfg, ingest_cfg,  # type: ignore[arg-type]
                                components, bare)
