"""swap-classifier refuses a bad classifier or a missing workdir before any pipeline step runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.config import load_config
from components.errors import UserError
from pipelines.cli import main
from pipelines.swap_classifier import preflight_classifier, resolve_workdir


def _workdir(tmp_path: Path) -> Path:
    w = tmp_path / "run"
    (w / "datasets" / "osic").mkdir(parents=True)
    (w / "datasets" / "external").mkdir(parents=True)
    np.save(w / "datasets" / "osic" / "images.npy", np.zeros((2, 4, 16, 16), np.float32))
    return w


class _Three(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))[:, :3]


def test_junk_and_three_class_classifiers_are_refused_in_one_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    w = _workdir(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(UserError):
        preflight_classifier(str(junk), w)
    three = tmp_path / "three.pt"
    torch.jit.script(_Three()).save(str(three))
    with pytest.raises(UserError, match="3 output classes"):
        preflight_classifier(str(three), w)
    capsys.readouterr()
    for clf in (junk, three):
        rc = main(["swap-classifier", "--classifier", str(clf), "--out", str(tmp_path / "o"), "--workdir", str(w)])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "o").exists(), "nothing may run (or be written) before the classifier is checked"


def test_missing_workdir_is_a_clear_error(tmp_path: Path) -> None:
    cfg = load_config(None, "cpu-small", {"workdir": str(tmp_path / "nowhere")})
    with pytest.raises(UserError, match="--workdir"):
        resolve_workdir(cfg, "champion", workdir_given=True)
    w = _workdir(tmp_path)
    cfg = load_config(None, "cpu-small", {"workdir": str(w)})
    assert resolve_workdir(cfg, "champion", workdir_given=False) == w


class _Unnamed(torch.nn.Module):
    """Feature-exposing; the head is not named on the module (as after torch.jit.trace_module)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_head_name_gives_feature_mode_and_a_wrong_one_is_one_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    w = _workdir(tmp_path)
    x = torch.rand(2, 4, 16, 16)
    clf = tmp_path / "traced.pt"
    torch.jit.trace_module(_Unnamed().eval(), {"forward": x, "features": x}).save(str(clf))
    assert preflight_classifier(str(clf), w).startswith("output mode")
    assert preflight_classifier(str(clf), w, head_name="fc") == "feature mode: head 'fc' (Linear 4->2)"
    capsys.readouterr()
    rc = main(["swap-classifier", "--classifier", str(clf), "--head-name", "head", "--out", str(tmp_path / "o"),
               "--workdir", str(w)])
    assert rc == 2 and "head 'head' not found on the classifier (its Linear layers: fc)" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()
    # explain refuses the name before it reads the patient or asks the registry
    rc = main(["explain", "--patient", str(tmp_path / "no_patient"), "--out", str(tmp_path / "e"),
               "--classifier", str(clf), "--head-name", "head"])
    assert rc == 2 and "head 'head' not found" in _one_error_line(capsys)
    rc = main(["explain", "--patient", str(tmp_path / "no_patient"), "--out", str(tmp_path / "e"), "--head-name", "fc"])
    assert rc == 2 and "--head-name" in _one_error_line(capsys)
    assert not (tmp_path / "e").exists()
