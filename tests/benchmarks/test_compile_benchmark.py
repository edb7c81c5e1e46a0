"""benchmarks/compile.py: the JSON line has the issue's keys (Kubernetes only: the Kubeflow compile is
exercised by tests/infra/test_compile.py and timed by the benchmark itself). Run as a child process:
ZenML's logging wraps the stdout it finds at import, which must not be a test's capture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_times_each_compile_and_decides_against_the_target(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compile.py"), "--repeats", "2",
                           "--skip-kubeflow"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["kubernetes_s"]) == 2 and result["kubeflow_s"] == []
    assert all(t > 0 for t in result["kubernetes_s"]) and result["target_s"] == 60.0
    assert result["met"] == (max(result["kubernetes_s"]) < 60.0)
    assert "[compile] kubernetes #2" in proc.stderr  # progress on stderr, the JSON line alone on stdout
