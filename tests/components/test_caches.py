"""The workdir caches: reused exactly when the stored key equals the wanted one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from components.caches import (
    Latents,
    cached_latents,
    cached_reconstructions,
    reconstructions_key,
    reusable_inversions,
    stored_inversions,
)
from components.config import DiffAEConfig
from components.models.diffae import build_diffae
from components.training.latents import AUGMENTATIONS


def _model(seed: int = 0, fp_iters: int = 0):
    torch.manual_seed(seed)
    cfg = DiffAEConfig(image_size=8, base_channels=4, channel_mults=[1], attention_resolutions=[],
                       encoder_channels=4, z_dim=8, inversion_fixed_point_iters=fp_iters)
    return build_diffae(cfg).eval()


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 4, 8, 8)).astype(np.float32)


def test_latents_are_encoded_once_per_key(tmp_path: Path) -> None:
    model, train, ext = _model(), _images(3, 0), _images(2, 1)
    out = tmp_path / "latents"
    first = cached_latents(model, train, ext, "h-train", "h-ext", out)
    assert first.reused is False and first.load("train").shape == (3, 32) and first.load("external").shape == (2, 32)
    assert list(first.train_augmented) == list(AUGMENTATIONS) and first.load("flip").shape == (3, 32)
    again = cached_latents(model, train, ext, "h-train", "h-ext", out)
    assert again.reused is True and again == replace(first, reused=True)
    # the typed artifact survives ZenML's dataclass materializer (JSON)
    from zenml.materializers.dataclass_materializer import DataclassMaterializer

    assert DataclassMaterializer.can_save_type(Latents)
    (tmp_path / "artifact").mkdir()
    materializer = DataclassMaterializer(uri=str(tmp_path / "artifact"))
    materializer.save(first)
    assert materializer.load(Latents) == first
    for changed in (dict(model=_model(seed=1)), dict(external_hash="other")):  # new weights / new cohort
        args = {"model": model, "train_images": train, "external_images": ext, "dataset_hash": "h-train",
                "external_hash": "h-ext", "out": out, **changed}
        assert cached_latents(**args).reused is False
        assert json.loads((out / "meta.json").read_text())["diffae_sha256"] == cached_latents(**args).diffae_sha256
    Path(first.train_augmented["flip"]).unlink()  # a missing file is never "reused"
    assert cached_latents(model, train, ext, "h-train", "h-ext", out).reused is False


def test_reconstructions_cache_and_what_the_counterfactual_step_may_reuse(tmp_path: Path) -> None:
    model, ext = _model(), _images(2, 2)
    arrays, record = cached_reconstructions(model, ext, "h-ext", 2, tmp_path)
    assert record["reused"] is False and record["path"] == str(tmp_path / "reconstructions" / "external.npz")
    assert arrays["recon"].shape == ext.shape and arrays["q"].shape == (2, 32)
    said: list[str] = []
    again, record2 = cached_reconstructions(model, ext, "h-ext", 2, tmp_path, say=said.append)
    assert record2 == {**record, "reused": True} and len(said) == 1
    np.testing.assert_array_equal(again["x_T"], arrays["x_T"])
    assert cached_reconstructions(model, ext, "h-ext", 3, tmp_path)[1]["reused"] is False  # other DDIM steps
    assert cached_reconstructions(model, ext, "h-ext", 3, None)[1] == {"path": None, "reused": False,
                                                                       **reconstructions_key(model, "h-ext", 3)}

    _, record = cached_reconstructions(model, ext, "h-ext", 2, tmp_path)
    reused = reusable_inversions(record, model, "h-ext", 2)
    assert reused is not None and np.array_equal(reused[0], arrays["recon"])
    assert reusable_inversions(record, model, "h-ext", 3) is None  # the evaluation decodes with other steps
    assert reusable_inversions(record, model, "h-ext", 2, depth=0.5) is None  # partial depth: full-depth codes no use
    assert reusable_inversions(record, model, "h-ext", 2, depth=1.0) is not None
    assert reusable_inversions(record, model, "other", 2) is None
    assert reusable_inversions(record, _model(seed=1), "h-ext", 2) is None
    assert reusable_inversions(record, _model(fp_iters=1), "h-ext", 2) is None  # same weights, other inversion
    assert reusable_inversions(None, model, "h-ext", 2) is None
    assert reusable_inversions({**record, "path": None}, model, "h-ext", 2) is None
    # what the benchmarks read from a finished workdir: the same key, nothing recomputed
    stored = stored_inversions(tmp_path, model, "h-ext", 2)
    assert stored is not None and np.array_equal(stored[1], arrays["x_T"])
    assert stored_inversions(tmp_path, model, "h-ext", 3) is None and stored_inversions(tmp_path, model, "x", 2) is None
    assert stored_inversions(tmp_path, _model(fp_iters=1), "h-ext", 2) is None
    assert stored_inversions(tmp_path / "none", model, "h-ext", 2) is None
