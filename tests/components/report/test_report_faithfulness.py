"""HTML fragments of components/report/faithfulness.py and the attribution panel."""

from __future__ import annotations

import numpy as np

from components.report.attribution_panel import plot_attribution
from components.report.faithfulness import render_evidence, render_faithfulness


def test_evidence_fragment_shows_shares_and_the_shortcut_warning() -> None:
    metrics = {"evidence": {
        "attribution": {"lungs": 0.9, "outside_lungs": 0.1, "disease": 0.6, "distractor": 0.05, "marker": 0.0,
                        "rest_of_lungs": 0.25, "shortcut_warning": False, "n_cases": 30},
        "diffexplainer": {"lungs": 0.3, "outside_lungs": 0.7, "disease": None, "distractor": None, "marker": None,
                          "rest_of_lungs": None, "shortcut_warning": True, "n_cases": 30},
    }}
    text = render_evidence(metrics, threshold=0.5)
    assert text.count("<tr>") == 3 and "0.6" in text and "n/a" in text
    assert "Shortcut warning: the diffexplainer map" in text and "50%" in text
    assert "attribution map puts" not in text
    assert "not evaluated" in render_evidence({"evidence": None})


def test_faithfulness_fragment_and_attribution_panel(tmp_path) -> None:
    png = plot_attribution(np.zeros((4, 8, 8), np.float32), np.random.default_rng(0).normal(size=(2, 4, 8, 8)),
                           tmp_path / "a.png", "t")
    result = {"n_cases": 30, "probe_auc_marker": 0.97,
              "maps": {"attribution": {"mcs_marker": [0.6, 0.5, 0.7], "mcs_disease": [0.3, 0.1, 0.4],
                                       "randomisation_evidence_ratio": 0.01, "randomisation_spearman": 0.5,
                                       "auroc_vs_random": [0.1, 0.05, 0.2], "reliance_spearman": 0.9}}}
    text = render_faithfulness(result, {"black box F": png})
    assert "<h2>Faithfulness</h2>" in text and "0.6 [0.5, 0.7]" in text and "0.97" in text
    assert text.count("data:image/png;base64,") == 1
    assert "not evaluated" in render_faithfulness(None)
