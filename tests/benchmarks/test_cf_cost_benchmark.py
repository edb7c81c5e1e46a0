"""benchmarks/cf_cost.py: knob parsing, the Pareto rule, and a tiny run's JSON line."""

from __future__ import annotations

import json

import numpy as np
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
        paired = row["minus_reference"]
        assert all(len(paired[k]) == 3 for k in ("flip_rate", "random_flip_rate", "flip_gain"))
        assert paired["n_common"] + paired["n_only_setting"] == row["n_indeterminate"]
        assert paired["n_common"] + paired["n_only_reference"] == ref["n_indeterminate"]
    assert ref["minus_reference"]["n_only_setting"] == ref["minus_reference"]["n_only_reference"] == 0
    assert result["cheapest_valid"] in (None, *(r["setting"] for r in result["settings"]))


def test_inside_reference_interval_rule(load_benchmark) -> None:
    bench = load_benchmark("cf_cost")
    assert bench._inside(0.93, [1.0, 1.0, 1.0]) is False  # a single-point interval admits only its point
    assert bench._inside(0.18, [0.10, 0.03, 0.23]) is True
    assert bench._inside(0.26, [0.10, 0.03, 0.23]) is False
    assert bench._inside(None, [0.1, 0.0, 0.2]) is None and bench._inside(0.1, [0.1, None, None]) is None


def test_paired_difference_uses_the_cases_both_settings_share(load_benchmark) -> None:
    bench = load_benchmark("cf_cost")
    boot = bench.BootstrapSettings(n_resamples=200)
    ref = {"flip_cases": np.array([0, 1, 2, 5]), "flips": np.array([1.0, 1.0, 0.0, 1.0]),
           "random_flips": np.array([0.0, 1.0, 0.0, 0.0])}
    # case 3 is indeterminate only here, case 2 only in the reference: the 3 shared cases are 0, 1, 5
    per = {"flip_cases": np.array([0, 1, 3, 5]), "flips": np.array([1.0, 0.0, 1.0, 1.0]),
           "random_flips": np.array([0.0, 0.0, 1.0, 0.0])}
    out = bench.paired_with_reference(per, ref, boot)
    assert (out["n_common"], out["n_only_setting"], out["n_only_reference"]) == (3, 1, 1)
    assert out["flip_rate"][0] == pytest.approx(-1 / 3, abs=1e-4)   # case 1 stops flipping
    assert out["random_flip_rate"][0] == pytest.approx(-1 / 3, abs=1e-4)  # and so does its random direction
    assert out["flip_gain"][0] == pytest.approx(0.0, abs=1e-4)
    same = bench.paired_with_reference(ref, ref, boot)
    assert same["n_common"] == 4 and same["flip_gain"] == [0.0, 0.0, 0.0]
