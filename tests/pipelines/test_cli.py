"""CLI contract: one-line errors and non-zero exit for user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main


def test_bad_config_key_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synth:\n  patientz: 3\n")
    rc = main(["synth", "--out", str(tmp_path / "o"), "--config", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: ") and "synth.patientz" in err[0]


def test_console_script_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("demo", "synth", "ingest", "train"):
        assert command in out


def test_demo_honours_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`demo --config` must reach the pipeline (it was once dropped for the bare preset)."""
    import pipelines.demo

    seen = {}

    def fake_run_demo(cfg, from_scratch=False, progress=print):  # noqa: ANN001, ANN202
        seen["cfg"] = cfg
        return {}

    monkeypatch.setattr(pipelines.demo, "run_demo", fake_run_demo)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("preset: cpu-small\ndiffae:\n  beta_schedule: cosine\n")
    assert main(["demo", "--config", str(cfg), "--workdir", str(tmp_path / "w")]) == 0
    assert seen["cfg"].diffae.beta_schedule == "cosine"
    assert seen["cfg"].workdir == str(tmp_path / "w")
