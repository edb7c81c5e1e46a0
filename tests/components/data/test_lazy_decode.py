"""Ingestion decodes few slices: header-level checks, sampled lung extent, decode counts."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from dicom_factory import chest_volume, small_cfg, write_series

import components.data.dicom_pixels as dicom_pixels
from components.data.dicom_header import HEAD_BYTES, read_file
from components.data.dicom_pixels import to_hu
from components.data.hu import check_hu
from components.data.patient import process_patient
from components.data.slices import lung_extent
from components.data.sources import open_source

N_SLICES = 90
MATRIX = 64


def _count_pixel_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record ``(file size, grid step)`` of every pixel decode (one entry per decode)."""
    calls: list[tuple[int, int]] = []
    original = dicom_pixels.DicomSlice.stored

    def counting(self: dicom_pixels.DicomSlice, step: int = 1) -> np.ndarray:
        calls.append((self.size, step))
        return original(self, step)

    monkeypatch.setattr(dicom_pixels.DicomSlice, "stored", counting)
    return calls


def _patient(src: Path, name: str) -> list[str]:
    return sorted(p.relative_to(src).as_posix() for p in (src / name).iterdir())


def test_truncated_slice_not_decoded_is_quarantined_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    paths = write_series(src / "P", chest_volume(N_SLICES, matrix=MATRIX, seed=1), phi=False)
    # slice 46 (file 47.dcm) lies between sampled slices (every 4th) and far from the
    # selected levels' neighbourhoods on a 90-slice chest; cut its pixel data short
    bad = paths[46]
    bad.write_bytes(bad.read_bytes()[:-300])
    calls = _count_pixel_reads(monkeypatch)
    out = process_patient(open_source(str(src)), "P", _patient(src, "P"), None, small_cfg())
    assert out.row["status"] == "ok", out.row["reason"]
    rec = {r.path: r for r in out.files}["P/47.dcm"]
    assert rec.status == "quarantined" and "truncated pixel data" in rec.reason
    assert out.row["n_slices"] == N_SLICES - 1
    assert len(calls) < N_SLICES // 2
    assert bad.stat().st_size not in {size for size, _ in calls}  # never decoded


def test_header_length_shorter_than_matrix_is_truncated(tmp_path: Path) -> None:
    # the file is long enough, but its PixelData element declares too few bytes
    (path,) = write_series(tmp_path / "P", chest_volume(1, matrix=16), phi=False)
    data = bytearray(path.read_bytes())
    pos = bytes(data).rindex(b"\xe0\x7f\x10\x00")
    assert bytes(data[pos + 4 : pos + 6]) == b"OW"
    struct.pack_into("<I", data, pos + 8, 16 * 16 * 2 - 64)
    rec, sl = read_file("P/1.dcm", "P", bytes(data[:200]), len(data), lambda: bytes(data))
    assert sl is not None and sl.native and rec.status == "used"
    with pytest.raises(ValueError, match="truncated pixel data"):
        sl.check()  # header only: nothing read beyond the first 200 bytes


def test_sampled_lung_extent_matches_full_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = small_cfg()
    src = tmp_path / "src"
    for n, seed in ((N_SLICES, 2), (37, 3), (150, 4)):
        name = f"C{n}"
        write_series(src / name, chest_volume(n, matrix=MATRIX, seed=seed), phi=False)
        calls = _count_pixel_reads(monkeypatch)
        out = process_patient(open_source(str(src)), name, _patient(src, name), None, cfg)
        monkeypatch.undo()
        assert out.row["status"] == "ok", out.row["reason"]
        # reference: decode every slice, as a full-volume reader would
        files = sorted((src / name).iterdir(), key=lambda p: int(p.stem))
        hu, pad = zip(*(to_hu(pydicom.dcmread(p).pixel_array, pydicom.dcmread(p)) for p in files))
        chk = check_hu(np.stack(hu), np.stack(pad), cfg.air_hu_range, cfg.lung_hu_range)
        assert chk.ok and chk.lung is not None
        assert (out.row["lung_first"], out.row["lung_last"]) == lung_extent(chk.lung, cfg.lung_area_fraction), n
        # fewer decodes than files (the 4 selected slices at full resolution included)
        assert len(calls) < n if n > 40 else len(calls) <= n + 4, (n, len(calls))


