"""Code-swap test: the share of a black box's decision that follows the semantic code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.counterfactual.code_swap import decision_swap


class _Mixer(torch.nn.Module):
    """render = w·z + (1 − w)·x_T, with z the slice itself (flattened): w = 1 follows z only."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = w

    def render(self, x_T: torch.Tensor, z: torch.Tensor, steps: int, depth: float = 1.0) -> torch.Tensor:
        return self.w * z.reshape(x_T.shape) + (1 - self.w) * x_T

    # the rest of DiffAELike: the code-swap test only decodes (recon, x_T and q are given)
    def encode_stack(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def invert(self, x0: torch.Tensor, z: torch.Tensor, steps: int, *, depth: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def reconstruct_stack(
        self, x: torch.Tensor, steps: int, depth: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def _linear_box(x: torch.Tensor) -> torch.Tensor:
    """Logit margin = 3 × mean intensity (a black box linear in the image)."""
    m = 3.0 * x.mean(dim=(1, 2, 3))
    return torch.stack([torch.zeros_like(m), m], dim=1)


@pytest.mark.parametrize("w", [1.0, 0.5, 0.0])
def test_z_share_recovers_how_the_decoder_mixes_the_codes(w: float) -> None:
    images = np.random.default_rng(0).uniform(-1, 1, (12, 4, 6, 6)).astype(np.float32)
    q = images.reshape(12, 4 * 36)
    out = decision_swap(_Mixer(w), _linear_box, images, images, q, steps=1, rounds=2, batch_size=8)
    assert out["z_share"] == pytest.approx(w, abs=1e-5)
    assert out["coef_z"] == pytest.approx(w, abs=1e-5)
    assert out["coef_x_T"] == pytest.approx(1 - w, abs=1e-5)
    assert out["n"] == 24
    if w == 1.0:
        assert out["sign_follows_z"] == 1.0


def test_decision_swap_needs_three_patients() -> None:
    images = np.zeros((2, 4, 6, 6), np.float32)
    with pytest.raises(ValueError, match=">= 3 patients"):
        decision_swap(_Mixer(1.0), _linear_box, images, images, images.reshape(2, -1), steps=1)
