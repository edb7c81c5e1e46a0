"""benchmarks/faithfulness_ceiling.py: the oracle map's model contrast per image size, on a tiny workdir."""

from __future__ import annotations

import json

import numpy as np


def test_ceiling_prints_one_row_per_size(tiny_workdir, load_benchmark, capsys, tmp_path) -> None:
    wd, cfg_path = tiny_workdir
    bench = load_benchmark("faithfulness_ceiling")
    bench.main(["--workdir", str(wd), "--config", str(cfg_path), "--image-sizes", "16,32", "--cases", "4",
                "--threads", "1", "--out", str(tmp_path), "--save-arrays"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "faithfulness_ceiling" and set(result["sizes"]) == {"16", "32"}
    for size, row in result["sizes"].items():
        assert row["image_size"] == int(size) and row["n_cases"] == 4 and 1 <= row["n_marked_cases"] <= 3
        groups = ("", "_f_positive", "_marked", "_unmarked")
        assert set(row["mcs"]) == {f"{c}{p}{g}" for c in ("marker", "disease") for p in ("", "_positive")
                                   for g in groups if c == "disease" or not g} | {
                                       "marker_pooled", "disease_pooled", "disease_pooled_f_positive"}
        assert set(row["positive_shares"]["M"]["marked"]) == {"disease", "distractor", "marker", "positive_mass"}
        assert all(isinstance(t, list) and len(t) == 3 for t in row["mcs"].values())
        assert row["mcs"]["disease"][0] is not None and row["randomisation_evidence_ratio"] is not None
        assert set(row["black_boxes"]) == {"F", "M", "R"} and row["black_boxes"]["F"]["cv_auc"] is not None
        shares = row["f_positive_map_shares"]["all_cases"]
        assert shares["disease"] <= shares["disease_any_fraction"] + 1e-9 <= shares["disease_dilated_1px"] + 2e-9
        assert abs(shares["lungs"] + shares["outside_lungs"] - 1.0) < 1e-9
        assert all(e < 0.2 for e in row["ig_completeness_rel_error"].values()), "IG sums to s(x) - s(bare)"
        assert 0.0 <= row["disease_mask"]["fraction_outside_lungs"] <= 1.0
        loc = row["f_localisation_auroc"]
        assert set(loc) == {f"{k}{t}" for k in ("magnitude", "signed") for t in ("", "_f_positive")}
        assert loc["magnitude"] is not None and 0.0 <= loc["magnitude"] <= 1.0
        with np.load(tmp_path / f"size_{size}.npz") as npz:
            assert npz["map_F"].shape == (4, 4, int(size), int(size))
            same = npz["images"] == npz["bare"]  # IG multiplies by x - baseline: no relevance where nothing was removed
            assert same.any() and all(np.all(npz[f"map_{b}"][same] == 0) for b in "FMR")
    assert result["sizes"]["16"]["render_max_abs_diff_vs_dataset"] < 1e-5, "rendered as the dataset was ingested"
    assert result["sizes"]["32"]["render_max_abs_diff_vs_dataset"] is None
    area = {s: result["sizes"][s]["disease_mask"]["area_px_per_slice"] for s in ("16", "32")}
    assert area["32"] > 2 * area["16"], "a thin band: its area in pixels grows with the grid"
    assert (tmp_path / "faithfulness_ceiling.json").is_file()


def test_dilation_and_mask_geometry_golden(load_benchmark) -> None:
    bench = load_benchmark("faithfulness_ceiling")
    mask = np.zeros((1, 4, 5, 5))
    mask[0, 1, 2, 2] = 0.5
    grown = bench.dilate_mask(mask)
    assert grown.sum() == 9 and grown[0, 1, 1:4, 1:4].all() and not grown[0, [0, 2, 3]].any(), "in-plane only"
    assert bench.dilate_mask(mask, threshold=0.5).sum() == 0
    lungs = np.zeros((1, 4, 5, 5), np.uint8)
    mask[0, 1, 2, 3] = 1.5  # clipped to 1
    lungs[0, 1, 2, 3] = 1
    geo = bench.mask_geometry(mask, lungs, threshold=0.1)
    assert geo["area_px_per_slice"] == 1.5 / 4 and geo["area_px_per_slice_above_threshold"] == 2 / 4
    assert geo["lung_px_per_slice"] == 1 / 4 and geo["fraction_outside_lungs"] == 0.5 / 1.5
    assert np.isnan(bench.mask_geometry(np.zeros_like(mask), lungs, 0.1)["fraction_outside_lungs"])


def test_localisation_aurocs_magnitude_and_sign(load_benchmark) -> None:
    """A lesion attributed with both signs: perfect by magnitude, half its pixels ranked last by sign."""
    bench = load_benchmark("faithfulness_ceiling")
    lesion = np.zeros((2, 4, 6, 6), bool)
    lesion[:, 0, 1:3, 1:3] = True
    region = np.ones_like(lesion)
    rel = np.zeros((2, 4, 6, 6))
    rel[:, 0, 1, 1:3], rel[:, 0, 2, 1:3] = 1.0, -1.0
    out = bench.localisation_aurocs(rel, lesion, region, np.array([True, False]))
    assert out["magnitude"] == 1.0 and out["magnitude_f_positive"] == 1.0
    n_bg = region[0].sum() - 4  # 2 lesion pixels above every background pixel, 2 below: (2 * n_bg) / (4 * n_bg)
    assert out["signed"] == 0.5 and out["signed_f_positive"] == 0.5 and n_bg > 0