def test_decoded_slices_fewer_than_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    write_series(src / "P", chest_volume(200, matrix=160, seed=5), phi=False)  # grid: every 2nd pixel
    calls = _count_pixel_reads(monkeypatch)
    out = process_patient(open_source(str(src)), "P", _patient(src, "P"), None, small_cfg())
    assert out.row["status"] == "ok" and all(r.status == "used" for r in out.files)
    assert len(calls) <= 60  # ~24 sampled + refinement + 4 selected, of 200 files
    steps = [step for _, step in calls]
    assert steps.count(1) == 4 and steps.count(2) == len(steps) - 4  # full resolution: the 4 selected only


def test_scanned_hu_equals_pydicom(tmp_path: Path) -> None:
    vol = chest_volume(2, matrix=24, seed=6)
    cases: list[dict[str, Any]] = [
        dict(intercept=-1024.0),
        dict(intercept=0.0, circular_fov=True, padding_value=-2000),
        dict(intercept=-1024.0, signed=False, circular_fov=True, padding_value=0),
    ]
    for i, kw in enumerate(cases):
        for path in write_series(tmp_path / f"P{i}", vol, phi=False, **kw):
            data = path.read_bytes()
            _, sl = read_file("x", "P", data)
            assert sl is not None and sl.values is not None
            ds = pydicom.dcmread(path)
            want_hu, want_pad = to_hu(ds.pixel_array, ds)
            got_hu, got_pad = sl.hu()
            assert got_hu.dtype == np.float32 and np.array_equal(got_hu, want_hu) and np.array_equal(got_pad, want_pad)


_FORKED_INGEST = """
import sys, threading
import components.data.ingest as ingest_mod
from dicom_factory import small_cfg
assert threading.active_count() == 1, threading.enumerate()
assert ingest_mod._context().get_start_method() == "fork"
ingest_mod.POOL_MIN_FILES = 0
result = ingest_mod.ingest(sys.argv[1], sys.argv[2], sys.argv[3], small_cfg(workers=2))
ingest_mod.shutdown_pool()
print(result.dataset_hash)
"""


def test_pool_start_method_follows_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-method rule on both branches, and the same dataset from a forkserver pool
    (another thread runs here) and from a fork pool (a fresh process with one thread: a pytest
    process may hold threads of earlier tests, and forking with threads alive is unsafe)."""
    import os
    import subprocess
    import sys
    import threading

    import pandas as pd
    from dicom_factory import write_labels

    import components.data.ingest as ingest_mod

    with monkeypatch.context() as m:  # the rule itself, whatever else runs in this process
        m.setattr(ingest_mod.threading, "active_count", lambda: 1)
        assert ingest_mod._context().get_start_method() == "fork"
        m.setattr(ingest_mod.threading, "active_count", lambda: 2)
        assert ingest_mod._context().get_start_method() == "forkserver"

    src = tmp_path / "src"
    for i in range(3):
        write_series(src / "train" / f"S{i}", chest_volume(12, seed=i), phi=False)
    labels = write_labels(tmp_path / "labels.csv", {f"S{i}": i % 2 for i in range(3)})
    monkeypatch.setattr(ingest_mod, "POOL_MIN_FILES", 0)
    ingest_mod.shutdown_pool()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:  # another thread runs: never fork, use the forkserver
        assert ingest_mod._context().get_start_method() == "forkserver"
        served = ingest_mod.ingest(str(src), labels, tmp_path / "a", small_cfg(workers=2))
    finally:
        stop.set()
        other.join()
        ingest_mod.shutdown_pool()

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(Path(__file__).parent)])}
    forked = subprocess.run([sys.executable, "-c", _FORKED_INGEST, str(src), str(labels), str(tmp_path / "b")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert forked.returncode == 0, forked.stderr[-2000:]
    assert forked.stdout.strip().splitlines()[-1] == served.dataset_hash and served.n_ok == 3
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "files.csv"), pd.read_csv(tmp_path / "b" / "files.csv"))


def test_header_prefix_reads_equal_pydicom(tmp_path: Path) -> None:
    """Files read as in ingestion (a header prefix, pixels fetched by range) give
    pydicom's HU, also when the header must be parsed by pydicom (implicit VR padding)."""
    from pydicom.uid import ImplicitVRLittleEndian

    vol = chest_volume(2, matrix=128, seed=7)
    explicit = write_series(tmp_path / "E", vol, phi=False, intercept=0.0, circular_fov=True, padding_value=-2000)
    implicit = []
    for path in write_series(tmp_path / "I", vol, phi=False, intercept=0.0, circular_fov=True, padding_value=-2000):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(path, implicit_vr=True, little_endian=True)
        implicit.append(path)
    for path in explicit + implicit:
        data = path.read_bytes()
        assert len(data) > HEAD_BYTES
        ranges: list[tuple[int, int]] = []

        def fetch_range(
            offset: int, n: int, data: bytes = data, ranges: list[tuple[int, int]] = ranges
        ) -> memoryview:
            ranges.append((offset, n))
            return memoryview(data)[offset : offset + n]

        def fetch(data: bytes = data) -> bytes:
            return data

        _, sl = read_file("x", "P", data[: HEAD_BYTES], len(data), fetch, fetch_range)
        assert sl is not None and sl.native and sl.data is not None and len(sl.data) < len(data)
        ds = pydicom.dcmread(path)
        want_hu, want_pad = to_hu(ds.pixel_array, ds)
        got_hu, got_pad = sl.hu()
        assert np.array_equal(got_hu, want_hu) and np.array_equal(got_pad, want_pad), path
        assert ranges == [(sl.offset, 128 * 128 * 2)]  # the pixel bytes only
        assert want_pad.any()


