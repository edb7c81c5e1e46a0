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


@pytest.mark.parametrize(("tags", "printed"), [
    ({"blackbox_mode": "feature", "blackbox_head": "fc"}, "black box: features+head (head fc)"),
    ({"blackbox_mode": "output", "blackbox_head": ""}, "black box: logits only"),
    ({}, "black box: features+head (head head)"),  # an agent registered without the tags: the loaded black box's
])
def test_explain_prints_the_black_box_mode(tags: dict, printed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`explain` says how the agent reads the black box, as training / swap-classifier recorded it on the agent."""
    from types import SimpleNamespace

    import pipelines.explain
    from components.blackbox import mode_description

    loaded = SimpleNamespace(mode="feature", head_name="head")

    def fake_run_explain(cfg, patient_dir, out_dir, classifier=None, alias="champion", head_name=None):  # noqa: ANN001, ANN202
        mode, head = pipelines.explain.recorded_mode(tags, loaded)  # type: ignore[arg-type]
        return {"out": out_dir, "patient": "P1", "diffae_version": "1", "agent_version": "2", "blackbox_mode": mode,
                "blackbox_head": head, "blackbox": mode_description(mode, head)}

    monkeypatch.setattr(pipelines.explain, "run_explain", fake_run_explain)
    assert main(["explain", "--patient", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert printed in capsys.readouterr().out.splitlines()
