"""Conditional UNet ``D_θ(x_t, t, z)`` predicting the noise ε (DiffAE decoder).

Every residual block applies adaptive GroupNorm with both conditions (DiffAE scheme)::

    h = (GN(h) · (1 + s_t) + b_t) · (1 + W · z)

time gives a per-channel scale/shift, the semantic code multiplies. Self-attention runs at
the resolutions listed in ``attention_resolutions`` (low resolution only: it costs
O((HW)^2)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConditionalUNet", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps.

    Args:
        t: ``[B]`` timesteps (any numeric dtype).
        dim: embedding size (even).

    Returns:
        ``[B,dim]`` float32 in [-1, 1].
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _gn(channels: int) -> nn.GroupNorm:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and (channels // g >= 2 or g == 1))
    return nn.GroupNorm(groups, channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block with AdaGN on (t, z).

    Shapes:
        ``h: [B,c_in,H,W], t_emb: [B,E], z: [B,Z] -> [B,c_out,H,W]``.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, z_dim: int) -> None:
        super().__init__()
        self.norm1 = _gn(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.t_proj = nn.Linear(emb_dim, 2 * c_out)  # -> (s_t, b_t)
        self.z_proj = nn.Linear(z_dim, c_out)  # -> W·z
        self.norm2 = _gn(c_out)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor, t_emb: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.t_proj(t_emb)[:, :, None, None].chunk(2, dim=1)
        z_scale = self.z_proj(z)[:, :, None, None]
        x = (self.norm2(x) * (1 + scale) + shift) * (1 + z_scale)
        x = self.conv2(F.silu(x))
        return self.skip(h) + x


class AttnBlock(nn.Module):
    """Multi-head self-attention over the H·W positions, pre-GroupNorm, residual.

    Shapes:
        ``[B,C,H,W] -> [B,C,H,W]``.
    """

    def __init__(self, channels: int, head_channels: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = _gn(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = h.shape
        qkv = self.qkv(self.norm(h)).reshape(b, 3, self.heads, c // self.heads, hh * ww)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # [B,heads,HW,d]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, hh, ww)
        return h + self.proj(out)


class ConditionalUNet(nn.Module):
    """UNet ``D_θ(x_t, t, z) -> ε``.

    Args:
        image_size: H = W.
        base_channels: width of the first level.
        channel_mults: width multipliers per level; the resolution halves between levels.
        num_res_blocks: residual blocks per level on each side.
        attention_resolutions: resolutions (H) whose blocks are followed by self-attention;
            the bottleneck gets attention when its resolution is listed.
        z_dim: size of the semantic code.
        in_channels: image channels (1 for a CT slice).

    Shapes:
        ``x_t: [B,1,H,W], t: LongTensor[B] in [0,T), z: [B,z_dim] -> ε: [B,1,H,W]``.
    """

    def __init__(
        self,
        image_size: int,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] | list[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_resolutions: tuple[int, ...] | list[int] = (8,),
        z_dim: int = 512,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        emb_dim = 4 * base_channels
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        attn = set(attention_resolutions)

        self.down = nn.ModuleList()
        skip_channels: list[int] = []
        c, size = base_channels, image_size
        for level, mult in enumerate(channel_mults):
            c_out = base_channels * mult
            for _ in range(num_res_blocks):
                blocks = nn.ModuleList([ResBlock(c, c_out, emb_dim, z_dim)])
                if size in attn:
                    blocks.append(AttnBlock(c_out))
                self.down.append(blocks)
                c = c_out
                skip_channels.append(c)
            if level < len(channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                size //= 2

        self.mid1 = ResBlock(c, c, emb_dim, z_dim)
        self.mid_attn = AttnBlock(c) if size in attn else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim, z_dim)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            c_out = base_channels * mult
            for _ in range(num_res_blocks):
                blocks = nn.ModuleList([ResBlock(c + skip_channels.pop(), c_out, emb_dim, z_dim)])
                if size in attn:
                    blocks.append(AttnBlock(c_out))
                self.up.append(blocks)
                c = c_out
            if level > 0:
                # Learned 2x upsampling straight to the next level's width (cheap: it runs at
                # the low resolution; a nearest-upsample + 3x3 conv at full size costs ~9x more).
                c_next = base_channels * channel_mults[level - 1]
                self.up.append(nn.ModuleList([nn.ConvTranspose2d(c, c_next, 2, stride=2)]))
                c, size = c_next, size * 2
        self.out = nn.Sequential(_gn(c), nn.SiLU(), _zero(nn.Conv2d(c, in_channels, 3, padding=1)))

    @staticmethod
    def _run(blocks: nn.ModuleList, h: torch.Tensor, t_emb: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            h = block(h, t_emb, z) if isinstance(block, ResBlock) else block(h)
        return h

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Predict ε for ``x_t: [B,1,H,W]`` at timesteps ``t: [B]`` given ``z: [B,Z]``."""
        t_emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(x_t.dtype))
        h = self.stem(x_t)
        skips: list[torch.Tensor] = []
        for blocks in cast("Iterable[nn.ModuleList]", self.down):  # a ModuleList of ModuleLists
            h = self._run(blocks, h, t_emb, z)
            if isinstance(blocks[0], ResBlock):
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, t_emb, z)), t_emb, z)
        for blocks in cast("Iterable[nn.ModuleList]", self.up):  # a ModuleList of ModuleLists
            if isinstance(blocks[0], ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(blocks, h, t_emb, z)
        return self.out(h)
