"""The drift-check step's own part (the check itself: tests/components/drift/test_check.py): the
registry's champion, the alert reaching the CLI, the DiffAE step's agent_only action."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import steps.drift.drift_check as dc
from components.artifacts import DatasetRef, DiffAERef
from components.errors import UserError


def test_the_champion_comes_from_the_registry_and_loads_only_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    import registry.loaders as loaders

    mv = SimpleNamespace(version=3, tags={"dataset_hash": "sha256:ref", "workdir": "/runs/champ"})
    loads: list[tuple[str, str]] = []

    def load(name: str, spec: str) -> tuple[str, SimpleNamespace]:
        loads.append((name, spec))
        return "weights", mv

    monkeypatch.setattr(loaders, "registered_version", lambda name, spec: mv)
    monkeypatch.setattr(loaders, "load_registered_diffae", load)
    champ = loaders.champion_diffae("diffexplainer-diffae")
    assert champ is not None and loads == []
    assert (champ.version, champ.dataset_hash, champ.workdir) == ("3", "sha256:ref", "/runs/champ")
    assert champ.load() == "weights" and loads == [("diffexplainer-diffae", "3")]

    def no_champion(name: str, spec: str) -> None:
        raise UserError("none")

    monkeypatch.setattr(loaders, "registered_version", no_champion)
    assert loaders.champion_diffae("diffexplainer-diffae") is None
    assert issubclass(dc.DriftAlert, UserError)


def test_a_drift_alert_reaches_the_cli_as_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    """ZenML reports the failed step as RuntimeError; `train` turns a fresh alert record into its reason."""
    import pipelines.training as training
    from pipelines.cli import main

    def fake_run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        (tmp_path / "drift").mkdir()
        (tmp_path / "drift" / "drift.json").write_text(json.dumps({"action": "alert", "message": "drift alert: p=0.001"}))
        raise RuntimeError("Pipeline run has failed due to failure in step(s): drift_check")

    monkeypatch.setattr(training, "_run_pipeline", fake_run)
    monkeypatch.setattr(training, "with_k8s_settings", lambda pipe, path=None: pipe)
    (tmp_path / "l.csv").write_text("Patient,mortality_1y\nP1,1\n")  # inputs that pass train's pre-flight checks
    argv = ["train", "--source", str(tmp_path), "--labels", str(tmp_path / "l.csv"), "--external-source",
            str(tmp_path), "--external-labels", str(tmp_path / "l.csv"), "--workdir", str(tmp_path)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: drift alert: p=0.001"]
    assert dc.drift_alert_since(tmp_path, since=(tmp_path / "drift" / "drift.json").stat().st_mtime + 5) is None

    def other_failure(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("some step failed")

    (tmp_path / "drift" / "drift.json").write_text(json.dumps({"action": "retrain"}))
    monkeypatch.setattr(training, "_run_pipeline", other_failure)
    with pytest.raises(RuntimeError, match="some step failed"):
        main(argv)


def test_agent_only_reuses_the_champion_diffae_without_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import steps.diffae.train_diffae as td

    asked: dict[str, object] = {}

    def fake_fetch(name: str, spec: str, out: Path) -> DiffAERef:
        asked.update(name=name, spec=spec, out=out)
        return DiffAERef(path=str(out), run_id="r", dataset_hash="sha256:old", registered_version="4", sha256="w")

    def no_training(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("agent_only must not train")

    monkeypatch.setattr(td, "fetch_registered_diffae", fake_fetch)
    monkeypatch.setattr(td, "train_diffae", no_training)
    unused = DatasetRef(path="unused", cohort="osic", hash="sha256:new", patients_ok=0, patients_quarantined=0)
    ref = td.train_diffae_step.entrypoint(dataset=unused, diffae_config={}, workdir=str(tmp_path),
                                          experiment="e", holdout_fold=2, drift_action="agent_only",
                                          champion_model="diffexplainer-diffae")
    assert asked["name"] == "diffexplainer-diffae" and asked["spec"] == "champion"
    assert ref.registered_version == "4" and ref.dataset_hash == "sha256:old" and ref.holdout_fold == 2
