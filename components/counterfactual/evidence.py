"""Where the evidence lies: shares of a relevance map on the anatomy and on known components.

For maps ``[K,4,H,W]`` (taken in absolute value) each case's total relevance is split into
the share in the lungs and outside them and, where the cohort ships masks, the share on each
planted component: ``disease``, ``distractor`` (both inside the lungs), the shortcut
``marker`` (outside the body) and the ``rest_of_lungs`` (lung not covered by disease or
distractor). Fractional masks weight their pixels. A black box whose evidence sits mostly
outside the lungs gets a ``shortcut_warning`` (threshold ``shortcut_outside_share_max`` in
the counterfactual config). On real data without masks the lung / outside split still works.

The model-contrast score (Yang & Kim 2019, DESIGN.md §5b) of a component is the difference
of its mean share between two black boxes explained on the same cases; its 95 % interval is a
paired bootstrap over the cases (``scipy.stats.bootstrap``). A map that does not depend on
the classifier has identical shares for both and a score of exactly 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from components.stats.bootstrap import BootstrapSettings, mean_interval, statistic_interval

__all__ = [
    "EVIDENCE_KEYS",
    "COMPONENT_KEYS",
    "total_evidence",
    "component_masses",
    "evidence_shares",
    "model_contrast",
    "pooled_model_contrast",
]

COMPONENT_KEYS = ("disease", "distractor", "marker")
EVIDENCE_KEYS = ("lungs", "outside_lungs", *COMPONENT_KEYS, "rest_of_lungs")

WARNING_MAPS = ("attribution", "diffexplainer")
"""The map that decides the classifier's shortcut warning: the first of these present. The
attribution map holds only what the black box itself uses; the raw difference map (fallback)
also shows what the decoder changed along with it, and Grad-CAM / IG at 32 px put most of any
classifier's evidence outside the lungs (cpu-small demo: 0.84-0.87 for the mortality teacher),
so they are listed but never flagged."""


def _cases(a: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if a is None:
        return None
    arr = np.asarray(a, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, the maps {shape}")
    return arr


def total_evidence(relevance: np.ndarray) -> np.ndarray:
    """Sum of ``|relevance|`` per case: ``[K,4,H,W]`` -> float64 ``[K]`` (map units)."""
    r = np.abs(np.asarray(relevance, dtype=np.float64))
    return r.reshape(r.shape[0], -1).sum(axis=1)


def component_masses(
    relevance: np.ndarray,
    lung_masks: np.ndarray,
    components: Mapping[str, np.ndarray | None] | None = None,
    positive_only: bool = False,
) -> dict[str, np.ndarray]:
    """Per-case share of ``|relevance|`` (or of its positive part) on each region and component.

    Args:
        relevance: ``[K,4,H,W]`` map (any sign; taken in absolute value, or with
            ``positive_only`` clipped at 0: the relevance-mass convention of Arras et al. 2022
            for signed maps, where negative relevance is evidence against the change explained).
        lung_masks: ``[K,4,H,W]``, nonzero inside the lungs.
        components: ``disease`` / ``distractor`` / ``marker`` -> ``[K,4,H,W]`` fraction in
            [0,1] (NaN rows for cases without that mask), or None when unknown.

    Returns:
        :data:`EVIDENCE_KEYS` present -> float64 ``[K]`` in [0,1]: ``lungs``, ``outside_lungs``
        always; a component key when its mask is given; ``rest_of_lungs`` when the disease
        mask is. NaN for a case whose map is all zero or whose mask row is missing.
    """
    r = np.asarray(relevance, dtype=np.float64)
    r = np.clip(r, 0.0, None) if positive_only else np.abs(r)
    shape = r.shape
    lung = _cases(lung_masks, shape, "lung_masks")
    assert lung is not None
    lung = (lung > 0).astype(np.float64)
    total = r.reshape(shape[0], -1).sum(axis=1)
    safe = np.where(total > 0, total, np.nan)

    def share(weight: np.ndarray) -> np.ndarray:
        return (r * weight).reshape(shape[0], -1).sum(axis=1) / safe

    out = {"lungs": share(lung)}
    out["outside_lungs"] = 1.0 - out["lungs"]
    given = {k: _cases(v, shape, k) for k, v in (components or {}).items() if k in COMPONENT_KEYS}
    for key, mask in given.items():
        if mask is None:
            continue
        missing = ~np.isfinite(mask.reshape(shape[0], -1)).all(axis=1)
        out[key] = np.where(missing, np.nan, share(np.nan_to_num(np.clip(mask, 0.0, 1.0))))
    disease = given.get("disease")
    if disease is not None:
        covered = np.nan_to_num(np.clip(disease, 0.0, 1.0))
        distractor = given.get("distractor")
        if distractor is not None:
            covered = covered + np.nan_to_num(np.clip(distractor, 0.0, 1.0))
        rest = share(lung * np.clip(1.0 - covered, 0.0, 1.0))
        out["rest_of_lungs"] = np.where(np.isnan(out["disease"]), np.nan, rest)
    return out


def _mean(values: np.ndarray) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def evidence_shares(
    maps: Mapping[str, np.ndarray],
    lung_masks: np.ndarray,
    components: Mapping[str, np.ndarray | None] | None = None,
    outside_share_max: float = 0.5,
) -> dict[str, dict[str, float | bool | int | None]]:
    """Mean evidence shares of several maps on the same cases.

    Args:
        maps: map name -> ``[K,4,H,W]`` relevance.
        lung_masks: ``[K,4,H,W]`` nonzero inside the lungs.
        components: as in :func:`component_masses`.
        outside_share_max: ``shortcut_warning`` on the deciding map (:data:`WARNING_MAPS`)
            when its mean outside-lung share exceeds it; False on every other map.

    Returns:
        Per map: :data:`EVIDENCE_KEYS` (mean over cases in [0,1]; None where no mask or no
        relevance), ``shortcut_warning`` (bool) and ``n_cases``.
    """
    table: dict[str, dict[str, float | bool | int | None]] = {}
    for name, rel in maps.items():
        masses = component_masses(rel, lung_masks, components)
        row: dict[str, float | bool | int | None] = {k: _mean(masses[k]) if k in masses else None for k in EVIDENCE_KEYS}
        outside = row["outside_lungs"]
        row["shortcut_warning"] = False  # set below for the deciding map only
        row["outside_share"] = outside
        row["n_cases"] = int(np.asarray(rel).shape[0])
        table[name] = row
    deciding = next((m for m in WARNING_MAPS if m in table), None)
    if deciding is not None:
        outside = table[deciding]["outside_lungs"]
        table[deciding]["shortcut_warning"] = bool(outside is not None and outside > outside_share_max)
    for row in table.values():
        row.pop("outside_share", None)
    return table


def pooled_model_contrast(
    relevance_a: np.ndarray,
    relevance_b: np.ndarray,
    component: np.ndarray,
    positive_only: bool = True,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Evidence-weighted model contrast: A's share of all its evidence on ``component`` minus B's.

    ``sum_k mass_k(A on component) / sum_k mass_k(A)`` minus the same for B, over the same K
    cases, with a paired bootstrap interval over cases. Unlike :func:`model_contrast` (the
    mean of per-case shares, each case weighted 1) a case counts by how much evidence the
    black box has there: a black box that barely responds on a case (M on a case without the
    marker, whose whole small map can only sit on what the counterfactual changed) adds little.

    Args:
        relevance_a / relevance_b: ``[K,4,H,W]`` maps of black boxes A and B (any sign; the
            positive part with ``positive_only``, else ``|.|``).
        component: ``[K,4,H,W]`` the component's fraction in [0,1] (rows with NaN are dropped).
        confidence / n_resamples / seed: the interval's settings (BCa, percentile fallback).

    Returns:
        ``(point, low, high)``; NaN with fewer than 2 usable cases or no evidence on a side.
    """
    def mass(r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        return (np.clip(r, 0.0, None) if positive_only else np.abs(r)).reshape(len(r), -1)

    ra, rb = mass(relevance_a), mass(relevance_b)
    m = np.asarray(component, dtype=np.float64).reshape(len(ra), -1)
    if ra.shape != rb.shape or ra.shape != m.shape:
        raise ValueError(f"maps and component differ in shape: {ra.shape}, {rb.shape}, {m.shape}")
    keep = np.all(np.isfinite(m), axis=1)
    on_a, all_a = (ra * np.nan_to_num(m)).sum(1)[keep], ra.sum(1)[keep]
    on_b, all_b = (rb * np.nan_to_num(m)).sum(1)[keep], rb.sum(1)[keep]
    if keep.sum() < 2 or all_a.sum() <= 0 or all_b.sum() <= 0:
        return float("nan"), float("nan"), float("nan")

    def contrast(oa: np.ndarray, ta: np.ndarray, ob: np.ndarray, tb: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return oa.sum(axis) / ta.sum(axis) - ob.sum(axis) / tb.sum(axis)

    return statistic_interval(contrast, [on_a, all_a, on_b, all_b],
                              BootstrapSettings(confidence=confidence, n_resamples=n_resamples, seed=seed))


def model_contrast(
    mass_a: np.ndarray,
    mass_b: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Model-contrast score ``mean(mass_a - mass_b)`` with a paired bootstrap interval.

    Args:
        mass_a: ``[K]`` per-case component share under black box A.
        mass_b: ``[K]`` the same cases under black box B (NaN pairs are dropped).
        confidence: two-sided confidence level of the interval.
        n_resamples: bootstrap resamples.
        seed: resampling seed.

    Returns:
        ``(point, low, high)``; all equal when every case has the same difference (the
        interval of a constant is the constant; a map that ignores the classifier gives 0);
        NaN when fewer than 2 cases remain.
    """
    a, b = np.asarray(mass_a, dtype=np.float64), np.asarray(mass_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired masses differ in shape: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:
        return float("nan"), float("nan"), float("nan")
    return mean_interval(a[keep], BootstrapSettings(confidence=confidence, n_resamples=n_resamples, seed=seed),
                         paired_with=b[keep])
