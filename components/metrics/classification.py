"""Binary classification metrics and the KL divergence between two classifiers.

All metrics come from scikit-learn; this module only fixes conventions (positive class = 1,
``prob >= threshold`` predicts positive, undefined AUC reported as ``nan``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, f1_score, precision_recall_curve, recall_score, roc_auc_score

__all__ = ["binary_metrics", "prob_kl",
    "prob_kl_per_case", "as_class_probs", "f1_threshold",
    "auc_along", "f1_along"]


def binary_metrics(y_true: ArrayLike, prob_pos: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy, sensitivity, specificity and F1 for a binary score.

    Args:
        y_true: ``[N]`` labels in {0, 1} (1 = positive).
        prob_pos: ``[N]`` score of the positive class, usually a probability in [0, 1].
        threshold: ``prob_pos >= threshold`` predicts positive.

    Returns:
        ``dict(auc, accuracy, sensitivity, specificity, f1)`` as floats. ``auc`` is ``nan``
        when ``y_true`` holds a single class; sensitivity / specificity / F1 are 0 when
        undefined (no positives / negatives), as scikit-learn's ``zero_division=0``.
    """
    y = np.asarray(y_true).astype(int).ravel()
    score = np.asarray(prob_pos, dtype=np.float64).ravel()
    if y.shape != score.shape:
        raise ValueError(f"y_true {y.shape} and prob_pos {score.shape} differ in shape")
    pred = (score >= threshold).astype(int)
    auc = float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "auc": auc,
        "accuracy": float(accuracy_score(y, pred)),
        "sensitivity": float(recall_score(y, pred, pos_label=1, zero_division=0)),
        "specificity": float(recall_score(y, pred, pos_label=0, zero_division=0)),
        "f1": float(f1_score(y, pred, pos_label=1, zero_division=0)),
    }


def f1_threshold(y_true: ArrayLike, score: ArrayLike, default: float = 0.5) -> float:
    """The threshold on ``score`` that maximises F1 against ``y_true`` (0/1).

    The returned value lies midway between the lowest score predicted positive and the next
    lower score, so no case sits on the boundary. ``default`` when ``y_true`` has no positive
    or fewer than 2 cases.
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if len(y) < 2 or y.sum() == 0:
        return float(default)
    precision, recall, thresholds = precision_recall_curve(y, s)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)[:-1]
    best = float(thresholds[int(np.argmax(f1))])
    below = s[s < best]
    return 0.5 * (best + float(below.max())) if below.size else best


def as_class_probs(p: ArrayLike) -> np.ndarray:
    """Class-probability matrix ``[N,C]``; a ``[N]`` vector is read as P(class 1) of 2 classes."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 1:
        arr = np.stack([1.0 - arr, arr], axis=1)
    if arr.ndim != 2:
        raise ValueError(f"expected [N] or [N,C] probabilities, got shape {arr.shape}")
    return arr


def prob_kl_per_case(p: ArrayLike, q: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    """KL(p_i || q_i) per case between two models' predicted class distributions.

    Args:
        p: ``[N,C]`` probabilities of the reference model (rows sum to 1), or ``[N]`` P(class 1).
        q: same shape as ``p``, the other model.
        eps: probabilities are clipped to ``[eps, 1]`` before taking logs.

    Returns:
        float64 ``[N]``: ``sum_c p_ic (log p_ic - log q_ic)`` in nats, >= 0.
    """
    pa, qa = as_class_probs(p), as_class_probs(q)
    if pa.shape != qa.shape:
        raise ValueError(f"p {pa.shape} and q {qa.shape} differ in shape")
    pa = np.clip(pa, eps, 1.0)
    qa = np.clip(qa, eps, 1.0)
    return np.sum(pa * (np.log(pa) - np.log(qa)), axis=1).astype(np.float64)


def prob_kl(p: ArrayLike, q: ArrayLike, eps: float = 1e-12) -> float:
    """Mean over cases of :func:`prob_kl_per_case` (nats, >= 0)."""
    return float(np.mean(prob_kl_per_case(p, q, eps)))


def auc_along(y_true: np.ndarray, score: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """ROC AUC along ``axis`` (the Mann-Whitney U statistic over n_pos * n_neg), batched.

    Equal to scikit-learn's ``roc_auc_score`` on each slice (ties count one half); written
    batched so that ``scipy.stats.bootstrap`` can score thousands of resamples in one call.

    Args:
        y_true: 0/1 labels, any shape; ``score``: same shape.
        axis: the case axis.

    Returns:
        AUC per slice (nan where a slice holds one class only).
    """
    y = np.moveaxis(np.asarray(y_true), axis, -1).astype(bool)
    ranks = rankdata(np.moveaxis(np.asarray(score, dtype=np.float64), axis, -1), axis=-1)
    n_pos = y.sum(-1)
    n_neg = y.shape[-1] - n_pos
    u = np.where(y, ranks, 0.0).sum(-1) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)
    return float(auc) if np.ndim(auc) == 0 else auc


def f1_along(y_true: np.ndarray, score: np.ndarray, threshold: float, axis: int = -1) -> np.ndarray | float:
    """F1 of ``score >= threshold`` against 0/1 ``y_true`` along ``axis``, batched (0 when undefined)."""
    y = np.moveaxis(np.asarray(y_true), axis, -1).astype(bool)
    pred = np.moveaxis(np.asarray(score, dtype=np.float64), axis, -1) >= threshold
    tp = (y & pred).sum(-1)
    denom = y.sum(-1) + pred.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)
    return float(f1) if np.ndim(f1) == 0 else f1
