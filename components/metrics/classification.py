"""Binary classification metrics and the KL divergence between two classifiers.

All metrics come from scikit-learn; this module only fixes conventions (positive class = 1,
``prob >= threshold`` predicts positive, undefined AUC reported as ``nan``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

__all__ = ["binary_metrics", "prob_kl", "as_class_probs"]


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


def as_class_probs(p: ArrayLike) -> np.ndarray:
    """Class-probability matrix ``[N,C]``; a ``[N]`` vector is read as P(class 1) of 2 classes."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 1:
        arr = np.stack([1.0 - arr, arr], axis=1)
    if arr.ndim != 2:
        raise ValueError(f"expected [N] or [N,C] probabilities, got shape {arr.shape}")
    return arr


def prob_kl(p: ArrayLike, q: ArrayLike, eps: float = 1e-12) -> float:
    """Mean KL(p || q) between two models' predicted class distributions.

    Args:
        p: ``[N,C]`` probabilities of the reference model (rows sum to 1), or ``[N]`` P(class 1).
        q: same shape as ``p``, the other model.
        eps: probabilities are clipped to ``[eps, 1]`` before taking logs.

    Returns:
        ``mean_i sum_c p_ic (log p_ic - log q_ic)`` in nats, >= 0.
    """
    pa, qa = as_class_probs(p), as_class_probs(q)
    if pa.shape != qa.shape:
        raise ValueError(f"p {pa.shape} and q {qa.shape} differ in shape")
    pa = np.clip(pa, eps, 1.0)
    qa = np.clip(qa, eps, 1.0)
    return float(np.mean(np.sum(pa * (np.log(pa) - np.log(qa)), axis=1)))
