"""The training pipeline's drift check as plain functions: champion, reference latents, acquisition, action."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from components.artifacts import DatasetRef
from components.blackbox import state_hash
from components.config import DiffAEConfig, DriftConfig
from components.drift.check import ChampionDiffAE, check_cohort_drift
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
def champion(tmp_path: Path) -> SimpleNamespace:
    """A champion DiffAE (``.champ``) trained on cohort 'sha256:ref' in tmp/champ, latents cached."""
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
    champ = ChampionDiffAE(version="3", dataset_hash="sha256:ref", workdir=str(tmp_path / "champ"), load=lambda: model)
    return SimpleNamespace(model=model, images=ref_images, rng=rng, root=tmp_path, champ=champ)


def test_same_kind_cohort_is_not_drift_and_shifted_one_triggers_the_configured_action(champion) -> None:  # noqa: ANN001
    same = _dataset(champion.root / "same", champion.rng.uniform(-1, 0.2, size=(30, 4, SIZE, SIZE)), "sha256:same")
    shifted = _dataset(champion.root / "shift", champion.rng.uniform(-0.4, 0.8, size=(30, 4, SIZE, SIZE)),
                       "sha256:shift")
    work = champion.root / "run"
    cfg = DriftConfig(n_permutations=199, on_drift="agent_only")
    rec = check_cohort_drift(same, cfg, champion.champ, work)
    assert rec["status"] == "tested" and rec["drift"] is False and rec["action"] == "retrain"
    assert rec["reference_latents"] == str(champion.root / "champ" / "latents")
    assert rec["n_reference"] == 40 and rec["n_current"] == 30 and len(rec["per_slice"]) == 4
    assert rec["validation_success"] is True and rec["champion_version"] == "3"
    # the champion's training cohort folder is not on disk here, nor a kept table: the acquisition test says so
    assert rec["acquisition"]["status"] == "no_reference" and "sha256:ref" in rec["acquisition"]["reason"]
    kept = list((work / "drift" / "reference").glob("*.npy"))
    assert len(kept) == 1  # kept for later runs that overwrite the cache
    (champion.root / "champ" / "latents" / "train.npy").unlink()
    rec = check_cohort_drift(shifted, cfg, champion.champ, work)
    assert rec["status"] == "tested" and rec["drift"] is True and rec["p_value"] < 0.01
    assert rec["action"] == "agent_only" and rec["reference_latents"] == str(kept[0])
    alert = check_cohort_drift(shifted, cfg.model_copy(update={"on_drift": "alert"}), champion.champ, work)
    assert alert["action"] == "alert"


def test_statuses_without_a_test(champion) -> None:  # noqa: ANN001
    cur = _dataset(champion.root / "cur", champion.images[:10], "sha256:ref")
    cfg = DriftConfig(n_permutations=99)
    def never() -> None:
        raise AssertionError("an unchanged cohort needs no weights")

    unchanged = check_cohort_drift(cur, cfg, dataclasses.replace(champion.champ, load=never), champion.root / "w")
    assert unchanged["status"] == "unchanged" and unchanged["champion_version"] == "3"
    assert check_cohort_drift(cur, DriftConfig(enabled=False), champion.champ, champion.root / "w")["status"] == "disabled"
    other = dataclasses.replace(cur, hash="sha256:other")
    (champion.root / "champ" / "latents" / "meta.json").write_text("{}")
    rec = check_cohort_drift(other, cfg, champion.champ, champion.root / "w")
    assert rec["status"] == "no_reference" and rec["action"] == "retrain" and "sha256:ref" in rec["reason"]

    rec = check_cohort_drift(other, cfg, None, champion.root / "w")  # the registry has no champion
    assert rec["status"] == "no_champion" and rec["action"] == "retrain" and rec["drift"] is False


def test_acquisition_reference_is_kept_by_the_run_that_ingested_it(champion) -> None:  # noqa: ANN001
    """The training run re-ingests into the same datasets/ folder before the drift check: the
    champion's cohort is found through the identifier-free table its own run kept."""
    work = champion.root / "run"
    cfg = DriftConfig(n_permutations=99)
    first = _dataset(champion.root / "first", champion.images, "sha256:ref")  # the champion's own cohort
    assert check_cohort_drift(first, cfg, champion.champ, work)["status"] == "unchanged"
    kept = list((work / "drift" / "reference").glob("acquisition-*.csv"))
    assert len(kept) == 1 and "P0" not in kept[0].read_text()  # no patient identifiers
    new_scanner = _dataset(champion.root / "scanner", champion.rng.uniform(-1, 0.2, size=(30, 4, SIZE, SIZE)),
                           "sha256:scanner", matrix=160)
    rec = check_cohort_drift(new_scanner, cfg, champion.champ, work)
    acq = rec["acquisition"]
    assert acq["status"] == "tested" and acq["drift"] is True and set(acq["changed"]) == {"rows", "cols",
                                                                                          "pixel_spacing_mm"}
    assert acq["reference"] == str(kept[0]) and rec["status"] == "tested"
    same = _dataset(champion.root / "same2", champion.rng.uniform(-1, 0.2, size=(30, 4, SIZE, SIZE)), "sha256:s2")
    assert check_cohort_drift(same, cfg, champion.champ, work)["acquisition"]["drift"] is False
