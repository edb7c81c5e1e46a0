"""benchmarks/ingest.py: one JSON line with the hand parser's ablation beside the plain-pydicom ratio
(both readers on the same files, same workers; the benchmark itself asserts equal dataset hashes)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_reports_the_hand_parser_ablation(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ingest.py"), "--patients", "4", "--slices", "12",
                           "--matrix", "64", "--workers", "1", "--repeat", "2"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = result["runs"]
    assert result["files"] == 48 and result["hand_parser_repeats"] == len(runs) == 2
    for run in runs:
        assert run["ours_pydicom_s"] > 0  # the ratio of unrounded times; the times are printed to 0.01 s
        assert run["hand_parser_speedup"] == pytest.approx(run["ours_pydicom_s"] / run["ours_s"], abs=0.01)
    assert result["hand_parser_speedup"] == round(statistics.median(r["hand_parser_speedup"] for r in runs), 3)
    assert result["hand_parser_off_slices_per_s"] == pytest.approx(48 / statistics.median(r["ours_pydicom_s"] for r in runs),
                                                                   abs=0.1)
