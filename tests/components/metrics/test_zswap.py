"""z-swap test: a decode that follows the semantic code scores 1, one that follows x_T scores 0."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch

from components.metrics.reconstruction import zswap_rate
from components.models.diffae import DiffAE


class _StandIn(torch.nn.Module):
    """encode = the image itself (as a flat code); render follows ``z`` or ``x_T`` as told."""

    def __init__(self, follow: str) -> None:
        super().__init__()
        self.follow = follow
        self.device = torch.device("cpu")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def invert(self, x: torch.Tensor, z: torch.Tensor, steps: int) -> torch.Tensor:
        return x.clone()

    def render(self, x_t: torch.Tensor, z: torch.Tensor, steps: int) -> torch.Tensor:
        return z.reshape(x_t.shape) if self.follow == "z" else x_t


def _stand_in(follow: str) -> DiffAE:
    """A :class:`_StandIn` typed as the DiffAE ``zswap_rate`` takes (it uses encode, invert, render)."""
    return cast(DiffAE, _StandIn(follow))


def test_zswap_rate_tells_a_semantic_decoder_from_one_that_ignores_z() -> None:
    images = np.random.default_rng(0).uniform(-1, 1, (5, 4, 8, 8)).astype(np.float32)
    assert zswap_rate(_stand_in("z"), images, steps=2, batch_size=2) == 1.0
    assert zswap_rate(_stand_in("x_T"), images, steps=2, batch_size=2) == 0.0
    with pytest.raises(ValueError, match="at least 2 patients"):
        zswap_rate(_stand_in("z"), images[:1], steps=2)
