"""Fixtures for ingestion tests: a small config and a cohort with every quirk (the "zoo")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dicom_factory import chest_volume, small_cfg, write_labels, write_series  # noqa: E402

from components.data.ingest import IngestResult, ingest  # noqa: E402


def build_zoo(root: Path) -> None:
    """Write the quirk cohort under ``root/src`` and ``root/labels.csv``."""
    train = root / "src" / "train"
    for i in range(4):
        write_series(train / f"OK{i}", chest_volume(12, seed=i))
    # a non-DICOM file and a truncated file inside otherwise good patients
    (train / "OK0" / "notes.txt").write_text("not an image")
    bad = train / "OK1" / "12.dcm"
    bad.write_bytes(bad.read_bytes()[:-500])
    # intercept 0 written where -1024 was meant
    write_series(train / "WRONGICPT", chest_volume(12, seed=5), intercept=-1024, header_intercept=0)
    # MR instead of CT
    write_series(train / "MRONLY", chest_volume(12, seed=6), modality="MR")
    # too few slices
    write_series(train / "FEW", chest_volume(5, seed=7))
    # two series in one folder: 12 slices (chosen) and a 6-slice localiser-like series
    write_series(train / "MIXED", chest_volume(12, seed=8))
    write_series(train / "MIXED", chest_volume(6, seed=9), first_number=101, dz=5.0)
    # duplicates: every slice written twice (files 1..12 and 13..24, same positions)
    vol = chest_volume(12, seed=10)
    uid = "1.2.826.0.1.3680043.8.498.1"
    write_series(train / "DUPS", vol, series_uid=uid)
    write_series(train / "DUPS", vol, series_uid=uid, first_number=13)
    # label problems
    write_series(train / "NOLABEL", chest_volume(12, seed=11))
    write_series(train / "BADLABEL", chest_volume(12, seed=12))
    write_series(train / "DUPLABEL", chest_volume(12, seed=13))
    (root / "src" / "train.csv").write_text("Patient,Weeks,FVC\nOK0,0,2000\n")
    write_labels(
        root / "labels.csv",
        [
            {"Patient": "OK0", "mortality_1y": 0, "cohort": "osic"},
            {"Patient": "OK1", "mortality_1y": 1, "cohort": "osic"},
            {"Patient": "OK2", "mortality_1y": 0, "cohort": "osic"},
            {"Patient": "OK3", "mortality_1y": 1, "cohort": "osic"},
            {"Patient": "WRONGICPT", "mortality_1y": 1, "cohort": "osic"},
            {"Patient": "MRONLY", "mortality_1y": 0, "cohort": "osic"},
            {"Patient": "FEW", "mortality_1y": 0, "cohort": "osic"},
            {"Patient": "MIXED", "mortality_1y": 0, "cohort": "osic"},
            {"Patient": "DUPS", "mortality_1y": 1, "cohort": "osic"},
            {"Patient": "BADLABEL", "mortality_1y": 2, "cohort": "osic"},
            {"Patient": "DUPLABEL", "mortality_1y": 0, "cohort": "osic"},
            {"Patient": "DUPLABEL", "mortality_1y": 1, "cohort": "osic"},
            {"Patient": "GHOST", "mortality_1y": 1, "cohort": "osic"},
        ],
    )


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestResult, list[str]]:
    root = tmp_path_factory.mktemp("zoo")
    build_zoo(root)
    lines: list[str] = []
    result = ingest(str(root / "src"), root / "labels.csv", root / "out", small_cfg(), progress=lines.append)
    return root, result, lines