def test_pydicom_reader_reads_what_the_hand_parser_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hand parser's ablation (``hand_parser: false``): pydicom parses the headers and
    decodes the pixels, with the same records, quarantine reasons, decode count and images."""
    src = tmp_path / "src"
    paths = write_series(src / "P", chest_volume(N_SLICES, matrix=MATRIX, seed=8), phi=False,
                         circular_fov=True, padding_value=-2000, intercept=0.0)
    paths[46].write_bytes(paths[46].read_bytes()[:-300])  # between sampled slices, as above
    outs = {}
    for hand_parser in (True, False):
        calls = _count_pixel_reads(monkeypatch)
        out = process_patient(open_source(str(src)), "P", _patient(src, "P"), None, small_cfg(hand_parser=hand_parser))
        monkeypatch.undo()
        assert out.row["status"] == "ok", out.row["reason"]
        assert len(calls) < N_SLICES // 2, (hand_parser, len(calls))
        assert paths[46].stat().st_size not in {size for size, _ in calls}
        outs[hand_parser] = out
    hand, off = outs[True], outs[False]
    assert [r.table_row() for r in off.files] == [r.table_row() for r in hand.files]
    assert "truncated pixel data" in {r.path: r.reason for r in off.files}["P/47.dcm"]
    assert off.row == hand.row
    assert off.images is not None and hand.images is not None and np.array_equal(off.images, hand.images)


def test_pydicom_reader_reads_header_prefixes(tmp_path: Path) -> None:
    """Without the hand parser, a prefix that ends inside the header is completed with
    ``fetch``; pixels stay undecoded until asked for and then equal pydicom's HU."""
    (path,) = write_series(tmp_path / "P", chest_volume(1, matrix=32, seed=9), phi=False, intercept=-1024.0)
    data = path.read_bytes()
    fetched: list[int] = []

    def fetch() -> bytes:
        fetched.append(1)
        return data

    for head in (200, HEAD_BYTES):
        fetched.clear()
        rec, sl = read_file("P/1.dcm", "P", data[:head], len(data), fetch, hand_parser=False)
        ref, _ = read_file("P/1.dcm", "P", data)
        assert sl is not None and sl.deferred and not sl.native and rec.table_row() == ref.table_row()
        assert len(fetched) == (1 if head < 1000 else 0)
        want_hu, want_pad = to_hu(pydicom.dcmread(path).pixel_array, pydicom.dcmread(path))
        got_hu, got_pad = sl.hu()
        assert np.array_equal(got_hu, want_hu) and np.array_equal(got_pad, want_pad)
