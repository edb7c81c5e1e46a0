"""End-to-end ingestion of the quirk cohort (see conftest.build_zoo): outputs, quarantine, PHI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_factory import FAKE_PHI, chest_volume, small_cfg, write_labels, write_series

from components.data.dataset import load_dataset
from components.data.ingest import dataset_hash, ingest
from components.errors import UserError

QUARANTINED = {
    "MRONLY": "no readable CT image",
    "FEW": "too few slices (5 < 8)",
    "NOLABEL": "no row in labels.csv",
    "BADLABEL": "label '2' is not 0 or 1",
    "DUPLABEL": "2 conflicting rows in labels.csv",
}
OK = ["DUPS", "MIXED", "OK0", "OK1", "OK2", "OK3", "WRONGICPT"]


def _read(out: Path, name: str) -> pd.DataFrame:
    df = pd.read_csv(out / name)
    for col in ("path", "patient", "reason", "note", "cohort", "series_choice"):
        if col in df:
            df[col] = df[col].fillna("").astype(str)
    return df


def test_every_source_file_listed_exactly_once(zoo) -> None:
    root, result, _ = zoo
    src = root / "src"
    on_disk = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    files = _read(root / "out", "files.csv")
    assert sorted(files.path) == on_disk
    assert files.path.is_unique
    assert set(files.status) <= {"used", "skipped", "quarantined"}
    assert result.n_files == len(on_disk)


def test_file_level_quirks(zoo) -> None:
    root, _, _ = zoo
    f = _read(root / "out", "files.csv").set_index("path")
    assert f.loc["train/OK0/notes.txt", "status"] == "quarantined"
    assert f.loc["train/OK0/notes.txt", "reason"] == "not a DICOM file"
    assert f.loc["train/OK1/12.dcm", "status"] == "quarantined"
    assert "pixel data unreadable" in f.loc["train/OK1/12.dcm", "reason"]
    mr = f[f.patient == "MRONLY"]
    assert (mr.status == "quarantined").all() and mr.reason.str.contains("modality MR, not CT").all()
    mixed = f[f.patient == "MIXED"]
    other = mixed[mixed.index.str.contains(r"/10[1-6]\.dcm$")]
    assert len(other) == 6 and (other.status == "skipped").all()
    assert other.reason.str.startswith("other series").all()
    assert (mixed.drop(other.index).status == "used").all()
    dups = f[f.patient == "DUPS"]
    assert (dups.status == "used").sum() == 12 and (dups.status == "skipped").sum() == 12
    assert dups[dups.status == "skipped"].reason.str.startswith("duplicate slice position").all()
    assert f.loc["train.csv", "status"] == "skipped"
    few = f[f.patient == "FEW"]
    assert (few.status == "quarantined").all() and few.reason.str.contains("too few slices").all()


def test_patient_table(zoo) -> None:
    root, result, lines = zoo
    p = _read(root / "out", "patients.csv").set_index("patient")
    assert sorted(p.index[p.status == "ok"]) == OK
    for patient, reason in QUARANTINED.items():
        assert p.loc[patient, "status"] == "quarantined"
        assert p.loc[patient, "reason"] == reason
    ok = p[p.status == "ok"]
    assert (ok.drop("OK1").n_slices == 12).all() and (ok.slice_spacing_mm == 2.5).all()
    assert p.loc["OK1", "n_slices"] == 11  # its truncated slice is dropped, the rest used
    assert (ok.hu_air.between(-1010, -990)).all() and (ok.hu_lung.between(-870, -830)).all()
    assert p.loc["WRONGICPT", "hu_correction"] == -1024
    assert "RescaleIntercept corrected by -1024" in p.loc["WRONGICPT", "note"]
    assert (ok.drop("WRONGICPT").hu_correction == 0).all()
    assert p.loc["MIXED", "series_choice"].startswith("most slices (12")
    assert (ok.sort_method == "ImagePositionPatient").all()
    assert set(ok.fold) <= {0, 1} and ok.fold.nunique() == 2
    assert (ok.cohort == "osic").all()
    assert len(lines) == len(p) and all(line.startswith("[") for line in lines)
    assert result.n_ok == len(OK) and result.n_quarantined == len(QUARANTINED)


def test_slice_selection_levels(zoo) -> None:
    root, _, _ = zoo
    p = _read(root / "out", "patients.csv").set_index("patient")
    # chest_volume puts lungs on slices 1..10 of 12; levels .2 .4 .6 .8 of that extent
    assert p.loc["OK0", "slice_indices"] == "3;5;6;8"
    assert p.loc["OK0", "selected_files"] == "4.dcm;6.dcm;7.dcm;9.dcm"
    assert (p.loc["OK0", "lung_first"], p.loc["OK0", "lung_last"]) == (1, 10)


def test_quarantine_csv(zoo) -> None:
    root, _, _ = zoo
    q = _read(root / "out", "quarantine.csv")
    assert set(q[q.kind == "patient"].patient) == set(QUARANTINED)
    assert "train/OK0/notes.txt" in set(q[q.kind == "file"].path)
    assert list(q[q.kind == "label"].patient) == ["GHOST"]


def test_arrays_and_loader(zoo) -> None:
    root, result, _ = zoo
    out = root / "out"
    images = np.load(out / "images.npy", mmap_mode="r")
    assert images.dtype == np.float32 and images.shape == (len(OK), 4, 16, 16)
    assert images.min() >= -1.0 and images.max() <= 1.0
    lung = np.load(out / "lung_masks.npy")
    assert lung.dtype == np.uint8 and lung.shape == images.shape and set(np.unique(lung)) == {0, 1}
    assert not (out / "masks.npy").exists()
    ds = load_dataset(out)
    assert list(ds.patients.patient) == OK and len(ds) == len(OK)
    assert ds.labels.dtype == np.int64 and list(ds.labels) == [1, 0, 0, 1, 0, 1, 1]
    assert ds.folds.dtype == np.int64 and ds.masks is None
    assert ds.hash == result.dataset_hash == dataset_hash(np.asarray(images), ds.labels, OK)
    # the corrected patient looks like the others (lungs dark, body bright)
    w = list(ds.patients.patient).index("WRONGICPT")
    assert abs(float(images[w].mean()) - float(images[0].mean())) < 0.1
    info = json.loads((out / "dataset.json").read_text())
    assert info["counts"]["patients_ok"] == len(OK) and info["hash"] == ds.hash
    assert info["config"]["image_size"] == 16


def test_validation_report(zoo) -> None:
    root, result, _ = zoo
    v = result.validation
    saved = json.loads((root / "out" / "validation" / "results.json").read_text())
    assert saved["warnings"] == v["warnings"]
    assert (root / "out" / "validation" / v["docs"]).is_file()
    by_name = {e["name"]: e for e in v["expectations"]}
    assert not by_name["files.modality_is_ct"]["success"]  # the MR patient
    assert not by_name["patients.slice_count_min"]["success"]  # FEW
    assert not by_name["patients.label_binary"]["success"]  # BADLABEL
    assert not by_name["patients.label_present"]["success"]  # NOLABEL
    assert by_name["files.intercept_typical"]["success"]  # -1024 and 0 are both typical
    assert by_name["patients.unique"]["success"] and by_name["files.pixel_spacing_positive"]["success"]
    assert v["blocking_failed"] == [] and "files.modality_is_ct" in v["warnings"]


def test_no_phi_in_any_output(zoo) -> None:
    root, _, lines = zoo
    needles = [v.lower() for v in FAKE_PHI.values()] + ["doefake", "fakehospital"]
    blobs = [p.read_bytes().lower() for p in (root / "out").rglob("*") if p.is_file()]
    blobs.append("\n".join(lines).lower().encode())
    for needle in needles:
        assert not any(needle.encode() in b for b in blobs), needle
    # raw UIDs (Annex E) are replaced by digests
    import pydicom

    uid = pydicom.dcmread(root / "src" / "train" / "OK0" / "1.dcm").SeriesInstanceUID
    assert not any(str(uid).encode() in b for b in blobs)


def test_deterministic_across_worker_counts(zoo, tmp_path: Path) -> None:
    root, result, _ = zoo
    again = ingest(str(root / "src"), root / "labels.csv", tmp_path / "out", small_cfg(workers=1))
    assert again.dataset_hash == result.dataset_hash
    a = _read(root / "out", "patients.csv")
    b = _read(tmp_path / "out", "patients.csv")
    pd.testing.assert_frame_equal(a, b)


def test_blocking_expectation_stops_the_run(zoo, tmp_path: Path) -> None:
    root, _, _ = zoo
    cfg = small_cfg(blocking_expectations=["files.modality_is_ct"])
    with pytest.raises(UserError, match="blocking expectation.*files.modality_is_ct"):
        ingest(str(root / "src"), root / "labels.csv", tmp_path / "out", cfg)
    assert (tmp_path / "out" / "validation" / "results.json").is_file()
    assert not (tmp_path / "out" / "images.npy").exists()


def test_unknown_blocking_name_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown files.modality"):
        ingest(str(tmp_path), tmp_path / "x.csv", tmp_path / "out", small_cfg(blocking_expectations=["files.modality"]))


def test_empty_source(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    labels = write_labels(tmp_path / "labels.csv", {"A": 1})
    with pytest.raises(UserError, match="holds no files") as err:
        ingest(str(tmp_path / "src"), labels, tmp_path / "out", small_cfg())
    assert "\n" not in str(err.value)


def test_nothing_usable_is_one_line_user_error(tmp_path: Path) -> None:
    write_series(tmp_path / "src" / "train" / "A", chest_volume(4))
    (tmp_path / "src" / "train" / "B").mkdir()
    (tmp_path / "src" / "train" / "B" / "1.dcm").write_bytes(b"garbage")
    labels = write_labels(tmp_path / "labels.csv", {"A": 1, "B": 0})
    with pytest.raises(UserError, match="no usable patient") as err:
        ingest(str(tmp_path / "src"), labels, tmp_path / "out", small_cfg(workers=1))
    assert "\n" not in str(err.value)
    q = _read(tmp_path / "out", "quarantine.csv")
    assert set(q[q.kind == "patient"].patient) == {"A", "B"}


def test_missing_label_columns(tmp_path: Path) -> None:
    write_series(tmp_path / "src" / "train" / "A", chest_volume(8))
    (tmp_path / "labels.csv").write_text("Patient,died\nA,1\n")
    with pytest.raises(UserError, match="missing column"):
        ingest(str(tmp_path / "src"), tmp_path / "labels.csv", tmp_path / "out", small_cfg())
