"""Localisation of relevance maps against planted ground-truth lesion masks.

Three scores per case, all restricted to a region (the lungs), on the map's magnitude ``|map|``
in :func:`localization_table` (a signed map, such as the counterfactual attribution, marks where
the classifier looks by evidence for the class and against it alike: the attribution of a
textured lesion carries both signs inside it):

* AUROC of the map's values as a lesion-pixel detector (scikit-learn);
* pointing game (Zhang et al. 2018): the map's maximum lies in the (optionally dilated)
  lesion; ties between lesion and non-lesion pixels count as a miss;
* relevance-mass accuracy (Arras et al. 2022): share of the positive relevance that falls in
  the lesion.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import binary_dilation
from sklearn.metrics import roc_auc_score

__all__ = [
    "region_auroc",
    "case_aurocs",
    "pointing_game",
    "relevance_mass",
    "difference_relevance",
    "localization_table",
]


def region_auroc(relevance: np.ndarray, lesion: np.ndarray, region: np.ndarray) -> float:
    """AUROC of ``relevance`` separating lesion from non-lesion pixels inside ``region``.

    Args:
        relevance: ``[...,H,W]`` map (any real values).
        lesion: same shape, bool ground truth.
        region: same shape, bool; pixels outside are ignored.

    Returns:
        AUROC in [0,1]; ``nan`` when the region holds only one class.
    """
    y = lesion[region].astype(int)
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, relevance[region]))


def case_aurocs(relevance: np.ndarray, lesion: np.ndarray, region: np.ndarray, magnitude: bool = True) -> np.ndarray:
    """Per-case :func:`region_auroc` of ``|relevance|`` (as :func:`localization_table` scores maps) or, with
    ``magnitude`` False, of the signed values.

    Args:
        relevance: ``[N,...,H,W]`` maps; lesion, region: bool, same shape.
        magnitude: rank pixels by ``|relevance|`` (True) or by value.

    Returns:
        float64 ``[N]``; ``nan`` for a case whose region holds one class only.
    """
    rel = np.abs(relevance) if magnitude else np.asarray(relevance)
    return np.array([region_auroc(rel[n], lesion[n], region[n]) for n in range(len(rel))], dtype=np.float64)


def pointing_game(
    relevance: np.ndarray, lesion: np.ndarray, region: np.ndarray, tolerance_px: int = 0
) -> float:
    """1.0 if the map's maximum inside ``region`` lies on the lesion, else 0.0.

    Args:
        relevance: ``[S,H,W]`` (or ``[H,W]``) map.
        lesion: same shape, bool.
        region: same shape, bool.
        tolerance_px: dilate the lesion in-plane by this many pixels first.

    Returns:
        1.0 hit / 0.0 miss (a tie between a lesion and a non-lesion pixel is a miss);
        ``nan`` when the region holds no lesion or no background.
    """
    target = lesion & region
    if tolerance_px > 0:
        structure = np.zeros((3,) * lesion.ndim, dtype=bool)
        structure[(1,) * (lesion.ndim - 2)] = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
        target = binary_dilation(lesion, structure, iterations=tolerance_px) & region
    background = region & ~target
    if not target.any() or not background.any():
        return float("nan")
    return float(relevance[target].max() > relevance[background].max())


def relevance_mass(relevance: np.ndarray, lesion: np.ndarray, region: np.ndarray) -> float:
    """Fraction of the positive relevance inside ``region`` that lies on the lesion.

    Returns:
        Value in [0,1]; ``nan`` when the region holds no positive relevance or no lesion.
    """
    pos = np.clip(relevance, 0, None) * region
    total = pos.sum()
    if total <= 0 or not (lesion & region).any():
        return float("nan")
    return float(pos[lesion & region].sum() / total)


def difference_relevance(
    counterfactuals: np.ndarray, recon: np.ndarray, alpha_index: int | None = None
) -> np.ndarray:
    """DiffExplainer relevance ``|counterfactual - reconstruction|``.

    Args:
        counterfactuals: ``[N,A,4,H,W]`` along one direction (e.g. toward the healthy class).
        recon: ``[N,4,H,W]``.
        alpha_index: one alpha of the sweep; ``None`` averages over all alphas.

    Returns:
        ``[N,4,H,W]`` non-negative map.
    """
    diff = np.abs(counterfactuals - recon[:, None])
    return diff.mean(axis=1) if alpha_index is None else diff[:, alpha_index]


def localization_table(
    maps: Mapping[str, np.ndarray],
    masks: np.ndarray,
    lung_masks: np.ndarray,
    mask_threshold: float = 0.1,
    tolerance_px: int = 0,
) -> dict[str, dict[str, float | int | None]]:
    """Scores of several relevance maps on the same cases.

    Args:
        maps: method name -> ``[N,4,H,W]`` relevance, scored by its magnitude ``|map|`` (the same
            map for the non-negative ones).
        masks: ``[N,4,H,W]`` planted disease fraction in [0,1].
        lung_masks: ``[N,4,H,W]`` nonzero inside the lungs (the region scored).
        mask_threshold: ``masks > mask_threshold`` is lesion.
        tolerance_px: pointing-game tolerance.

    Returns:
        Per method: mean ``auroc``, ``pointing_game``, ``relevance_mass`` over the cases with
        a lesion in the lungs (``None`` when there are none) and ``n_cases``.
    """
    lesion = np.asarray(masks) > mask_threshold
    region = np.asarray(lung_masks) > 0
    cases = [n for n in range(lesion.shape[0]) if (lesion[n] & region[n]).any()]
    table: dict[str, dict[str, float | int | None]] = {}
    for name, rel in maps.items():
        rel = np.abs(np.asarray(rel, dtype=np.float64))
        if rel.shape != lesion.shape:
            raise ValueError(f"map {name!r} has shape {rel.shape}, masks {lesion.shape}")
        scores = {
            "auroc": [region_auroc(rel[n], lesion[n], region[n]) for n in cases],
            "pointing_game": [pointing_game(rel[n], lesion[n], region[n], tolerance_px) for n in cases],
            "relevance_mass": [relevance_mass(rel[n], lesion[n], region[n]) for n in cases],
        }
        row: dict[str, float | int | None] = {}
        for key, vals in scores.items():
            arr = np.asarray(vals, dtype=np.float64)
            arr = arr[np.isfinite(arr)]
            row[key] = float(arr.mean()) if arr.size else None
        row["n_cases"] = len(cases)
        table[name] = row
    return table
