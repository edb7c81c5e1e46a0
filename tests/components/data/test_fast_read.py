"""Fast paths of the reader: header scan, strided raw pixels, sampled lung extent, pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_factory import chest_volume, small_cfg, write_series
from pydicom.pixels import apply_modality_lut

import components.data.ingest as ingest_mod
from components.data.dicom_header import FileRecord, _fill_record, read_file
from components.data.dicom_pixels import native_pixels, to_hu
from components.data.slices import lung_extent, sample_slices, sampled_lung_extent


@pytest.mark.parametrize(("signed", "bits", "slope", "intercept"), [
    (True, 16, 1.0, 0.0), (True, 12, 1.0, -1024.0), (False, 12, 1.0, -1024.0), (False, 16, 2.0, -2048.0),
])
@pytest.mark.parametrize("step", [1, 3])
def test_strided_raw_read_equals_pixel_array(tmp_path: Path, signed: bool, bits: int, slope: float, intercept: float, step: int) -> None:
    (path,) = write_series(tmp_path / "P", chest_volume(1, matrix=20), signed=signed, intercept=-1024 if not signed else 0)
    ds = pydicom.dcmread(path)
    raw = np.frombuffer(ds.PixelData, dtype="<i2" if signed else "<u2").copy()
    raw[:3] = np.array([0x7FF, -2048 if signed else 0xF123, 0x0FFF]).astype(raw.dtype)
    ds.PixelData = raw.tobytes()
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.save_as(path)
    data = path.read_bytes()
    rec, sl = read_file("P/1.dcm", "P", data)
    assert sl is not None and sl.native and rec.rescale_slope == slope
    ref = pydicom.dcmread(path)
    full = ref.pixel_array
    got = native_pixels(data, sl.offset, 20, 20, signed, bits, step)
    assert got.dtype == full.dtype and np.array_equal(got, full[::step, ::step])
    hu, pad = sl.hu(step)
    ref_hu = np.asarray(apply_modality_lut(full, ref), np.float32)
    want, want_pad = to_hu(full, ref)
    assert np.array_equal(hu, want[::step, ::step]) and np.array_equal(pad, want_pad[::step, ::step])
    assert np.array_equal(hu[~pad], ref_hu[::step, ::step][~pad])


def test_header_scan_matches_pydicom(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "P", chest_volume(3, matrix=16), circular_fov=True, padding_value=-2000, intercept=0)
    paths += write_series(tmp_path / "Q", chest_volume(2, matrix=16), geometry=False, signed=False)
    for path in paths:
        data = path.read_bytes()
        rec, sl = read_file("x", "P", data[:300], len(data), path.read_bytes)  # prefix too short
        ref = FileRecord("x", "P")
        _fill_record(ref, pydicom.dcmread(path))
        assert sl is not None and sl.native
        assert rec.table_row() == ref.table_row() and rec.ipp == ref.ipp and rec.iop == ref.iop
        assert sl.ds.PixelRepresentation == ref_pr(path)


def ref_pr(path: Path) -> int:
    return int(pydicom.dcmread(path).PixelRepresentation)


def test_truncated_file_found_from_its_size(tmp_path: Path) -> None:
    (path,) = write_series(tmp_path / "P", chest_volume(1, matrix=16))
    data = path.read_bytes()[:-100]
    _, sl = read_file("P/1.dcm", "P", data[:200], len(data), lambda: data)
    assert sl is not None
    with pytest.raises(ValueError, match="truncated pixel data"):
        sl.check()


def test_sampled_extent_equals_exact() -> None:
    for n in (5, 31, 60, 200, 1000):
        z = np.linspace(-1, 1, n)
        area = np.clip(1 - (z / 0.8) ** 2, 0, None) * 1000
        calls: list[int] = []

        def of(ks: list[int], area: np.ndarray = area, calls: list[int] = calls) -> np.ndarray:
            calls.extend(ks)
            return area[ks]

        sample = sample_slices(n)
        got = sampled_lung_extent(of, n, sample, area[sample], 0.1)
        exact_mask = np.zeros((n, 1000), bool)
        for i, a in enumerate(area.astype(int)):
            exact_mask[i, :a] = True
        assert got == lung_extent(exact_mask.reshape(n, 10, 100), 0.1), n
        assert len(sample) + len(calls) <= max(40, n // 10)


def test_pool_path_equals_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dicom_factory import write_labels

    src = tmp_path / "src"
    for i in range(3):
        write_series(src / "train" / f"S{i}", chest_volume(40 + 5 * i, seed=i), circular_fov=i == 1)
    labels = write_labels(tmp_path / "labels.csv", {f"S{i}": i % 2 for i in range(3)})
    monkeypatch.setattr(ingest_mod, "POOL_MIN_FILES", 0)
    pooled = ingest_mod.ingest(str(src), labels, tmp_path / "a", small_cfg(workers=2))
    monkeypatch.setattr(ingest_mod, "POOL_MIN_FILES", 10**9)
    inproc = ingest_mod.ingest(str(src), labels, tmp_path / "b", small_cfg(workers=2))
    assert pooled.dataset_hash == inproc.dataset_hash and pooled.n_ok == 3
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "patients.csv"), pd.read_csv(tmp_path / "b" / "patients.csv"))
    ingest_mod.shutdown_pool()
