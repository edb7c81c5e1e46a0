"""Chest-CT phantom in Hounsfield units with planted, label-driving fibrosis (DESIGN.md §7).

Everything is built in patient millimetres (DICOM LPS: +x = patient left = image right,
+y = posterior = image down, +z = superior) and sampled on a square pixel grid, so the
same patient can be rendered at any matrix. Slice ``k = 0`` is the most superior slice;
lungs start one or two slices below it and end one or two slices above the last one.

Tissues: air -1000 HU, lung parenchyma ~ -850 HU (per-patient mean -850 +- 15, smooth
texture, slight posterior density gradient) with vessels as tapered branching tubes,
body 40 HU with a -100 HU fat rim, ribs and spine (cancellous 300 HU, cortex 900 HU),
heart, trachea. Disease (the ground-truth ``mask``): a continuous ``extent`` in [0, 1]
sets the fraction of the subpleural lung band (<= 20 mm from the pleura) that is fibrotic,
with posterior / basal / peripheral predominance. Fibrotic lung is denser (~ -680 HU) and
carries reticular lines (~ -300 HU); within 12 mm of the pleura it holds clustered
honeycomb cysts (3-10 mm, -980 HU lumen, -100 HU walls). The denser band is what keeps
the disease visible after down-sampling to 32 px, where single cysts vanish. The
``distractor`` is ground glass (-700...-500 HU blobs), drawn independently of ``extent``.
The optional ``marker`` is a planted shortcut: a square radiopaque tag (2000 HU) lying in
the air just anterior to the body on every slice, as skin markers and burned-in
annotations appear on real scans; never inside the body or the lungs.

Interventions: ``components`` renders the same patient (same seed) without any of
``disease``, ``distractor``, ``marker``. Each component draws from its own random stream
and is blended into the image only on its own pixels, so removing one changes only the
pixels of that component (``mask``, ``distractor_support``, ``marker``) and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "AIR_HU",
    "BODY_HU",
    "FAT_HU",
    "LUNG_HU",
    "CANCELLOUS_HU",
    "CORTEX_HU",
    "CYST_HU",
    "CYST_WALL_HU",
    "RETICULAR_HU",
    "FIBROTIC_HU",
    "GGO_HU_RANGE",
    "MARKER_HU",
    "COMPONENTS",
    "PAD_HU",
    "DEFAULT_FOV_MM",
    "Phantom",
    "phantom_volume",
    "lung_scale",
]

AIR_HU = -1000.0
BODY_HU = 40.0
FAT_HU = -100.0
LUNG_HU = -850.0
CANCELLOUS_HU = 300.0
CORTEX_HU = 900.0
CSF_HU = 15.0
CYST_HU = -980.0
CYST_WALL_HU = -100.0
RETICULAR_HU = -300.0
FIBROTIC_HU = -680.0
GGO_HU_RANGE = (-700.0, -500.0)
PAD_HU = -3024.0
MARKER_HU = 2000.0  # radiopaque tag (metal / lead letter): above the lung window, like bone cortex
COMPONENTS: tuple[str, ...] = ("disease", "distractor", "marker")
DEFAULT_FOV_MM = 0.7 * 512  # a 512 matrix at 0.7 mm pixels

_BAND_MM = 20.0  # fibrosis (reticulation) band depth below the pleura
_HONEY_MM = 12.0  # honeycombing band depth
_MIN_HU, _MAX_HU = -1024.0, 3071.0
_GGO_CUTOFF = 0.01  # ground-glass blend weights below this are 0 (compact support, < 3 HU)
_MARKER_GAP_MM = 3.0  # air between the body surface and the marker


@dataclass(frozen=True)
class Phantom:
    """One synthetic CT series.

    Attributes:
        hu: float32 [S,H,W], Hounsfield units in [-1024, 3071]; PAD_HU (-3024) outside a
            circular field of view when one was requested.
        mask: uint8 [S,H,W], 1 = label-driving disease (honeycombing ∪ reticulation).
        distractor: uint8 [S,H,W], 1 = label-independent ground glass (blend weight >= 0.5).
        lung: uint8 [S,H,W], 1 = lung (parenchyma, vessels and lesions inside it).
        marker: uint8 [S,H,W], 1 = the planted shortcut marker (all zeros when not drawn).
        distractor_support: uint8 [S,H,W], every pixel the ground glass altered (blend weight
            > 0, outside the disease); a superset of ``distractor``.
        z: float64 [S], slice position (mm, superior positive), strictly decreasing.
        level: float64 [S], relative lung level (0 = apex, 1 = base; outside [0,1] = no lung).
        pixel_spacing: float, mm per pixel (rows = columns).
        slice_spacing: float, mm between consecutive slices.
        origin_xy: (x, y) in mm of the centre of pixel [0, 0].
        extent: the requested disease extent (fraction of the subpleural band).
        components: the components drawn (a subset of :data:`COMPONENTS`).
    """

    hu: np.ndarray
    mask: np.ndarray
    distractor: np.ndarray
    lung: np.ndarray
    marker: np.ndarray
    distractor_support: np.ndarray
    z: np.ndarray
    level: np.ndarray
    pixel_spacing: float
    slice_spacing: float
    origin_xy: tuple[float, float]
    extent: float
    components: tuple[str, ...] = COMPONENTS


@dataclass(frozen=True)
class _Anatomy:
    """Per-patient geometry in mm (body centred on x = 0)."""

    body_ax: float
    body_ay: float
    body_dy: float
    fat_mm: float
    lung_hu: float
    lung_len: float
    margins: tuple[int, int]
    fracs: tuple[float, float]
    z_top: float
    rib_phase: float

    @property
    def inner_ax(self) -> float:
        return self.body_ax - self.fat_mm - 12.0

    @property
    def inner_ay(self) -> float:
        return self.body_ay - self.fat_mm - 12.0


def _draw_anatomy(rng: np.random.Generator, n_slices: int) -> _Anatomy:
    small = n_slices < 8
    return _Anatomy(
        body_ax=float(rng.uniform(140.0, 160.0)),
        body_ay=float(rng.uniform(98.0, 112.0)),
        body_dy=float(rng.uniform(-6.0, 6.0)),
        fat_mm=float(rng.uniform(8.0, 16.0)),
        lung_hu=float(np.clip(rng.normal(LUNG_HU, 15.0), -880.0, -815.0)),
        lung_len=float(rng.uniform(220.0, 280.0)),
        margins=(1, 1) if small else (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
        fracs=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7))),
        z_top=float(rng.uniform(-80.0, -20.0)),
        rib_phase=float(rng.uniform(0.0, 28.0)),
    )


def _slice_levels(an: _Anatomy, n_slices: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Slice z (mm, decreasing, 2 decimals) and relative lung level per slice."""
    top, bottom = an.margins
    n_lung = n_slices - top - bottom
    dz = round(an.lung_len / (n_lung - 1 + an.fracs[0] + an.fracs[1]), 2)
    z = np.round(an.z_top - dz * np.arange(n_slices), 2)
    z_apex = z[top] + an.fracs[0] * dz
    z_base = z[n_slices - 1 - bottom] - an.fracs[1] * dz
    level = (z_apex - z) / (z_apex - z_base)
    return z.astype(np.float64), level.astype(np.float64), float(dz)


