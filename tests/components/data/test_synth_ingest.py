"""A tiny synthetic cohort (components.data.synth) ingested end to end, masks included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicom_factory import small_cfg

from components.config import SynthConfig
from components.data import synth
from components.data.dataset import load_dataset
from components.data.ingest import ingest


@pytest.mark.parametrize("cohort", ["osic", "external"])
def test_synthetic_cohort_end_to_end(tmp_path: Path, cohort: synth.Cohort) -> None:
    cfg = SynthConfig(slices_per_patient=10, osic_matrix=64, external_matrix=80)
    root = tmp_path / "cohort"
    synth.write_cohort(root, cohort, 4, seed=1, cfg=cfg, progress=lambda _: None, workers=1)
    result = ingest(str(root), root / "labels.csv", tmp_path / "out", small_cfg(min_slices=8))
    ds = load_dataset(tmp_path / "out")
    assert result.n_ok == 4 == len(ds)
    assert ds.masks is not None and ds.masks.shape == ds.images.shape == (4, 4, 16, 16)
    assert ds.masks.dtype == np.float32 and np.isfinite(ds.masks).all()
    assert ds.masks.min() >= 0 and ds.masks.max() <= 1
    assert ds.distractor is not None and ds.distractor.shape == ds.images.shape
    assert ds.marker is not None and ds.marker.shape == ds.images.shape
    assert (ds.patients.hu_correction == 0).all()
    # disease lies inside the lung: little mask mass where the lung mask is empty
    inside = (ds.masks * ds.lung_masks).sum() / max(float(ds.masks.sum()), 1e-6)
    assert float(ds.masks.sum()) == 0 or inside > 0.6
    files = pd.read_csv(tmp_path / "out" / "files.csv", dtype=str)
    assert (files[files.path.str.startswith("masks/")].status == "used").all()
    # the truth matched by z is the slice the image came from (file n = mask slice n-1)
    for patient, sel in zip(ds.patients.patient, ds.patients.selected_files):
        ks = [int(f.split(".")[0]) - 1 for f in sel.split(";")]
        with np.load(root / "masks" / f"{patient}.npz") as npz:
            assert np.all(np.diff(npz["z"]) < 0)
            direct = npz["mask"][ks].reshape(4, -1).mean(axis=1)
        row = list(ds.patients.patient).index(patient)
        assert np.allclose(ds.masks[row].reshape(4, -1).mean(axis=1), direct, atol=1e-4)
    blobs = [p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()]
    for value in synth.FAKE_PHI.values():
        assert not any(str(value).encode() in b for b in blobs), value
