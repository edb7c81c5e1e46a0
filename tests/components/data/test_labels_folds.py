"""labels.csv parsing and patient-level stratified folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import write_labels

from components.data.folds import assign_folds
from components.data.labels import read_labels
from components.errors import UserError


def test_label_rows(tmp_path: Path) -> None:
    path = write_labels(
        tmp_path / "labels.csv",
        [
            {"Patient": "A", "mortality_1y": "1", "cohort": "osic", "split": "train"},
            {"Patient": "B", "mortality_1y": "yes", "cohort": "osic", "split": ""},
            {"Patient": "C", "mortality_1y": "0", "cohort": "osic", "split": ""},
            {"Patient": "C", "mortality_1y": "0", "cohort": "osic", "split": ""},
            {"Patient": "D", "mortality_1y": "0", "cohort": "osic", "split": ""},
            {"Patient": "D", "mortality_1y": "1", "cohort": "osic", "split": ""},
            {"Patient": "E", "mortality_1y": "", "cohort": "ext", "split": "test"},
            {"Patient": "F", "mortality_1y": "1.0", "cohort": "ext", "split": "test"},
        ],
    )
    got = read_labels(path)
    assert got["A"].label == 1 and got["A"].problem == "" and got["A"].cohort == "osic"
    assert got["B"].label is None and got["B"].problem == "label 'yes' is not 0 or 1"
    assert got["C"].label == 0 and got["C"].note == "2 identical rows in labels.csv merged"
    assert got["D"].label is None and got["D"].problem == "2 conflicting rows in labels.csv"
    assert got["E"].problem == "label '' is not 0 or 1"
    assert got["F"].label == 1 and got["F"].split == "test" and got["F"].raw == "1"


def test_label_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        read_labels(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("Patient\nA\n")
    with pytest.raises(UserError, match="missing column"):
        read_labels(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="not a readable CSV"):
        read_labels(tmp_path / "empty.csv")


def test_folds_stratified_deterministic_and_order_free() -> None:
    ids = [f"P{i:03d}" for i in range(40)]
    y = [1 if i % 4 == 0 else 0 for i in range(40)]
    folds, k = assign_folds(ids, y, 5, seed=3)
    assert k == 5 and folds.dtype == np.int64 and set(folds) == set(range(5))
    for f in range(5):
        assert (np.asarray(y)[folds == f] == 1).sum() == 2  # 10 positives over 5 folds
    again, _ = assign_folds(ids[::-1], y[::-1], 5, seed=3)
    assert dict(zip(ids, folds)) == dict(zip(ids[::-1], again))
    other, _ = assign_folds(ids, y, 5, seed=4)
    assert not np.array_equal(folds, other)


def test_folds_held_out_and_small() -> None:
    ids = ["a", "b", "c", "d", "e", "f"]
    folds, k = assign_folds(ids, [0, 1, 0, 1, 0, 1], 5, 0, splits=["", "train", "", "train", "test", "holdout"])
    assert list(folds[4:]) == [-1, -1] and set(folds[:4]) == {0, 1} and k == 2
    folds, k = assign_folds(["a"], [1], 5, 0)
    assert list(folds) == [0] and k == 1
    with pytest.raises(ValueError):
        assign_folds(["a", "a"], [0, 1], 2, 0)
