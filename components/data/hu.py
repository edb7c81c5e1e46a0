"""Body / lung segmentation by threshold and the Hounsfield-unit sanity check.

Segmentation (per axial slice): body = largest connected region above -500 HU with its
holes filled; lung = voxels at or below -500 HU inside the body, closed (2 px) and
hole-filled so that dense lesions and vessels count as lung; air = voxels at or below
-500 HU outside the body; scanner padding is neither. (The lung median is taken over the
low-density voxels only.)

Sanity check (DESIGN.md §6: some OSIC series carry a wrong RescaleIntercept): the median
of air must lie in ``cfg.air_hu_range`` (when the field of view shows any air) and the
median of lung in ``cfg.lung_hu_range``. When it fails, the offsets a wrong intercept
produces (-1024, -1000, +1000, +1024 HU) are tried. **Policy**: if offsets of one sign
and only one sign make both medians plausible (air must then be visible), the volume is
corrected by the one that puts air nearest -1000 HU and the correction is recorded in
``patients.csv`` (``hu_correction``); otherwise, or with ``cfg.hu_autocorrect`` off, the
patient is quarantined with the measured medians as the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "BODY_THRESHOLD_HU",
    "INTERCEPT_OFFSETS",
    "HUCheck",
    "segment",
    "hu_stats",
    "check_hu",
]

BODY_THRESHOLD_HU = -500.0
INTERCEPT_OFFSETS = (-1024, -1000, 1000, 1024)
_MIN_VOXELS = 20
_PLANE = np.zeros((3, 3, 3), dtype=bool)
_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Per-slice hole filling: background regions not touching the slice border become True."""
    labels, n = ndimage.label(~mask, structure=_PLANE)
    touches = np.zeros(n + 1, dtype=bool)  # label -> reaches the slice border (0: the mask)
    for edge in (labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
        touches[edge] = True
    return mask | ~touches[labels]


def segment(hu: np.ndarray, pad: np.ndarray, close: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold segmentation of a stack of axial slices.

    Args:
        hu: ``[S, H, W]`` Hounsfield units (any real dtype).
        pad: ``bool [S, H, W]`` scanner padding.
        close: close and fill the lung mask (off: plain low-density voxels in the body).

    Returns:
        ``(body, lung, air)``, each ``bool [S, H, W]``.
    """
    dense = (hu > BODY_THRESHOLD_HU) & ~pad
    labels, n = ndimage.label(dense, structure=_PLANE)  # in-plane: each label lies in one slice
    body = np.zeros_like(dense)
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        slice_of = np.zeros(n + 1, dtype=np.int64)  # label -> its slice (bounding box start)
        slice_of[1:] = [box[0].start for box in ndimage.find_objects(labels)]
        best = np.zeros(dense.shape[0], dtype=np.int64)  # label of the largest region per slice
        best_size = np.zeros(dense.shape[0], dtype=np.int64)
        for lab in np.argsort(sizes[1:], kind="stable") + 1:  # ascending: the largest wins
            best[slice_of[lab]], best_size[slice_of[lab]] = lab, sizes[lab]
        keep = np.zeros(n + 1, dtype=bool)
        keep[best[best_size > 0]] = True
        body = keep[labels]
    body = _fill_holes(body)
    low = ~dense & ~pad
    lung = low & body
    if close and lung.any():  # dense lesions inside / along the lung (fibrosis, vessels) belong to it
        closed = ndimage.binary_closing(lung, structure=_PLANE, iterations=2, border_value=0)
        lung = _fill_holes(closed) & body
    return body, lung, low & ~body


def hu_stats(hu: np.ndarray, pad: np.ndarray, lung_out: list[np.ndarray] | None = None) -> tuple[float, float]:
    """Median HU of air (outside the body) and of lung (inside it); NaN when too few voxels.

    Args:
        hu: ``[S, H, W]`` Hounsfield units.
        pad: ``bool [S, H, W]`` scanner padding.

    Returns:
        ``(air_median, lung_median)`` in HU.
    """
    pad = pad | (hu < -1500)
    _, lung, air = segment(hu, pad, close=False)
    if lung_out is not None:
        lung_out.append(lung)
    air_v, lung_v = hu[air], hu[lung & (hu <= BODY_THRESHOLD_HU)]
    air_med = float(np.median(air_v)) if air_v.size >= _MIN_VOXELS else float("nan")
    lung_med = float(np.median(lung_v)) if lung_v.size >= _MIN_VOXELS else float("nan")
    return air_med, lung_med


@dataclass
class HUCheck:
    """Outcome of :func:`check_hu`.

    Attributes:
        ok: the volume (after ``correction``) is plausible CT in HU.
        air_median: air median after correction (NaN if no air is visible).
        lung_median: lung median after correction (NaN if no lung was found).
        correction: HU added to every non-padding voxel (0 = none).
        reason: why it failed, or what was corrected; '' when plainly fine.
        lung: bool ``[S, H, W]`` low-density lung voxels after correction (``None`` unless ok).
    """

    ok: bool
    air_median: float
    lung_median: float
    correction: int
    reason: str
    lung: np.ndarray | None = field(default=None, compare=False, repr=False)


def _fmt(value: float) -> str:
    return f"{value:.0f} HU" if np.isfinite(value) else "none (nothing below -500 HU)"


def _inside(value: float, rng: tuple[float, float]) -> bool:
    return bool(np.isfinite(value) and rng[0] <= value <= rng[1])


def _plausible(air: float, lung: float, air_rng: tuple[float, float], lung_rng: tuple[float, float]) -> bool:
    return _inside(lung, lung_rng) and (not np.isfinite(air) or _inside(air, air_rng))


def check_hu(
    hu: np.ndarray,
    pad: np.ndarray,
    air_range: tuple[float, float],
    lung_range: tuple[float, float],
    autocorrect: bool = True,
) -> HUCheck:
    """Check that air and lung medians look like CT in HU; detect a wrong intercept.

    Args:
        hu: ``[S, H, W]`` HU (a down-sampled grid is enough).
        pad: ``bool [S, H, W]`` scanner padding.
        air_range: plausible air median, HU.
        lung_range: plausible lung median, HU.
        autocorrect: correct an unambiguous intercept offset instead of failing.

    Returns:
        :class:`HUCheck` (see the module docstring for the policy).
    """
    hu = hu.astype(np.float32, copy=False)
    masks: list[np.ndarray] = []
    air, lung = hu_stats(hu, pad, masks)
    if _plausible(air, lung, air_range, lung_range):
        return HUCheck(True, air, lung, 0, "", masks[0])
    found = f"air median {_fmt(air)}, lung median {_fmt(lung)}"
    expected = f"expected air {air_range[0]:.0f}..{air_range[1]:.0f}, lung {lung_range[0]:.0f}..{lung_range[1]:.0f}"
    no_lung = not np.isfinite(lung) and _inside(air, air_range)
    fits = []
    for off in INTERCEPT_OFFSETS:
        shifted: list[np.ndarray] = []
        a, lu = hu_stats(hu + off, pad, shifted)
        if np.isfinite(a) and _plausible(a, lu, air_range, lung_range):
            fits.append((abs(a + 1000.0), off, a, lu, shifted[0]))
    if len({np.sign(f[1]) for f in fits}) == 1:
        _, off, a, lu, lung_mask = min(fits, key=lambda f: f[:2])
        if autocorrect:
            return HUCheck(True, a, lu, off, f"RescaleIntercept corrected by {off:+d} HU ({found} before)", lung_mask)
        return HUCheck(False, air, lung, 0, f"HU sanity failed: {found}; wrong RescaleIntercept? ({off:+d} HU would fit)")
    if fits:
        return HUCheck(False, air, lung, 0, f"HU sanity failed, ambiguous intercept ({found}; {expected})")
    if no_lung:
        return HUCheck(False, air, lung, 0, "no lung found inside the body")
    # say what was observed; no intercept offset fits, so do not blame the intercept
    valid = ~(pad | (hu < -1500))
    body, _, _ = segment(hu, ~valid, close=False)
    body_share = float(body.sum() / max(int(valid.sum()), 1))
    seen = [found, f"body fills {100 * body_share:.0f} % of the field of view"]
    if body_share > 0.9 or not _inside(air, air_range):  # what lies outside the body is not air
        seen.append("no air around the body in the field of view")
    if not np.isfinite(lung) or not _inside(lung, lung_range):
        seen.append("no lung-density region inside the body" if not np.isfinite(lung) else "no lung in the expected range")
    return HUCheck(False, air, lung, 0, f"not a chest CT as expected: {'; '.join(seen)} ({expected}; "
                                        "no RescaleIntercept offset fits)")