def lung_scale(level: np.ndarray | float) -> np.ndarray:
    """Cross-section scale of the lungs vs relative level (0 = apex, 1 = base).

    Args:
        level: relative level(s); values outside [0, 1] have no lung.

    Returns:
        float64 array of the same shape, 0 outside (0, 1), ~0.3 at the apex, 1 from mid-lung.
    """
    u = np.asarray(level, dtype=np.float64)
    grow = np.sin(0.5 * np.pi * np.clip(u / 0.6, 0.0, 1.0)) ** 0.8
    return np.where((u > 0.0) & (u < 1.0), 0.3 + 0.7 * grow, 0.0)


def _ellipse(x: np.ndarray, y: np.ndarray, ax: float, ay: float, power: float = 2.0) -> np.ndarray:
    return (np.abs(x / ax) ** power + np.abs(y / ay) ** power) <= 1.0


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...],
                  sigma_px: float | tuple[float, ...]) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered white noise (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_px)
    return field / max(float(field.std()), 1e-6)


def _in_plane(mm: float, ps: float) -> tuple[float, float, float]:
    """Gaussian sigmas (pixels) for [S,H,W]: ``mm`` in-plane, none across slices."""
    sigma = max(mm / ps, 0.5)
    return (0.0, sigma, sigma)


