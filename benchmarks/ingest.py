"""Ingestion throughput: our ingest (with validation) vs a plain pydicom loop, same files.

Writes a synthetic cohort (dicom_factory chests, 512x512 int16, uncompressed, like most
OSIC series) to a temporary folder, then times, in this one run:

- ``plain``: ``pydicom.dcmread(path).pixel_array`` over every file, one process;
- ``ours``: :func:`components.data.ingest.ingest` with ``workers`` processes, including
  sorting, HU checks, slice selection, Great Expectations validation, Data Docs and writing.

Prints one JSON line: slices/s of both and their ratio (target >= 1.5 on 2 cores).
Usage: ``python benchmarks/ingest.py [--patients 24] [--slices 40] [--matrix 512] [--workers 2]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "components" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--slices", type=int, default=40)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    import pydicom
    from dicom_factory import chest_volume, small_cfg, write_labels, write_series

    from components.data.ingest import ingest

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp_path = Path(tmp)
        src = tmp_path / "src"
        vol = chest_volume(args.slices, matrix=args.matrix, seed=0)
        for i in range(args.patients):
            write_series(src / "train" / f"B{i:03d}", vol, phi=False)
        labels = write_labels(tmp_path / "labels.csv", {f"B{i:03d}": i % 2 for i in range(args.patients)})
        files = sorted(src.rglob("*.dcm"))

        t0 = time.perf_counter()
        for path in files:
            pydicom.dcmread(path).pixel_array
        plain_s = time.perf_counter() - t0

        cfg = small_cfg(workers=args.workers, image_size=32, min_slices=8)
        t0 = time.perf_counter()
        result = ingest(str(src), labels, tmp_path / "out", cfg)
        ours_s = time.perf_counter() - t0
        assert result.n_ok == args.patients

    n = len(files)
    print(json.dumps({
        "benchmark": "ingest",
        "files": n,
        "matrix": args.matrix,
        "workers": args.workers,
        "plain_pydicom_slices_per_s": round(n / plain_s, 1),
        "ours_slices_per_s": round(n / ours_s, 1),
        "ratio": round(plain_s / ours_s, 2),
        "plain_s": round(plain_s, 2),
        "ours_s": round(ours_s, 2),
    }))


if __name__ == "__main__":
    main()
