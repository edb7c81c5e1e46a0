"""Reconstruction gate measurements: cohort reconstruction and its scoring, reusable parts."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from components.config import DiffAEConfig
from components.counterfactual.decoding import encode_stacks, inversion_nfe
from components.metrics.reconstruction_eval import evaluate_reconstruction, reconstruct_cohort, score_reconstruction
from components.models.diffae import build_diffae


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
    pre = tuple(torch.as_tensor(rec[k]) for k in ("recon", "x_T", "q"))
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
    assert inversion_nfe(object(), 10).encoder == 4  # stand-ins without a config: plain inversion
