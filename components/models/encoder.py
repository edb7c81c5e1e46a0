"""Semantic encoder ``E``: one CT slice -> semantic code ``z`` (DiffAE, Preechakul et al. 2022)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SemanticEncoder"]


def _groups(channels: int) -> int:
    """Largest GroupNorm group count in (32, 16, …, 1) dividing ``channels`` with >= 2 channels per group."""
    return next((g for g in (32, 16, 8, 4, 2) if channels % g == 0 and channels // g >= 2), 1)


class _DownBlock(nn.Module):
    """Stride-2 conv, GroupNorm, SiLU, conv, GroupNorm, SiLU (+ strided residual)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
            nn.GroupNorm(_groups(c_out), c_out),
            nn.SiLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1),
            nn.GroupNorm(_groups(c_out), c_out),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1, stride=2)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class SemanticEncoder(nn.Module):
    """Strided-conv encoder mapping a slice to ``z``.

    The image is halved until it is at most 4×4 (channels ``c, 2c, 4c, 4c, …``), then the
    feature map is flattened and projected linearly to ``z_dim``: the flatten keeps *where*
    things are, which the decoder needs for a faithful reconstruction.

    Args:
        image_size: H = W of the input (a power of two >= 8).
        channels: width of the first stage.
        z_dim: size of the semantic code (512 in DiffAE / DiffExplainer).

    Shapes:
        ``x: [B,1,H,W] in [-1,1] -> z: [B,z_dim]`` (unbounded).
    """

    def __init__(self, image_size: int, channels: int = 32, z_dim: int = 512) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        blocks: list[nn.Module] = []
        c, size, level = channels, image_size, 0
        while size > 4:
            c_out = channels * min(2 ** (level + 1), 4)
            blocks.append(_DownBlock(c, c_out))
            c, size, level = c_out, (size + 1) // 2, level + 1
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c * size * size, z_dim)
        self.z_dim = z_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x: [B,1,H,W] in [-1,1]`` to ``z: [B,z_dim]``."""
        h = self.blocks(self.stem(x))
        return self.head(h.flatten(1))
