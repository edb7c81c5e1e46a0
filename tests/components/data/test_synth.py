"""The OSIC-format cohort writer: layout, DICOM storage, masks, labels, determinism, PHI canary."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_rescale
from pydicom.uid import CTImageStorage

from components.config import SynthConfig
from components.data.synth import (
    FAKE_PHI,
    Cohort,
    draw_patients,
    label_model,
    patient_phantom,
    scanner_profile,
    write_cohort,
)
from components.errors import UserError

CFG = SynthConfig(slices_per_patient=8, osic_matrix=48, external_matrix=64)
N, SEED = 4, 7


def _write(root: Path, cohort: Cohort, **kwargs: Any) -> tuple[Any, list[str]]:
    lines: list[str] = []
    summary = write_cohort(root, cohort, N, SEED, CFG, progress=lines.append, **kwargs)
    return summary, lines


@pytest.fixture(scope="module")
def osic(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("osic") / "cohort", "osic", workers=1)


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("external") / "cohort", "external", workers=1)


def _ids(root: Path) -> list[str]:
    with (root / "labels.csv").open() as fh:
        return [row["Patient"] for row in csv.DictReader(fh)]


def _series_hu(root: Path, pid: str) -> tuple[np.ndarray, list[pydicom.FileDataset]]:
    files = [pydicom.dcmread(root / "train" / pid / f"{n}.dcm") for n in range(1, CFG.slices_per_patient + 1)]
    return np.stack([apply_rescale(ds.pixel_array, ds) for ds in files]), files


def _phantom_of(cohort: Cohort, index: int) -> Any:
    rec = draw_patients(cohort, N, SEED, CFG)[index]
    prof = scanner_profile(cohort, CFG)
    return patient_phantom(rec, prof, CFG.slices_per_patient, CFG.marker_size_mm)


def test_layout_and_tables(osic) -> None:
    summary, lines = osic
    root = summary.root
    ids = _ids(root)
    assert len(ids) == N == summary.n_patients and len(set(ids)) == N
    assert all(re.fullmatch(r"ID\d{23}", pid) for pid in ids)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(ids)
    for pid in ids:
        names = sorted(p.name for p in (root / "train" / pid).iterdir())
        assert names == sorted(f"{n}.dcm" for n in range(1, 9))
    with (root / "train.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["Patient", "Weeks", "FVC", "Percent", "Age", "Sex", "SmokingStatus"]
    assert {r["Patient"] for r in rows} == set(ids) and len(rows) >= 3 * N
    assert all(r["Sex"] in {"Male", "Female"} and 500 < int(r["FVC"]) < 7000 for r in rows)
    with (root / "labels.csv").open() as fh:
        labels = list(csv.DictReader(fh))
    assert {r["mortality_1y"] for r in labels} <= {"0", "1"} and {r["cohort"] for r in labels} == {"osic"}
    assert summary.n_positive == sum(int(r["mortality_1y"]) for r in labels)
    meta = json.loads((root / "cohort.json").read_text())
    assert meta["seed"] == SEED and meta["cohort"] == "osic"
    assert meta["label_model"]["beta0"] == pytest.approx(label_model(CFG.osic_prevalence).beta0)
    assert [p["Patient"] for p in meta["patients"]] == ids
    assert all(0 <= p["extent"] <= 1 and 0 <= p["mask_fraction"] <= 1 for p in meta["patients"])
    assert summary.n_files == N * CFG.slices_per_patient
    assert summary.bytes == sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert lines and "100%" in lines[-1] and len(lines) <= 11


def test_osic_dicom_storage_and_hu(osic) -> None:
    root = osic[0].root
    pid = _ids(root)[0]
    hu, files = _series_hu(root, pid)
    ds = files[0]
    assert ds.SOPClassUID == CTImageStorage and ds.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert ds.Modality == "CT" and ds.PatientID == pid and ds.Rows == ds.Columns == 48
    assert float(ds.RescaleIntercept) == -1024 and ds.PixelRepresentation == 0
    assert ds.pixel_array.dtype == np.uint16
    assert [int(f.InstanceNumber) for f in files] == list(range(1, 9))
    assert len({f.SOPInstanceUID for f in files}) == 8 and len({f.SeriesInstanceUID for f in files}) == 1
    assert -1030 < float(np.median(hu[:, :3, :3])) < -970, "square FOV, air outside the body"
    ph = _phantom_of("osic", 0)
    assert np.abs(hu - ph.hu).max() <= 0.5, "stored values are the phantom's HU, rounded"
    healthy = ph.lung.astype(bool) & (ph.mask == 0)
    assert -900 < float(np.median(hu[healthy])) < -780
    assert 0 < float(np.median(hu[0][hu[0] > -500])) < 80, "body soft tissue"


def test_external_scanner_shift(external) -> None:
    root = external[0].root
    pid = _ids(root)[1]
    hu, files = _series_hu(root, pid)
    ds = files[0]
    assert float(ds.RescaleIntercept) == 0 and ds.PixelRepresentation == 1 and ds.Rows == 64
    assert np.all(hu[:, 0, 0] < -2000) and np.all(hu[:, -1, -1] < -2000), "circular FOV padding"
    assert -1030 < float(np.median(hu[:, 32, 3:6])) < -970, "air inside the circle"
    ph = _phantom_of("external", 1)
    assert np.abs(hu - ph.hu).max() <= 0.5
    assert float(ds.PixelSpacing[0]) == pytest.approx(ph.pixel_spacing)


def test_patient_ids_differ_between_cohorts(osic, external) -> None:
    assert set(_ids(osic[0].root)).isdisjoint(_ids(external[0].root))


def test_masks_align_with_slices_and_disease_hu(osic) -> None:
    root = osic[0].root
    in_mask, outside = [], []
    for pid in _ids(root):
        hu, files = _series_hu(root, pid)
        npz = np.load(root / "masks" / f"{pid}.npz")
        mask, distractor, z = npz["mask"], npz["distractor"], npz["z"]
        assert mask.dtype == distractor.dtype == np.uint8 and mask.shape == hu.shape
        assert z.dtype == np.float64
        assert np.allclose(z, [float(f.ImagePositionPatient[2]) for f in files])
        in_mask.append(hu[mask == 1])
        lungish = (hu > -950) & (hu < -700) & (mask == 0) & (distractor == 0)
        outside.append(hu[lungish])
    disease = np.concatenate(in_mask)
    assert disease.size > 50
    assert float(disease.mean()) > float(np.concatenate(outside).mean()) + 100
    assert np.mean(disease < -950) > 0.02, "honeycomb lumens"
    assert np.mean((disease > -400) & (disease < -200)) > 0.05, "reticular lines"


def test_deterministic_across_runs_and_workers(osic, tmp_path) -> None:
    first = osic[0].root
    second, _ = _write(tmp_path / "again", "osic", workers=2)
    files = sorted(p.relative_to(first) for p in (first / "train").rglob("*.dcm"))
    assert files == sorted(p.relative_to(second.root) for p in (second.root / "train").rglob("*.dcm"))
    assert all((first / f).read_bytes() == (second.root / f).read_bytes() for f in files)
    for name in ("labels.csv", "train.csv", "cohort.json"):
        assert (first / name).read_text() == (second.root / name).read_text()
    for pid in _ids(first):
        a, b = np.load(first / "masks" / f"{pid}.npz"), np.load(second.root / "masks" / f"{pid}.npz")
        assert all(np.array_equal(a[k], b[k]) for k in ("mask", "distractor", "marker", "z"))


def test_other_seed_gives_other_patients() -> None:
    a, b = draw_patients("osic", 3, 0, CFG), draw_patients("osic", 3, 1, CFG)
    assert {r.patient_id for r in a}.isdisjoint(r.patient_id for r in b)
    assert [r.extent for r in a] != [r.extent for r in b]
    assert [r.patient_id for r in draw_patients("osic", 5, 0, CFG)[:3]] == [r.patient_id for r in a]


@pytest.mark.parametrize("cohort,target", [("osic", 0.037), ("external", 0.086), ("osic", 0.25)])
def test_prevalence_of_a_large_draw(cohort: Cohort, target: float) -> None:
    cfg = SynthConfig(osic_prevalence=target) if cohort == "osic" else SynthConfig()
    records = draw_patients(cohort, 3000, 0, cfg)
    labels = np.array([r.label for r in records])
    extent = np.array([r.extent for r in records])
    tolerance = 4 * np.sqrt(target * (1 - target) / len(records))
    assert abs(labels.mean() - target) < tolerance
    assert extent[labels == 1].mean() > extent[labels == 0].mean() + 0.15, "extent drives the label"
    assert 0.0 < extent.min() and extent.max() < 0.8


def test_fake_phi_in_every_file_and_nowhere_else(osic, external) -> None:
    for root in (osic[0].root, external[0].root):
        for path in (root / "train").rglob("*.dcm"):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert all((el := ds.data_element(k)) is not None and str(el.value) == v for k, v in FAKE_PHI.items())
        for name in ("train.csv", "labels.csv", "cohort.json"):
            text = (root / name).read_text()
            assert not any(v in text for v in FAKE_PHI.values())


def test_refuses_non_empty_root_unless_overwrite(osic, tmp_path) -> None:
    with pytest.raises(UserError, match="not empty"):
        write_cohort(osic[0].root, "osic", 2, 0, CFG, progress=lambda _: None)
    root = tmp_path / "c"
    write_cohort(root, "osic", 2, 0, CFG, progress=lambda _: None, workers=1)
    (root / "keep.txt").write_text("user file")
    summary = write_cohort(root, "osic", 1, 3, CFG, progress=lambda _: None, overwrite=True, workers=1)
    assert len(list((root / "train").iterdir())) == 1 and (root / "keep.txt").exists()
    assert summary.n_patients == 1 and len(_ids(root)) == 1


@pytest.mark.parametrize(
    "cohort,n,seed,match",
    [("mri", 2, 0, "unknown cohort"), ("osic", 0, 0, "n_patients"), ("osic", 2, -1, "seed")],
)
def test_bad_arguments_are_user_errors(tmp_path, cohort: str, n: int, seed: int, match: str) -> None:
    with pytest.raises(UserError, match=match):
        write_cohort(tmp_path / "x", cohort, n, seed, CFG)  # type: ignore[arg-type]