def _bone(region: np.ndarray) -> np.ndarray:
    """HU of a bone cross-section: 900 HU cortex around 300 HU cancellous bone."""
    inner = ndimage.binary_erosion(region)
    return np.where(inner, CANCELLOUS_HU, CORTEX_HU)


@dataclass(frozen=True)
class _Torso:
    """Slice-independent parts of the torso (float32 / bool [H,W])."""

    hu: np.ndarray  # air, fat rim, body, spine
    thorax: np.ndarray  # inside the rib cage
    rib_band: np.ndarray  # the ring the ribs lie on, minus the costal-cartilage and spine gaps
    theta: np.ndarray  # polar angle (degrees) around the body centre
    trachea: np.ndarray


def _torso(an: _Anatomy, X: np.ndarray, Y: np.ndarray) -> _Torso:
    yc = Y - an.body_dy
    hu = np.full(X.shape, AIR_HU, dtype=np.float32)
    body = _ellipse(X, yc, an.body_ax, an.body_ay)
    hu[body] = FAT_HU
    hu[_ellipse(X, yc, an.body_ax - an.fat_mm, an.body_ay - an.fat_mm)] = BODY_HU
    # Spine: vertebral body, canal, posterior arch.
    sy = an.inner_ay - 18.0
    vert = X**2 + (yc - sy) ** 2 <= 15.0**2
    arch = ((X**2 + (yc - sy - 22.0) ** 2 <= 10.0**2) | _ellipse(X, yc - sy - 33.0, 4.0, 7.0)) & body
    for region in (vert, arch):
        hu[region] = _bone(region)[region]
    hu[X**2 + (yc - sy - 22.0) ** 2 <= 6.0**2] = CSF_HU
    rx, ry = an.inner_ax + 6.0, an.inner_ay + 6.0
    radial = (np.sqrt((X / rx) ** 2 + (yc / ry) ** 2) - 1.0) * 0.5 * (rx + ry)
    theta = np.degrees(np.arctan2(yc, X))
    gaps = (np.abs(theta + 90.0) < 25.0) | (np.abs(theta - 90.0) < 15.0)
    return _Torso(
        hu=hu,
        thorax=_ellipse(X, yc, an.inner_ax - 3.0, an.inner_ay - 3.0),
        rib_band=(np.abs(radial) <= 4.0) & ~gaps,
        theta=theta,
        trachea=X**2 + (yc + 20.0) ** 2 <= 9.0**2,
    )


def _body_slice(an: _Anatomy, torso: _Torso, u: float) -> np.ndarray:
    """HU [H,W] of one slice outside the lungs: torso + ribs (arcs every 28 deg) + trachea."""
    hu = torso.hu.copy()
    start = an.rib_phase + 27.0 * u  # ribs slope, so their arcs shift with level
    ribs = torso.rib_band & (np.abs((torso.theta - start) % 28.0 - 14.0) >= 7.0)
    hu[ribs] = _bone(ribs)[ribs]
    if 0.0 < u < 0.45:
        hu[torso.trachea] = AIR_HU
    return hu


