"""Beta schedules and the cumulative products ``alpha_prod_t`` (DDPM notation ``ᾱ_t``).

No weights live here: a :class:`NoiseSchedule` is a pair of 1-D float64 tensors that the
DDIM functions in :mod:`components.diffusion.ddim` read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["NoiseSchedule", "make_betas", "make_schedule", "ddim_timesteps"]


def make_betas(kind: Literal["linear", "cosine"], timesteps: int) -> torch.Tensor:
    """Beta schedule ``β_1..β_T``.

    Args:
        kind: ``"linear"`` (Ho et al. 2020: 1e-4 … 0.02 for T = 1000, rescaled as
            ``1000 / T`` for other T) or ``"cosine"`` (Nichol & Dhariwal 2021, s = 0.008,
            betas clipped at 0.999).
        timesteps: number of training timesteps T (>= 2).

    Returns:
        float64 tensor ``[T]`` with values in (0, 1).
    """
    if timesteps < 2:
        raise ValueError(f"timesteps must be >= 2, got {timesteps}")
    if kind == "linear":
        scale = 1000.0 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64).clamp(max=0.999)
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
        return betas.clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {kind!r} (use 'linear' or 'cosine')")


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete diffusion schedule.

    Attributes:
        betas: float64 ``[T]``, ``β_t``.
        alphas_cumprod: float64 ``[T]``, ``ᾱ_t = Π_{s<=t} (1 − β_s)``, decreasing in (0, 1).
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @property
    def num_train_timesteps(self) -> int:
        """T, the number of training timesteps."""
        return int(self.betas.shape[0])

    def alpha_prod(self, t: torch.Tensor) -> torch.Tensor:
        """``ᾱ_t`` for integer timesteps; ``t = -1`` means the clean image (``ᾱ = 1``).

        Args:
            t: LongTensor of any shape with values in ``[-1, T-1]``.

        Returns:
            float64 tensor of the same shape as ``t``.
        """
        padded = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        return padded[t.long().cpu() + 1]


def make_schedule(kind: Literal["linear", "cosine"] = "linear", timesteps: int = 1000) -> NoiseSchedule:
    """Build a :class:`NoiseSchedule` from a named beta schedule (see :func:`make_betas`)."""
    betas = make_betas(kind, timesteps)
    return NoiseSchedule(betas=betas, alphas_cumprod=torch.cumprod(1.0 - betas, dim=0))


def ddim_timesteps(num_train_timesteps: int, steps: int) -> torch.Tensor:
    """The DDIM sub-sequence ``τ_1 < … < τ_S`` of the training timesteps.

    Evenly spaced and "leading" (as diffusers' default and diffae's respacing): it starts at
    ``t = 0``, e.g. T = 1000, S = 50 gives ``[0, 20, …, 980]``. Starting at 0 keeps the
    first inversion step (clean image -> ``ᾱ_0 ≈ 1``) tiny; on the cpu-small model this
    measured +0.5 dB inversion PSNR over a "trailing" ``[19, …, 999]`` grid.

    Args:
        num_train_timesteps: T.
        steps: S, 1 <= S <= T.

    Returns:
        LongTensor ``[S]``, ascending.
    """
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be in [1, {num_train_timesteps}], got {steps}")
    return torch.arange(steps, dtype=torch.long) * (num_train_timesteps // steps)
