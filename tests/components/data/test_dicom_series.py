"""Series reader: sorting, fallbacks, duplicates, series choice, decoding, padding."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_factory import chest_volume, write_series
from pydicom.uid import JPEG2000Lossless, RLELossless

from components.data.dicom_header import read_file, uid_digest
from components.data.dicom_pixels import pixel_values
from components.data.dicom_series import choose_series, sort_slices
from components.data.dicom_volume import load_volume


def _read_all(paths: list[Path], root: Path):
    pairs = [read_file(p.relative_to(root).as_posix(), "P", p.read_bytes()) for p in paths]
    return [r for r, _ in pairs], [d for _, d in pairs]


def _shuffle_names(folder: Path, order: list[int]) -> list[Path]:
    """Rename k.dcm -> order[k-1].dcm (file numbers no longer follow anatomy)."""
    tmp = [p.rename(p.with_suffix(".tmp")) for p in sorted(folder.glob("*.dcm"), key=lambda p: int(p.stem))]
    return [t.rename(folder / f"{n}.dcm") for t, n in zip(tmp, order)]


def test_sort_by_position_not_file_or_instance_number(tmp_path: Path) -> None:
    vol = chest_volume(8)
    write_series(tmp_path / "P", vol, instance_numbers=[5, 3, 8, 1, 2, 7, 6, 4])
    _shuffle_names(tmp_path / "P", [4, 8, 1, 6, 2, 7, 3, 5])
    paths = sorted((tmp_path / "P").glob("*.dcm"))
    recs, dss = _read_all(paths, tmp_path)
    order = sort_slices(recs, list(range(len(recs))))
    assert order.method == "ImagePositionPatient"
    assert np.allclose(order.positions_mm, 100.0 - 2.5 * np.arange(8))  # superior first
    assert order.spacing_mm == pytest.approx(2.5) and order.max_gap_mm == pytest.approx(2.5)
    v = load_volume(recs, dss, order)
    assert v is not None and v.hu.dtype == np.float32 and v.step == 1
    assert np.abs(v.hu - vol).max() <= 0.5
    full, pad = v.full([0, 7])
    assert np.array_equal(full, v.hu[[0, 7]]) and not pad.any()


def test_fallback_to_instance_number_then_file_number(tmp_path: Path) -> None:
    write_series(tmp_path / "P", chest_volume(6), geometry=False, instance_numbers=[6, 5, 4, 3, 2, 1])
    paths = sorted((tmp_path / "P").glob("*.dcm"), key=lambda p: int(p.stem))
    recs, _ = _read_all(paths, tmp_path)
    order = sort_slices(recs, list(range(6)))
    assert order.method == "InstanceNumber" and order.indices == [5, 4, 3, 2, 1, 0]
    for r in recs:
        r.instance_number = float("nan")
    order = sort_slices(recs, list(range(6)))
    assert order.method == "file number" and order.indices == [0, 1, 2, 3, 4, 5]
    assert order.spacing_mm == pytest.approx(2.5)  # SliceThickness when positions are missing


def test_duplicate_positions_and_instances_dropped(tmp_path: Path) -> None:
    vol = chest_volume(4)
    uid = "1.2.3.4"
    paths = write_series(tmp_path / "P", vol, series_uid=uid)
    paths += write_series(tmp_path / "P", vol, series_uid=uid, first_number=5)
    (tmp_path / "P" / "9.dcm").write_bytes(paths[0].read_bytes())  # same SOP instance again
    paths.append(tmp_path / "P" / "9.dcm")
    recs, _ = _read_all(paths, tmp_path)
    order = sort_slices(recs, list(range(len(recs))))
    assert [recs[i].path for i in order.indices] == [f"P/{k}.dcm" for k in (1, 2, 3, 4)]
    status = {r.path: (r.status, r.reason) for r in recs}
    assert status["P/9.dcm"][1].startswith("duplicate instance")
    assert status["P/5.dcm"][1].startswith("duplicate slice position 100.00 mm (kept P/1.dcm)")


def test_choose_series_most_slices(tmp_path: Path) -> None:
    a = write_series(tmp_path / "P", chest_volume(3), series_uid="1.1")
    b = write_series(tmp_path / "P", chest_volume(5), series_uid="1.2", first_number=10)
    recs, _ = _read_all(a + b, tmp_path)
    choice = choose_series(recs)
    assert choice is not None and choice.series == uid_digest("1.2") and choice.indices == [3, 4, 5, 6, 7]
    assert choice.reason == f"most slices (5; other series {uid_digest('1.1')}:3)"
    assert all(r.status == "skipped" for r in recs[:3])
    assert choose_series([]) is None


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, RLELossless])
def test_compressed_matches_uncompressed(tmp_path: Path, syntax: str) -> None:
    vol = chest_volume(2, matrix=32)
    plain = write_series(tmp_path / "A", vol)
    packed = write_series(tmp_path / "B", vol, transfer_syntax=syntax)
    for p, q in zip(plain, packed):
        ds = pydicom.dcmread(q)
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(pixel_values(pydicom.dcmread(p)), pixel_values(ds))


@pytest.mark.parametrize(("signed", "bits"), [(True, 16), (True, 12), (False, 12), (False, 16)])
def test_fast_path_equals_pydicom(tmp_path: Path, signed: bool, bits: int) -> None:
    (path,) = write_series(tmp_path / "P", chest_volume(1, matrix=16), signed=signed, intercept=-1024 if not signed else 0)
    ds = pydicom.dcmread(path)
    raw = np.frombuffer(ds.PixelData, dtype="<i2" if signed else "<u2").copy()
    raw[:3] = np.array([0x7FF, -2048 if signed else 0xF123, 0x0FFF]).astype(raw.dtype)
    ds.PixelData = raw.tobytes()
    ds.BitsStored, ds.HighBit = bits, bits - 1
    ref = copy.deepcopy(ds).pixel_array
    got = pixel_values(ds)
    assert got.dtype == ref.dtype and np.array_equal(got, ref)


def test_strided_grid_for_large_matrices(tmp_path: Path) -> None:
    vol = chest_volume(3, matrix=300)
    paths = write_series(tmp_path / "P", vol)
    recs, dss = _read_all(paths, tmp_path)
    v = load_volume(recs, dss, sort_slices(recs, [0, 1, 2]))
    assert v is not None and v.step == 3 and v.hu.shape == (3, 100, 100) and v.shape == (300, 300)
    full, _ = v.full([1])
    assert full.shape == (1, 300, 300) and np.array_equal(full[0, ::3, ::3], v.hu[1])


def test_padding_becomes_air(tmp_path: Path) -> None:
    vol = chest_volume(2, matrix=32)
    cases: list[dict[str, Any]] = [{"padding_value": -2000, "intercept": 0}, {"intercept": -1024}]
    for kw in cases:
        paths = write_series(tmp_path / str(len(kw)), vol, circular_fov=True, **kw)
        recs, dss = _read_all(paths, tmp_path)
        v = load_volume(recs, dss, sort_slices(recs, [0, 1]))
        assert v is not None and v.pad[:, 0, 0].all() and not v.pad[:, 16, 16].any()
        assert (v.hu[v.pad] == -1000).all() and v.hu.min() >= -1100


def test_read_file_rejects(tmp_path: Path) -> None:
    (mr,) = write_series(tmp_path / "P", chest_volume(1, matrix=16), modality="MR")
    rec, ds = read_file("P/1.dcm", "P", mr.read_bytes())
    assert ds is None and rec.status == "quarantined" and rec.reason == "modality MR, not CT"
    rec, ds = read_file("P/x", "P", b"\x00" * 300)
    assert ds is None and rec.reason == "not a DICOM file"
    (ct,) = write_series(tmp_path / "Q", chest_volume(1, matrix=16))
    rec, ds = read_file("Q/1.dcm", "Q", ct.read_bytes()[:-100])
    assert ds is not None
    order = sort_slices([rec], [0])
    assert load_volume([rec], [ds], order) is None
    assert rec.status == "quarantined" and rec.reason.startswith("pixel data unreadable")
