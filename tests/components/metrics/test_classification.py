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
