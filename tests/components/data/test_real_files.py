"""Real CT files shipped in PyPI packages (pydicom's test data, pydicom-data), OSIC layout.

None of them is a full chest series (a 5-slice 16x16 crop, single slices of head, neck and
chest), so no patient survives ingestion; what is tested is that real-world files are
read, decoded (JPEG Lossless, JPEG 2000), sorted and quarantined with the right reasons.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_factory import small_cfg, write_labels
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from components.data.dicom_header import read_file
from components.data.dicom_pixels import pixel_values
from components.data.dicom_series import sort_slices
from components.data.dicom_volume import load_volume
from components.data.ingest import ingest
from components.errors import UserError


def _file(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not available offline")
    return Path(path)


@pytest.fixture(scope="module")
def osic_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real")
    train = root / "src" / "train"
    ct5n = sorted(_file("CT_small.dcm").parent.glob("dicomdirtests/98892001/CT5N/*"))
    assert len(ct5n) == 5
    for n, path in enumerate(ct5n, start=1):
        (train / "CT5N").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, train / "CT5N" / f"{n}.dcm")
    for patient, names in {
        "CQ500": ["693_J2KR.dcm", "693_UNCR.dcm", "693_J2KI.dcm"],
        "CHEST": ["CT_small.dcm"],
        "NECK": ["bad_sequence.dcm"],
    }.items():
        (train / patient).mkdir(parents=True)
        for n, name in enumerate(names, start=1):
            shutil.copy(_file(name), train / patient / f"{n}.dcm")
    write_labels(root / "labels.csv", {"CT5N": 0, "CQ500": 1, "CHEST": 0, "NECK": 1})
    return root


def test_real_cohort_quarantined_with_reasons(osic_layout: Path) -> None:
    root = osic_layout
    with pytest.raises(UserError, match="no usable patient"):
        ingest(str(root / "src"), root / "labels.csv", root / "out", small_cfg(min_slices=4))
    files = pd.read_csv(root / "out" / "files.csv", dtype=str, keep_default_na=False)
    on_disk = sorted(p.relative_to(root / "src").as_posix() for p in (root / "src").rglob("*") if p.is_file())
    assert sorted(files.path) == on_disk
    p = pd.read_csv(root / "out" / "patients.csv").set_index("patient")
    assert p.loc["CT5N", "n_slices"] == 5 and p.loc["CT5N", "slice_spacing_mm"] == pytest.approx(2.5)
    assert p.loc["CT5N", "sort_method"] == "ImagePositionPatient"
    reason = p.loc["CT5N", "reason"]  # a 16 px crop of a CT: no air around the body, no lung
    assert reason.startswith("not a chest CT as expected: air median -789 HU") and "RescaleIntercept?" not in reason
    assert "no air around the body in the field of view" in reason
    assert p.loc["CHEST", "reason"] == "too few slices (1 < 4)"
    assert p.loc["NECK", "reason"] == "too few slices (1 < 4)"
    cq = files[files.patient == "CQ500"].set_index("path")
    # J2KR, UNCR and J2KI are one slice (same position): the first by file number is kept
    assert cq.loc["train/CQ500/1.dcm", "status"] == "quarantined"  # patient: too few slices
    assert cq.loc["train/CQ500/2.dcm", "reason"] == "duplicate instance (same SOP UID as train/CQ500/1.dcm)"
    assert cq.loc["train/CQ500/3.dcm", "reason"] == "duplicate slice position 47.00 mm (kept train/CQ500/1.dcm)"
    assert set(files.transfer_syntax) >= {
        "JPEG 2000 Image Compression (Lossless Only)",
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
    }
    phi = [str(pydicom.dcmread(_file("CT_small.dcm")).PatientName), "CQ500-CT-310"]
    for path in (root / "out").rglob("*.csv"):
        text = path.read_text()
        assert not any(v in text for v in phi)


def test_ct5n_sorted_superior_first() -> None:
    files = sorted(_file("CT_small.dcm").parent.glob("dicomdirtests/98892001/CT5N/*"))
    pairs = [read_file(f"P/{p.name}", "P", p.read_bytes()) for p in files]
    recs, dss = [r for r, _ in pairs], [d for _, d in pairs]
    order = sort_slices(recs, list(range(5)))
    z = [pydicom.dcmread(files[i]).ImagePositionPatient[2] for i in order.indices]
    assert z == sorted(z, reverse=True)
    inst = [recs[i].instance_number for i in order.indices]
    assert inst == [6, 7, 8, 9, 10]
    vol = load_volume(recs, dss, order)
    assert vol is not None and vol.hu.shape == (5, 16, 16)
    ref = apply_modality_lut(pydicom.dcmread(files[order.indices[0]]).pixel_array, pydicom.dcmread(files[order.indices[0]]))
    assert np.array_equal(vol.hu[0], ref.astype(np.float32))


def test_compressed_real_files_decode() -> None:
    unc = pydicom.dcmread(_file("693_UNCR.dcm"))
    j2kr = pydicom.dcmread(_file("693_J2KR.dcm"))
    j2ki = pydicom.dcmread(_file("693_J2KI.dcm"))
    a, b, c = pixel_values(unc), pixel_values(j2kr), pixel_values(j2ki)
    assert np.array_equal(a, b)  # lossless
    inside = a > -1500  # the lossy codec shifts the padding value; compare the image
    assert np.corrcoef(a[inside], c[inside])[0, 1] > 0.95  # lossy, same picture
    ljpeg = pydicom.dcmread(_file("bad_sequence.dcm"))
    assert ljpeg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    hu = apply_modality_lut(pixel_values(ljpeg), ljpeg)
    assert hu.shape == (512, 512) and -1100 < hu.min() < -900 and hu.max() > 500
