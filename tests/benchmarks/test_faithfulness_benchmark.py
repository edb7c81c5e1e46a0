"""benchmarks/faithfulness.py on a tiny synthetic workdir: the JSON line has the issue's keys."""

from __future__ import annotations

import json


def test_benchmark_prints_the_issue_keys(tiny_workdir, load_benchmark, capsys) -> None:
    wd, cfg_path = tiny_workdir
    bench = load_benchmark("faithfulness")
    bench.main(["--workdir", str(wd), "--config", str(cfg_path), "--cases", "4", "--alphas", "0.3", "--threads", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["n_cases"] == 4 and 1 <= result["n_marked_cases"] <= 3
    assert set(result["maps"]) == {"difference", "attribution", "random_direction", "gradcam", "integrated_gradients"}
    for name, row in result["maps"].items():
        for key in ("mcs_marker", "mcs_disease", "mcs_marker_positive", "mcs_disease_positive", "auroc_vs_random"):
            assert isinstance(row[key], list) and len(row[key]) == 3, (name, key)
        for key in ("randomisation_spearman", "randomisation_evidence_ratio", "reliance_spearman"):
            assert key in row, (name, key)
    assert result["maps"]["random_direction"]["auroc_vs_random"] == [0.0, 0.0, 0.0]
    att = result["maps"]["attribution"]
    assert att["mcs_marker"][0] is not None and att["randomisation_evidence_ratio"] is not None
    assert result["attribution_alpha"] == "flip" and att["randomisation_evidence_ratio_matched_alpha"] >= 0
    assert att["evidence"]["F"]["lungs"] is not None
    assert "probe_auc_marker" in result
    assert result["intervention_max_abs_diff"] < 1e-5, "interventions rendered exactly as the ingested stacks"
    assert set(result["black_boxes"]) == {"F", "M", "R"}
    assert all(set(r["reliance"]) == {"disease", "distractor", "marker"} for r in result["black_boxes"].values())
    out = wd / "faithfulness"
    assert (out / "faithfulness.json").is_file() and "<h2>Faithfulness</h2>" in (out / "faithfulness.html").read_text()
    assert all((out / f"attribution_{b}.png").is_file() for b in "FMR")
