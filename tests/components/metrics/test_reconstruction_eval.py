"""Reconstruction gate measurements: cohort reconstruction and its scoring, reusable parts."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch
from torch import nn

from components.config import DiffAEConfig
from components.counterfactual.decoding import encode_stacks, inversion_nfe
from components.counterfactual.protocols import DiffAELike
from components.metrics.reconstruction_eval import (
    evaluate_reconstruction,
    gate_semantic_cases,
    reconstruct_cohort,
    score_reconstruction,
    semantic_reconstruction,
)
from components.models.diffae import DiffAE, build_diffae


def _model(fp_iters: int = 1):
    torch.manual_seed(0)
    cfg = DiffAEConfig(image_size=8, base_channels=4, channel_mults=[1], attention_resolutions=[],
                       encoder_channels=4, z_dim=16, inversion_fixed_point_iters=fp_iters)
    return build_diffae(cfg).eval()


class _MeanClassifier(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-20 * m, 20 * m], dim=1)


def test_reconstruct_then_score_equals_one_call_and_feeds_the_sweep() -> None:
    model = _model()
    x = np.random.default_rng(0).uniform(-1, 1, (5, 4, 8, 8)).astype(np.float32)
    msgs: list[str] = []
    rec = reconstruct_cohort(model, x, steps=3, batch_size=2, progress=lambda f, m: msgs.append(m))
    assert rec["recon"].shape == x.shape and rec["x_T"].shape == x.shape and rec["q"].shape == (5, 64)
    assert rec["recon"].min() >= -1 and rec["recon"].max() <= 1 and len(msgs) == 3
    clf = _MeanClassifier()
    scored = score_reconstruction(clf, x, rec["recon"], keep_samples=2)
    direct = evaluate_reconstruction(model, clf, x, steps=3, batch_size=2)
    for key in ("psnr", "ssim", "decision_kept", "teacher_kl", "n"):
        assert np.isclose(scored[key], direct[key], rtol=1e-5, atol=1e-6), key
    assert scored["samples"][0].shape == (2, 4, 8, 8)
    # the counterfactual sweep reuses them as they are, and still counts their cost
    pre = (torch.as_tensor(rec["recon"]), torch.as_tensor(rec["x_T"]), torch.as_tensor(rec["q"]))
    lat = encode_stacks(model, torch.as_tensor(x), 3, 8, precomputed=pre)
    fresh = encode_stacks(model, torch.as_tensor(x), 3, 8)
    assert torch.allclose(lat.x_T, fresh.x_T, atol=1e-5) and torch.allclose(lat.q, fresh.q, atol=1e-6)
    assert lat.nfe[0].unet == fresh.nfe[0].unet == (2 + 1) * 4 * 3  # inversion with 1 refinement


def test_score_reconstruction_detects_a_bad_reconstruction() -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (6, 4, 8, 8)).astype(np.float32)
    perfect = score_reconstruction(_MeanClassifier(), x, x.copy())
    flipped = score_reconstruction(_MeanClassifier(), x, -x)
    assert perfect["decision_kept"] == 1.0 and perfect["ssim"] > 0.99 and perfect["psnr"] > 60
    assert flipped["decision_kept"] < 0.5 and flipped["psnr"] < 20


def test_inversion_nfe_counts_fixed_point_refinements() -> None:
    assert inversion_nfe(_model(0), 10).unet == 2 * 4 * 10
    assert inversion_nfe(_model(2), 10).unet == 4 * 4 * 10
    bare = cast(DiffAELike, object())  # a stand-in without a config: plain inversion
    assert inversion_nfe(bare, 10).encoder == 4


class _CodeDecoder:
    """Stand-in DiffAE whose z is the slice itself (``z_dim = H*W``); ``uses_noise`` mixes in x_T."""

    device = torch.device("cpu")

    def __init__(self, hw: int, uses_noise: float) -> None:
        self.z_dim, self.hw, self.uses_noise = hw * hw, hw, uses_noise

    def eval(self) -> _CodeDecoder:
        return self

    def render(self, x_T: torch.Tensor, z: torch.Tensor, steps: int) -> torch.Tensor:
        img = z.view(-1, 1, self.hw, self.hw)
        return ((1 - self.uses_noise) * img + self.uses_noise * x_T).clamp(-1, 1)


def _decoder(hw: int, uses_noise: float) -> DiffAE:
    """A :class:`_CodeDecoder` typed as the DiffAE the functions take (they use only ``z_dim``,
    ``device``, ``eval`` and ``render``)."""
    return cast(DiffAE, _CodeDecoder(hw, uses_noise))


def test_semantic_reconstruction_scores_what_z_alone_carries() -> None:
    x = np.random.default_rng(2).uniform(-1, 1, (5, 4, 8, 8)).astype(np.float32)
    q = x.reshape(5, 4 * 64)
    all_in_z = semantic_reconstruction(_decoder(8, 0.0), x, q, steps=2, batch_size=3)
    half_in_x_t = semantic_reconstruction(_decoder(8, 0.5), x, q, steps=2, batch_size=3)
    assert all_in_z["semantic_psnr"].shape == (5,) and np.all(all_in_z["semantic_psnr"] > 60)
    assert np.all(half_in_x_t["semantic_psnr"] < 20) and np.all(half_in_x_t["semantic_ssim"] < 0.9)
    again = semantic_reconstruction(_decoder(8, 0.5), x, q, steps=2, batch_size=5)  # seeded prior draws
    np.testing.assert_allclose(again["semantic_psnr"], half_in_x_t["semantic_psnr"])
    subset = gate_semantic_cases(_decoder(8, 0.5), x, q, steps=2, n_cases=3, seed=0)  # the gate's first 3
    np.testing.assert_allclose(subset["semantic_psnr"], semantic_reconstruction(_decoder(8, 0.5), x[:3], q[:3], 2)
                               ["semantic_psnr"])
    assert gate_semantic_cases(_decoder(8, 0.5), x, q, steps=2, n_cases=0, seed=0) == {}
    real = semantic_reconstruction(_model(), x, np.zeros((5, 64), np.float32), steps=2)  # the real render path
    assert np.isfinite(real["semantic_psnr"]).all()
    with pytest.raises(ValueError, match="does not match"):
        semantic_reconstruction(_model(), x, np.zeros((4, 64), np.float32), steps=2)
