"""benchmarks/cf_cost.py: knob parsing, the Pareto rule, and a tiny run's JSON line."""

from __future__ import annotations

import json

import pytest


def test_setting_parser_fills_defaults_and_refuses_unknown_knobs(load_benchmark) -> None:
    bench = load_benchmark("cf_cost")
    assert bench.parse_setting("steps=10,random=largest") == {"steps": 10, "depth": 1.0, "random": "largest",
                                                              "search": 12}
    assert bench.parse_setting("depth=0.5")["depth"] == 0.5
    for bad in ("stepz=3", "steps=ten", "random=some", "depth="):
        with pytest.raises(bench.UserError):
            bench.parse_setting(bad)


def _row(nfe: float, flip: float, agree: float, rnd: float, psnr: float) -> dict:
    return {"nfe_per_patient": nfe, "flip_rate": [flip], "direction_agreement": [agree],
            "random_flip_rate": [rnd], "psnr": [psnr]}


def test_pareto_front_drops_a_setting_that_is_dearer_and_no_better(load_benchmark) -> None:
    bench = load_benchmark("cf_cost")
    rows = [_row(5000, 1.0, 1.0, 0.1, 49.0),   # reference: best PSNR, dear
            _row(1000, 1.0, 1.0, 0.1, 45.0),   # cheaper, lower PSNR: on the front
            _row(2000, 1.0, 1.0, 0.2, 45.0),   # dearer than row 1 and no better anywhere: dominated
            _row(500, 0.5, 1.0, 0.1, 40.0)]    # cheapest: on the front
    assert bench.pareto_front(rows) == [True, True, False, True]


def test_tiny_run_prints_every_setting_with_intervals(tiny_workdir, load_benchmark, capsys) -> None:
    wd, cfg_path = tiny_workdir
    bench = load_benchmark("cf_cost")
    bench.main(["--workdir", str(wd), "--config", str(cfg_path), "--cases", "4", "--resamples", "200",
                "--setting", "steps=2,search=0", "--setting", "steps=4,depth=0.5,random=largest,search=1"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_cases"] == 4 and result["reference"] == "steps=2,search=0"
    ref, cheap = result["settings"]
    # NFE: 4 encoder + per slice 3 x path (inversion, no fixed-point iterations: 2 x path) + rows x path
    assert ref["nfe_per_patient"] == 4 + 4 * (2 * 2 + 2 * 1 * 2 + 2 * 1 * 2)
    assert cheap["depth"] == 0.5 and cheap["random"] == "largest"
    assert cheap["nfe_per_patient"] >= 4 + 4 * (2 * 2 + 2 * 2 + 2 * 2)
    for row in result["settings"]:
        for key in ("flip_rate", "direction_agreement", "random_flip_rate", "flip_gain", "psnr",
                    "auroc_diffexplainer", "auroc_attribution", "auroc_random_direction", "auroc_random_attribution",
                    "auroc_attribution_minus_random_direction", "auroc_attribution_minus_random_attribution"):
            assert isinstance(row[key], list) and len(row[key]) == 3, key
        assert row["psnr"][0] is not None and row["psnr"][1] <= row["psnr"][0] <= row["psnr"][2]
        assert set(row["within_reference"]) == {"flip_rate", "direction_agreement", "random_flip_rate"}
    assert result["cheapest_valid"] in (None, *(r["setting"] for r in result["settings"]))


def test_inside_reference_interval_rule(load_benchmark) -> None:
    bench = load_benchmark("cf_cost")
    assert bench._inside(0.93, [1.0, 1.0, 1.0]) is False  # a single-point interval admits only its point
    assert bench._inside(0.18, [0.10, 0.03, 0.23]) is True
    assert bench._inside(0.26, [0.10, 0.03, 0.23]) is False
    assert bench._inside(None, [0.1, 0.0, 0.2]) is None and bench._inside(0.1, [0.1, None, None]) is None
