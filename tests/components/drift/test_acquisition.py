"""Acquisition drift: per-field two-sample tests on what ingestion measured per scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.drift.acquisition import acquisition_drift
from components.drift.cohort import dataset_acquisition, reference_acquisition
from components.errors import UserError


def _scans(rng: np.random.Generator, n: int, matrix: int = 128, spacing: float = 2.9) -> pd.DataFrame:
    return pd.DataFrame({"patient": [f"ID{i:05d}" for i in range(n)], "status": "ok", "rows": matrix,
                         "cols": matrix, "pixel_spacing_mm": rng.normal(spacing, 0.1, n),
                         "slice_spacing_mm": rng.normal(20.0, 0.4, n), "hu_air": -1000.0,
                         "hu_lung": rng.normal(-850.0, 15.0, n)})


def test_a_new_scanner_is_detected_and_named() -> None:
    rng = np.random.default_rng(0)
    res = acquisition_drift(_scans(rng, 400), _scans(rng, 120, matrix=160, spacing=2.4))
    assert res.drift and res.p_value < 1e-6
    assert set(res.changed()) == {"rows", "cols", "pixel_spacing_mm"}
    assert res.skipped == {"hu_air": "constant and equal (-1000)"}
    assert (res.n_reference, res.n_current) == (400, 120)


def test_same_scanner_false_alarms_stay_below_alpha_over_random_splits() -> None:
    rng = np.random.default_rng(1)
    table = _scans(rng, 400)
    alarms = 0
    for seed in range(40):
        order = np.random.default_rng(seed).permutation(len(table))
        alarms += acquisition_drift(table.iloc[order[:280]], table.iloc[order[280:]], alpha=0.05).drift
    assert alarms <= 4  # Bonferroni keeps the family-wise rate <= alpha (expected <= 2 of 40)


def test_quarantined_rows_and_bad_input() -> None:
    rng = np.random.default_rng(2)
    ref, cur = _scans(rng, 50), _scans(rng, 50)
    cur.loc[:9, "status"] = "quarantined"
    cur.loc[:9, "rows"] = 512  # ignored: not usable patients
    res = acquisition_drift(ref, cur)
    assert res.n_current == 40 and "rows" in res.skipped and not res.drift
    assert acquisition_drift(ref.drop(columns=["hu_lung"]), cur).skipped["hu_lung"] == "missing in one table"
    with pytest.raises(ValueError, match="alpha"):
        acquisition_drift(ref, cur, alpha=1.5)
    with pytest.raises(ValueError, match="no usable"):
        acquisition_drift(ref, cur.assign(status="quarantined"))


def test_reference_table_is_found_by_hash_and_kept_without_identifiers(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ds = tmp_path / "run" / "datasets" / "osic"
    ds.mkdir(parents=True)
    _scans(rng, 20).to_csv(ds / "patients.csv", index=False)
    (ds / "dataset.json").write_text('{"hash": "sha256:abc"}')
    keep = tmp_path / "keep"
    table, found = reference_acquisition(keep, [tmp_path / "run"], "sha256:abc")
    assert table is not None and found == str(ds) and "patient" not in table.columns
    kept = next(keep.glob("*.csv"))
    assert "ID0" not in kept.read_text()  # no patient identifiers in the kept copy
    (ds / "patients.csv").unlink()
    again, where = reference_acquisition(keep, [tmp_path / "run"], "sha256:abc")
    assert again is not None and where == str(kept) and len(again) == 20
    assert reference_acquisition(tmp_path / "k2", [tmp_path / "run"], "sha256:zzz") == (None, "")
    with pytest.raises(UserError, match="no patients.csv"):
        dataset_acquisition(ds)
