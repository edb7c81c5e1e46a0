"""Stack augmentations for agent training pairs and latent encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.config import DiffAEConfig
from components.models.diffae import build_diffae
from components.training.latents import AUGMENTATIONS, augment_stacks, encode_latents


def _stacks() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, size=(3, 4, 8, 8)).astype(np.float32)


def test_augmentations_move_pixels_as_named_and_keep_input() -> None:
    x = _stacks()
    before = x.copy()
    assert np.array_equal(augment_stacks(x, "flip"), x[..., ::-1])
    assert np.array_equal(augment_stacks(x, "shift+x")[..., 1:], x[..., :-1])
    assert np.array_equal(augment_stacks(x, "shift-x")[..., :-1], x[..., 1:])
    assert np.array_equal(augment_stacks(x, "shift+y")[..., 1:, :], x[..., :-1, :])
    assert np.array_equal(augment_stacks(x, "shift-y")[..., :-1, :], x[..., 1:, :])
    assert np.array_equal(x, before)
    for name in AUGMENTATIONS:
        assert augment_stacks(x, name).shape == x.shape
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_stacks(x, "rotate")


def test_encode_latents_concatenates_slices_in_order() -> None:
    torch.manual_seed(0)
    cfg = DiffAEConfig(image_size=8, base_channels=4, channel_mults=[1], attention_resolutions=[],
                       z_dim=8, encoder_channels=4, device="cpu")
    model = build_diffae(cfg).eval()
    x = _stacks()
    q = encode_latents(model, x, batch_size=2)
    assert q.shape == (3, 32) and q.dtype == np.float32
    with torch.no_grad():
        z2 = model.encode(torch.from_numpy(x[:, 2:3])).numpy()
    np.testing.assert_allclose(q[:, 16:24], z2, rtol=1e-5, atol=1e-6)