def _lung_slice(an: _Anatomy, X: np.ndarray, Y: np.ndarray, u: float, thorax: np.ndarray) -> np.ndarray:
    """Boolean lung mask of one slice (both lungs)."""
    scale = float(lung_scale(u))
    if scale <= 0.0:
        return np.zeros(X.shape, dtype=bool)
    yc = Y - an.body_dy
    half_med = 15.0
    lx = 0.5 * (an.inner_ax - half_med)
    ly = 0.95 * an.inner_ay
    lungs = np.zeros(X.shape, dtype=bool)
    for side in (-1.0, 1.0):
        cx = side * (half_med + lx)
        shape = _ellipse(X - cx, yc, lx * (0.55 + 0.45 * scale), ly * scale, power=2.4)
        dome = np.clip((u - 0.7) / 0.3, 0.0, 1.0) ** 0.6
        if dome > 0:
            shape &= ~_ellipse(X - cx, yc + 0.3 * ly, 0.9 * lx * dome, 0.9 * ly * dome)
        lungs |= shape
    lungs &= thorax & (np.abs(X) > half_med)
    lungs &= X**2 + (yc - an.inner_ay + 18.0) ** 2 > 21.0**2  # spine
    heart = np.clip((u - 0.35) / 0.3, 0.0, 1.0) ** 0.5
    if heart > 0:
        lungs &= ~_ellipse(X - 15.0, yc + 35.0, 58.0 * heart, 45.0 * heart)
    return lungs


def _vessel_tree(rng: np.random.Generator, an: _Anatomy, z_hilum: float) -> np.ndarray:
    """Tapered branching vessel segments, float64 [N, 8]: ax ay az bx by bz r_a r_b (mm)."""
    segments: list[list[float]] = []

    def grow(start: np.ndarray, direction: np.ndarray, length: float, radius: float, depth: int) -> None:
        end = start + direction * length
        r_end = radius * 0.8
        segments.append([*start, *end, radius, r_end])
        if depth == 0 or r_end < 1.0:
            return
        for _ in range(2):
            perp = rng.standard_normal(3)
            perp -= perp.dot(direction) * direction
            perp /= max(float(np.linalg.norm(perp)), 1e-9)
            child = direction + rng.uniform(0.3, 0.8) * perp
            child /= float(np.linalg.norm(child))
            grow(end, child, length * rng.uniform(0.65, 0.85), r_end * 0.92, depth - 1)

    trunks = [(0.3, 0.0, 1.0, 70.0), (1.0, 0.1, 0.1, 40.0), (0.3, 0.2, -1.0, 60.0),
              (0.3, 0.8, -0.6, 50.0), (0.4, -0.8, -0.2, 40.0)]
    for side in (-1.0, 1.0):
        hilum = np.array([side * 30.0, an.body_dy - 5.0, z_hilum])
        for dx, dy, dz, length in trunks:
            d = np.array([side * dx, dy, dz])
            grow(hilum, d / np.linalg.norm(d), length, 5.5, 5)
    return np.asarray(segments, dtype=np.float64)


