"""The training pipeline's drift check, without ZenML: champion lookup, reference latents, action."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import steps.drift.drift_check as dc
from components.artifacts import DatasetRef, DiffAERef
from components.blackbox import state_hash
from components.config import DiffAEConfig, DriftConfig
from components.errors import UserError
from components.models.diffae import build_diffae
from components.training.latents import encode_latents

SIZE = 8


def _dataset(root: Path, images: np.ndarray, digest: str, matrix: int = 128) -> DatasetRef:
    root.mkdir(parents=True)
    n = len(images)
    np.save(root / "images.npy", images.astype(np.float32))
    np.save(root / "lung_masks.npy", np.ones(images.shape, np.uint8))
    spacing = np.random.default_rng(n).normal(360.0 / matrix, 0.05, n)
    pd.DataFrame({"patient": [f"P{i}" for i in range(n)], "status": "ok", "reason": "", "label": 0,
                  "fold": 0, "cohort": "osic", "rows": matrix, "cols": matrix,
                  "pixel_spacing_mm": spacing}).to_csv(root / "patients.csv", index=False)
    (root / "dataset.json").write_text(json.dumps({"hash": digest, "counts": {"patients_ok": len(images)}}))
    return DatasetRef(path=str(root), cohort="osic", hash=digest, patients_ok=len(images), patients_quarantined=0,
                      validation_success=True)


@pytest.fixture()
def champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A registered-looking champion DiffAE trained on cohort 'sha256:ref' in tmp/champ, latents cached."""
    torch.manual_seed(0)
    model = build_diffae(DiffAEConfig(image_size=SIZE, base_channels=4, channel_mults=[1], attention_resolutions=[],
                                      z_dim=8, encoder_channels=4, device="cpu")).eval()
    rng = np.random.default_rng(0)
    ref_images = rng.uniform(-1, 0.2, size=(40, 4, SIZE, SIZE))
    cache = tmp_path / "champ" / "latents"
    cache.mkdir(parents=True)
    np.save(cache / "train.npy", encode_latents(model, ref_images))
    (cache / "meta.json").write_text(json.dumps({"dataset_hash": "sha256:ref", "external_hash": "sha256:ext",
                                                 "diffae_sha256": state_hash(model)}))
    mv = SimpleNamespace(version="3", tags={"dataset_hash": "sha256:ref", "workdir": str(tmp_path / "champ")})
    monkeypatch.setattr(dc, "registered_version", lambda name, spec: mv)
    monkeypatch.setattr(dc, "load_registered", lambda name, spec: (model, mv))
    return SimpleNamespace(model=model, images=ref_images, rng=rng, root=tmp_path)


def test_same_kind_cohort_is_not_drift_and_shifted_one_triggers_the_configured_action(champion) -> None:  # noqa: ANN001
    same = _dataset(champion.root / "same", champion.rng.uniform(-1, 0.2, size=(30, 4, SIZE, SIZE)), "sha256:same")
    shifted = _dataset(champion.root / "shift", champion.rng.uniform(-0.4, 0.8, size=(30, 4, SIZE, SIZE)),
                       "sha256:shift")
    work = champion.root / "run"
    cfg = DriftConfig(n_permutations=199, on_drift="agent_only")
    rec = dc.check_cohort_drift(same, cfg, "diffae", work)
    assert rec["status"] == "tested" and rec["drift"] is False and rec["action"] == "retrain"
    assert rec["reference_latents"] == str(champion.root / "champ" / "latents")
    assert rec["n_reference"] == 40 and rec["n_current"] == 30 and len(rec["per_slice"]) == 4
    assert rec["validation_success"] is True and rec["champion_version"] == "3"
    # the champion's training cohort folder is not on disk here, nor a kept table: the acquisition test says so
    assert rec["acquisition"]["status"] == "no_reference" and "sha256:ref" in rec["acquisition"]["reason"]
    kept = list((work / "drift" / "reference").glob("*.npy"))
    assert len(kept) == 1  # kept for later runs that overwrite the cache
    (champion.root / "champ" / "latents" / "train.npy").unlink()
    rec = dc.check_cohort_drift(shifted, cfg, "diffae", work)
    assert rec["status"] == "tested" and rec["drift"] is True and rec["p_value"] < 0.01
    assert rec["action"] == "agent_only" and rec["reference_latents"] == str(kept[0])
    alert = dc.check_cohort_drift(shifted, cfg.model_copy(update={"on_drift": "alert"}), "diffae", work)
    assert alert["action"] == "alert"
    assert issubclass(dc.DriftAlert, UserError)


def test_statuses_without_a_test(champion, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    cur = _dataset(champion.root / "cur", champion.images[:10], "sha256:ref")
    cfg = DriftConfig(n_permutations=99)
    assert dc.check_cohort_drift(cur, cfg, "diffae", champion.root / "w")["status"] == "unchanged"
    assert dc.check_cohort_drift(cur, DriftConfig(enabled=False), "diffae", champion.root / "w")["status"] == "disabled"
    other = dataclasses.replace(cur, hash="sha256:other")
    (champion.root / "champ" / "latents" / "meta.json").write_text("{}")
    rec = dc.check_cohort_drift(other, cfg, "diffae", champion.root / "w")
    assert rec["status"] == "no_reference" and rec["action"] == "retrain" and "sha256:ref" in rec["reason"]

    def no_champion(name: str, spec: str) -> None:
        raise UserError("none")

    monkeypatch.setattr(dc, "registered_version", no_champion)
    rec = dc.check_cohort_drift(other, cfg, "diffae", champion.root / "w")
    assert rec["status"] == "no_champion" and rec["action"] == "retrain" and rec["drift"] is False


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
    argv = ["train", "--source", str(tmp_path), "--labels", "l.csv", "--external-source", str(tmp_path),
            "--external-labels", "e.csv", "--workdir", str(tmp_path)]
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


def test_acquisition_reference_is_kept_by_the_run_that_ingested_it(champion) -> None:  # noqa: ANN001
    """The training run re-ingests into the same datasets/ folder before the drift check: the
    champion's cohort is found through the identifier-free table its own run kept."""
    work = champion.root / "run"
    cfg = DriftConfig(n_permutations=99)
    first = _dataset(champion.root / "first", champion.images, "sha256:ref")  # the champion's own cohort
    assert dc.check_cohort_drift(first, cfg, "diffae", work)["status"] == "unchanged"
    kept = list((work / "drift" / "reference").glob("acquisition-*.csv"))
    assert len(kept) == 1 and "P0" not in kept[0].read_text()  # no patient identifiers
    new_scanner = _dataset(champion.root / "scanner", champion.rng.uniform(-1, 0.2, size=(30, 4, SIZE, SIZE)),
                           "sha256:scanner", matrix=160)
    rec = dc.check_cohort_drift(new_scanner, cfg, "diffae", work)
    acq = rec["acquisition"]
    assert acq["status"] == "tested" and acq["drift"] is True and set(acq["changed"]) == {"rows", "cols",
                                                                                          "pixel_spacing_mm"}
    assert acq["reference"] == str(kept[0]) and rec["status"] == "tested"
    same = _dataset(champion.root / "same2", champion.rng.uniform(-1, 0.2, size=(30, 4, SIZE, SIZE)), "sha256:s2")
    assert dc.check_cohort_drift(same, cfg, "diffae", work)["acquisition"]["drift"] is False
