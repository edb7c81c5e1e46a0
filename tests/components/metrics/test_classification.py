"""Classification metrics: hand-made arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.metrics.classification import as_class_probs, binary_metrics, prob_kl


def test_binary_metrics_known_values() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    m = binary_metrics(y, p)
    # predictions at 0.5: [0,0,0,1,0,1,1,1] -> TP 3, FN 1, TN 3, FP 1
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)
    # 16 positive/negative pairs, 15 ranked correctly (0.4 < 0.6 is the one miss)
    assert m["auc"] == pytest.approx(15 / 16)


def test_binary_metrics_threshold_and_degenerate_cases() -> None:
    y = np.array([0, 1, 1])
    m = binary_metrics(y, np.array([0.2, 0.3, 0.9]), threshold=0.25)
    assert (m["sensitivity"], m["specificity"], m["accuracy"]) == (1.0, 1.0, 1.0)
    single = binary_metrics(np.array([1, 1]), np.array([0.2, 0.9]))
    assert math.isnan(single["auc"]) and single["specificity"] == 0.0 and single["sensitivity"] == 0.5
    with pytest.raises(ValueError):
        binary_metrics(np.array([0, 1]), np.array([0.5]))


def test_prob_kl_known_value_and_properties() -> None:
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    q = np.array([[0.25, 0.75], [0.9, 0.1]])
    expected = (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)) / 2
    assert prob_kl(p, q) == pytest.approx(expected)
    assert prob_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    assert prob_kl(p[:, 1], q[:, 1]) == pytest.approx(expected)  # [N] = P(class 1)
    assert prob_kl(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) > 10  # finite thanks to eps
    assert as_class_probs(np.array([0.25])).tolist() == [[0.75, 0.25]]


def test_batched_auc_and_f1_equal_scikit_learn_per_slice() -> None:
    import numpy as np
    from sklearn.metrics import f1_score, roc_auc_score

    from components.metrics.classification import auc_along, f1_along

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (6, 40))
    s = np.round(rng.random((6, 40)), 1)  # ties on purpose
    assert np.allclose(auc_along(y, s), [roc_auc_score(a, b) for a, b in zip(y, s)])
    assert np.allclose(f1_along(y, s, 0.5), [f1_score(a, b >= 0.5) for a, b in zip(y, s)])
    assert np.isnan(auc_along(np.ones(5), np.arange(5.0)))
    assert np.allclose(auc_along(y.T, s.T, axis=0), auc_along(y, s))


def test_f1_threshold_maximises_f1_and_sits_between_scores() -> None:
    import numpy as np
    from sklearn.metrics import f1_score

    from components.metrics.classification import f1_threshold

    rng = np.random.default_rng(2)
    y = (rng.random(120) < 0.3).astype(int)
    s = np.clip(0.3 * y + rng.normal(0.3, 0.12, 120), 0, 1)  # shrunk: positives mostly below 0.5
    t = f1_threshold(y, s)
    assert not np.any(s == t)
    best = max(f1_score(y, s >= c) for c in np.unique(s))
    assert f1_score(y, s >= t) == best > f1_score(y, s >= 0.5)
    assert f1_threshold(np.zeros(10), s[:10]) == 0.5