def _vessel_weight(seg: np.ndarray, X: np.ndarray, Y: np.ndarray, z: float, ps: float) -> np.ndarray:
    """Partial-volume vessel occupancy in [0, 1] of one slice (float32 [H,W])."""
    weight = np.zeros(X.shape, dtype=np.float32)
    r_max = np.maximum(seg[:, 6], seg[:, 7])
    hit = (np.minimum(seg[:, 2], seg[:, 5]) - r_max <= z) & (np.maximum(seg[:, 2], seg[:, 5]) + r_max >= z)
    x0, y0 = X[0, 0], Y[0, 0]
    n_rows, n_cols = X.shape
    for ax, ay, az, bx, by, bz, ra, rb in seg[hit]:
        r = max(ra, rb)
        c0 = max(int((min(ax, bx) - r - x0) / ps), 0)
        c1 = min(int((max(ax, bx) + r - x0) / ps) + 2, n_cols)
        r0 = max(int((min(ay, by) - r - y0) / ps), 0)
        r1 = min(int((max(ay, by) + r - y0) / ps) + 2, n_rows)
        if c0 >= c1 or r0 >= r1:
            continue
        px, py = X[r0:r1, c0:c1] - ax, Y[r0:r1, c0:c1] - ay
        pz = z - az
        d = np.array([bx - ax, by - ay, bz - az])
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / max(d.dot(d), 1e-9), 0.0, 1.0)
        dist = np.sqrt((px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2)
        occ = np.clip((ra + t * (rb - ra) - dist) / ps + 0.5, 0.0, 1.0).astype(np.float32)
        np.maximum(weight[r0:r1, c0:c1], occ, out=weight[r0:r1, c0:c1])
    return weight


def _disease_score(an: _Anatomy, X: np.ndarray, Y: np.ndarray, u: float, depth: np.ndarray,
                   patchiness: np.ndarray) -> np.ndarray:
    """Where fibrosis appears first: posterior, basal, peripheral, subpleural, patchy."""
    yc = Y - an.body_dy
    posterior = np.clip((yc + an.inner_ay) / (2.0 * an.inner_ay), 0.0, 1.0)
    peripheral = np.clip(np.abs(X) / an.inner_ax, 0.0, 1.0)
    return 1.2 * posterior + 1.0 * u + 0.6 * peripheral + 0.5 * patchiness - 0.6 * depth / _BAND_MM


def _draw_cysts(rng: np.random.Generator, hu: np.ndarray, mask: np.ndarray, allowed: np.ndarray,
                weights: np.ndarray, lung: np.ndarray, X: np.ndarray, Y: np.ndarray, ps: float) -> None:
    """Clustered honeycomb cysts (3-10 mm) inside ``allowed``, in place on hu and mask."""
    rows, cols = np.nonzero(allowed)
    if rows.size == 0:
        return
    mean_area = np.pi * max(3.0, 0.8 * ps) ** 2  # a cyst covers at least ~a pixel when rendered
    n_cysts = int(rng.poisson(0.45 * rows.size * ps * ps / mean_area))
    if n_cysts == 0:
        return
    prob = np.exp(2.0 * (weights[rows, cols] - weights[rows, cols].max()))
    pick = rng.choice(rows.size, size=n_cysts, p=prob / prob.sum())
    for i in pick:
        r = max(float(rng.uniform(1.5, 5.0)), 0.6 * ps)
        wall = min(max(1.0, 0.5 * ps), 0.5 * r)  # the centre pixel is always lumen
        cy, cx = rows[i], cols[i]
        span = int(np.ceil(r / ps)) + 1
        sl = (slice(max(cy - span, 0), cy + span + 1), slice(max(cx - span, 0), cx + span + 1))
        dist = np.hypot(X[sl] - X[cy, cx], Y[sl] - Y[cy, cx])
        disc = (dist <= r) & lung[sl]
        hu[sl][disc] = np.where(dist[disc] <= r - wall, CYST_HU, CYST_WALL_HU)
        mask[sl][disc] = 1


def _ground_glass(rng: np.random.Generator, paren: np.ndarray, lung: np.ndarray, X: np.ndarray,
                  Y: np.ndarray, z: np.ndarray, n_ggo: int) -> tuple[np.ndarray, np.ndarray]:
    """Blend ``n_ggo`` ground-glass blobs (-700...-500 HU, 15-40 mm) into the parenchyma.

    Returns:
        (parenchyma HU [S,H,W], blob weight float32 [S,H,W] in [0, 1]).
    """
    weight = np.zeros(lung.shape, dtype=np.float32)
    lung_idx = np.argwhere(lung)
    for _ in range(n_ggo if lung_idx.size else 0):
        k, r, c = lung_idx[rng.integers(len(lung_idx))]
        rad_xy, rad_z = rng.uniform(15.0, 35.0), rng.uniform(15.0, 40.0)
        d2 = ((X - X[r, c]) ** 2 + (Y - Y[r, c]) ** 2)[None] / rad_xy**2
        d2 = d2 + ((z - z[k]) ** 2 / rad_z**2)[:, None, None]
        blob = np.exp(-(d2**2)).astype(np.float32)
        blob[blob < _GGO_CUTOFF] = 0.0  # compact support: removing it leaves other pixels alone
        paren = paren + blob * (rng.uniform(*GGO_HU_RANGE) - paren)
        np.maximum(weight, blob, out=weight)
    return paren, weight


def _fibrosis(rng: np.random.Generator, paren: np.ndarray, band: np.ndarray, score: np.ndarray,
              extent: float, ps: float) -> tuple[np.ndarray, np.ndarray]:
    """Denser fibrotic lung with reticular lines in the top-``extent`` fraction of ``band``.

    Returns:
        (parenchyma HU [S,H,W], disease mask uint8 [S,H,W]).
    """
    mask = np.zeros(band.shape, dtype=np.uint8)
    if extent > 0 and band.any():
        mask[band & (score >= np.quantile(score[band], 1.0 - extent))] = 1
    fibrotic = mask.astype(bool)
    fine = _smooth_noise(rng, band.shape, _in_plane(1.5, ps))
    paren = np.where(fibrotic, FIBROTIC_HU + 35.0 * fine, paren)
    bandpass = ndimage.gaussian_filter(fine, (0, 1.0, 1.0)) - ndimage.gaussian_filter(fine, (0, 2.5, 2.5))
    reticular = fibrotic & (np.abs(bandpass) < 0.3 * float(bandpass.std() + 1e-6))
    return np.where(reticular, RETICULAR_HU, paren), mask


def _marker_region(rng: np.random.Generator, an: _Anatomy, X: np.ndarray, Y: np.ndarray, side_mm: float,
                   fov_radius: float | None) -> np.ndarray:
    """Square tag (bool [H,W]) in the air anterior to the body, laterally offset 15-45 mm.

    It keeps ``_MARKER_GAP_MM`` of air from the body; with a circular field of view it is
    moved toward the midline until it lies inside, and clipped to it if it still does not.
    """
    half = 0.5 * side_mm
    cy = an.body_dy - an.body_ay - _MARKER_GAP_MM - half  # anterior = -y = image top
    cx = float(rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 45.0))
    if fov_radius is not None:
        while abs(cx) > 0 and np.hypot(abs(cx) + half, abs(cy) + half) > fov_radius:
            cx = float(np.sign(cx) * max(abs(cx) - 1.0, 0.0))
    square = (np.abs(X - cx) <= half) & (np.abs(Y - cy) <= half)
    if fov_radius is not None:
        square &= X**2 + Y**2 <= fov_radius**2
    return square


