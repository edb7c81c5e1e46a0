"""benchmarks/faithfulness.py on a tiny synthetic workdir: the JSON line has the issue's keys."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_benchmark_prints_the_issue_keys(tiny_workdir, load_benchmark, capsys) -> None:
    wd, cfg_path = tiny_workdir
    bench = load_benchmark("faithfulness")
    bench.main(["--workdir", str(wd), "--config", str(cfg_path), "--cases", "4", "--alphas", "0.3", "--threads", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["n_cases"] == 4 and 1 <= result["n_marked_cases"] <= 3
    assert result["case_selection"] == "decision" and 0 <= result["n_f_positive_cases"] <= 4
    assert set(result["maps"]) == {"difference", "attribution", "random_direction", "random_attribution", "gradcam",
                                   "integrated_gradients"}
    for name, row in result["maps"].items():
        for key in ("mcs_marker", "mcs_disease", "mcs_marker_positive", "mcs_disease_positive", "auroc_vs_random",
                    "auroc_vs_random_attribution", "auroc_vs_random_signed",
                    "mcs_disease_f_positive", "auroc_vs_random_f_positive", "mcs_marker_pooled", "mcs_disease_pooled",
                    "mcs_disease_pooled_f_positive"):
            assert isinstance(row[key], list) and len(row[key]) == 3, (name, key)
        for key in ("randomisation_spearman", "randomisation_evidence_ratio", "reliance_spearman"):
            assert key in row, (name, key)
    assert result["maps"]["random_direction"]["auroc_vs_random"] == [0.0, 0.0, 0.0]
    # the paired contrast against the method-matched control is the difference of the two maps' mean AUROCs
    # (both are undefined on the same cases: a case's AUROC is NaN only where its lungs hold one class)
    att_row, control_row = result["maps"]["attribution"], result["maps"]["random_attribution"]
    assert att_row["auroc_vs_random_attribution"][0] == pytest.approx(att_row["auroc"] - control_row["auroc"], abs=1e-9)
    # a non-negative map scores the same by magnitude and by sign; the signed attribution map need not
    diff = result["maps"]["difference"]
    assert diff["auroc_vs_random_signed"] == diff["auroc_vs_random"] and diff["auroc_signed"] == diff["auroc"]
    assert "attribution_auroc_beats_random_attribution_by_0.05" in result["targets"]
    assert result["maps"]["random_direction"]["mcs_disease_pooled"] == pytest.approx([0.0] * 3, abs=1e-6)  # F = M map
    att = result["maps"]["attribution"]
    assert att["mcs_marker"][0] is not None and att["randomisation_evidence_ratio"] is not None
    assert result["attribution_alpha"] == "flip"
    assert result["random_control_alphas"] == "all", "the attribution control is step-matched per case"
    # one alpha: R attributed at F's alpha is R attributed at its own, so the two ratios coincide
    assert att["randomisation_evidence_ratio_matched_alpha"] == pytest.approx(att["randomisation_evidence_ratio"])
    assert att["evidence"]["F"]["lungs"] is not None
    assert "probe_auc_marker" in result
    assert result["intervention_max_abs_diff"] < 1e-5, "interventions rendered exactly as the ingested stacks"
    assert set(result["black_boxes"]) == {"F", "M", "R"}
    assert all(set(r["reliance"]) == {"disease", "distractor", "marker"} for r in result["black_boxes"].values())
    out = wd / "faithfulness"
    assert (out / "faithfulness.json").is_file() and "<h2>Faithfulness</h2>" in (out / "faithfulness.html").read_text()
    assert all((out / f"attribution_{b}.png").is_file() for b in "FMR")


def test_decision_strata_fill_evenly_and_marker_mode_ignores_f(load_benchmark) -> None:
    bench = load_benchmark("faithfulness")
    marker = np.array([1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1])
    f_pos = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1], bool)
    disease = np.ones(12, bool)
    disease[11] = False  # no disease mask: never drawn
    idx = bench.select_cases(marker, disease, 8, seed=0, f_positive=f_pos)
    assert len(idx) == 8 and len(set(idx.tolist())) == 8 and 11 not in idx
    strata = {(bool(f_pos[i]), bool(marker[i])) for i in idx}
    assert strata == {(True, True), (True, False), (False, True), (False, False)}
    counts = [int(((f_pos[idx] == f) & (marker[idx] == m)).sum()) for f in (True, False) for m in (1, 0)]
    assert counts == [2, 2, 2, 2]  # 2 F+marked, 3 F+clean, 3 F-marked, 3 F-clean available: 2 each
    assert bench.select_cases(marker, disease, 20, seed=0, f_positive=f_pos).tolist() == list(range(11))
    plain = bench.select_cases(marker, disease, 6, seed=0)
    assert int(marker[plain].sum()) == 3