def phantom_volume(
    matrix: int = 64,
    n_slices: int = 8,
    *,
    extent: float = 0.3,
    n_ggo: int = 1,
    noise_hu: float = 12.0,
    fov_mm: float = DEFAULT_FOV_MM,
    circular_fov: bool = False,
    seed: int = 0,
    marker: bool = False,
    marker_mm: float = 36.0,
    components: Collection[str] = COMPONENTS,
) -> Phantom:
    """Render one patient's CT series in memory.

    Args:
        matrix: rows = columns of each slice (>= 16).
        n_slices: number of axial slices S (>= 4); 1-2 slices above and below the lungs.
        extent: disease extent in [0, 1], the fraction of the subpleural band that is fibrotic.
        n_ggo: number of ground-glass distractor blobs (>= 0).
        noise_hu: standard deviation of the (slightly correlated) image noise in HU.
        fov_mm: square field of view in mm; pixel spacing = fov_mm / matrix.
        circular_fov: set pixels outside the inscribed circle to PAD_HU (-3024).
        seed: anatomy, lesion and noise seed; same arguments give identical arrays.
        marker: draw the shortcut marker (a ``marker_mm`` square at :data:`MARKER_HU`).
        marker_mm: side of the marker in mm.
        components: the components to draw, a subset of :data:`COMPONENTS`; leaving one out
            renders the same patient without it (only that component's pixels change).

    Returns:
        A :class:`Phantom` with ``hu`` float32 [S,H,W] and masks uint8 [S,H,W].
    """
    if matrix < 16 or n_slices < 4:
        raise ValueError(f"matrix must be >= 16 and n_slices >= 4, got {matrix}, {n_slices}")
    if not 0.0 <= extent <= 1.0 or n_ggo < 0 or noise_hu < 0 or fov_mm <= 0 or marker_mm <= 0:
        raise ValueError("extent must be in [0, 1]; n_ggo, noise_hu >= 0; fov_mm, marker_mm > 0")
    drawn = tuple(c for c in COMPONENTS if c in set(components))
    if set(components) - set(COMPONENTS):
        raise ValueError(f"unknown components {sorted(set(components) - set(COMPONENTS))}; known: {COMPONENTS}")
    requested_extent = extent
    extent = extent if "disease" in drawn else 0.0
    n_ggo = n_ggo if "distractor" in drawn else 0
    rng_anatomy, rng_lesion, rng_ggo, rng_noise, rng_marker = (
        np.random.default_rng([seed, stream]) for stream in range(5)
    )
    an = _draw_anatomy(rng_anatomy, n_slices)
    ps = round(fov_mm / matrix, 4)
    coords = (np.arange(matrix) - (matrix - 1) / 2.0) * ps
    X, Y = np.meshgrid(coords, coords)
    z, level, dz = _slice_levels(an, n_slices)
    shape = (n_slices, matrix, matrix)

    hu = np.empty(shape, dtype=np.float32)
    lung = np.zeros(shape, dtype=bool)
    depth = np.zeros(shape, dtype=np.float32)
    torso = _torso(an, X, Y)
    for k in range(n_slices):
        hu[k] = _body_slice(an, torso, float(level[k]))
        lung[k] = _lung_slice(an, X, Y, float(level[k]), torso.thorax)
        depth[k] = ndimage.distance_transform_edt(lung[k], sampling=ps)

    # Parenchyma: per-patient mean, smooth texture, dependent (posterior) density gradient.
    texture = _smooth_noise(rng_anatomy, shape, _in_plane(3.0, ps))
    gradient = 25.0 * (np.clip((Y - an.body_dy + an.inner_ay) / (2 * an.inner_ay), 0, 1) - 0.5)
    paren = an.lung_hu + 12.0 * texture + gradient[None]
    paren, ggo_weight = _ground_glass(rng_ggo, paren, lung, X, Y, z, n_ggo)
    patchiness = _smooth_noise(rng_lesion, shape, _in_plane(8.0, ps))
    score = np.stack([_disease_score(an, X, Y, float(level[k]), depth[k], patchiness[k])
                      for k in range(n_slices)])
    paren, mask = _fibrosis(rng_lesion, paren, lung & (depth <= _BAND_MM), score, extent, ps)
    fibrotic = mask.astype(bool)

    # Vessels on top of the parenchyma, honeycomb cysts on top of the vessels.
    trees = _vessel_tree(rng_anatomy, an, float(z[0] - 0.45 * (z[0] - z[-1])))
    for k in range(n_slices):
        occ = _vessel_weight(trees, X, Y, float(z[k]), ps)
        lung_k = lung[k]
        hu[k][lung_k] = (paren[k] * (1.0 - occ) + BODY_HU * occ)[lung_k]
        honey = fibrotic[k] & (depth[k] <= _HONEY_MM)
        _draw_cysts(rng_lesion, hu[k], mask[k], honey, score[k], lung_k, X, Y, ps)

    distractor = ((ggo_weight > 0.5) & lung & ~mask.astype(bool)).astype(np.uint8)
    support = ((ggo_weight > 0) & lung & ~mask.astype(bool)).astype(np.uint8)
    fov_radius = matrix * ps / 2.0
    tag = np.zeros((matrix, matrix), dtype=bool)
    if marker and "marker" in drawn:
        tag = _marker_region(rng_marker, an, X, Y, marker_mm, fov_radius - ps if circular_fov else None)
        hu[:, tag] = MARKER_HU
    noise = _smooth_noise(rng_noise, shape, (0.0, 0.7, 0.7))
    hu = np.clip(hu + noise_hu * noise, _MIN_HU, _MAX_HU).astype(np.float32)
    if circular_fov:
        outside = X**2 + Y**2 > fov_radius**2
        hu[:, outside] = PAD_HU
    return Phantom(
        hu=hu,
        mask=mask,
        distractor=distractor,
        lung=lung.astype(np.uint8),
        marker=np.broadcast_to(tag, shape).astype(np.uint8),
        distractor_support=support,
        z=z,
        level=level,
        pixel_spacing=ps,
        slice_spacing=dz,
        origin_xy=(float(X[0, 0]), float(Y[0, 0])),
        extent=float(requested_extent),
        components=drawn,
    )
