"""Deterministic DDIM (Song et al. 2021, eta = 0): sampling, inversion, stochastic ``x_T``.

The network is passed in as ``eps_model(x_t, t, z) -> eps`` with ``x_t: [B,1,H,W]``,
``t: LongTensor[B]``, ``z: [B,Z]``; nothing here owns weights. DDIM update (paper Eq. 1)::

    x_{t-1} = sqrt(ᾱ_{t-1}) · (x_t − sqrt(1 − ᾱ_t) ε_θ(x_t, t, z)) / sqrt(ᾱ_t)
              + sqrt(1 − ᾱ_{t-1}) · ε_θ(x_t, t, z)

Inversion runs the same update from ``x_0`` towards ``x_T``; since ``x_{t+1}`` is not known
yet, the network is evaluated at the current sample with the target timestep (the usual
DDIM-inversion approximation, exact in the limit of small steps), optionally refined by
fixed-point iterations (see :func:`ddim_invert`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from components.diffusion.schedule import NoiseSchedule, ddim_timesteps

__all__ = ["EpsModel", "ddim_step", "ddim_sample", "ddim_invert", "stochastic_x_T", "ddim_path"]

EpsModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _expand(a: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A scalar or ``[B]`` tensor reshaped to broadcast over ``like`` (``[B,C,H,W]``)."""
    a = torch.as_tensor(a, dtype=torch.float64)
    if a.ndim == 0:
        return a.to(like.device, like.dtype)
    return a.reshape(-1, *([1] * (like.ndim - 1))).to(like.device, like.dtype)


def ddim_step(
    model_output: torch.Tensor,
    sample: torch.Tensor,
    alpha_prod_t: torch.Tensor | float,
    alpha_prod_t_prev: torch.Tensor | float,
) -> torch.Tensor:
    """One deterministic DDIM move between two noise levels (paper Eq. 1, eta = 0).

    The same formula moves down (sampling, ``alpha_prod_t_prev > alpha_prod_t``) or up
    (inversion, ``alpha_prod_t_prev < alpha_prod_t``) the noise schedule.

    Args:
        model_output: predicted noise ``ε_θ(x_t, t, z)``, ``[B,C,H,W]``.
        sample: current sample ``x_t``, ``[B,C,H,W]``.
        alpha_prod_t: ``ᾱ_t`` of ``sample`` (scalar or ``[B]``), in (0, 1].
        alpha_prod_t_prev: ``ᾱ`` of the target level (scalar or ``[B]``), in (0, 1].

    Returns:
        The sample at the target level, ``[B,C,H,W]``, same dtype as ``sample``.
    """
    alpha_prod_t = _expand(alpha_prod_t, sample)
    alpha_prod_t_prev = _expand(alpha_prod_t_prev, sample)
    beta_prod_t = 1 - alpha_prod_t
    # x̂_0 = (x_t − sqrt(1 − ᾱ_t) ε) / sqrt(ᾱ_t)        ("predicted x_0", Eq. 12 of DDIM)
    pred_original_sample = (sample - beta_prod_t.sqrt() * model_output) / alpha_prod_t.sqrt()
    # "direction pointing to x_t": sqrt(1 − ᾱ_{t-1}) ε   (sigma_t = 0 for eta = 0)
    pred_sample_direction = (1 - alpha_prod_t_prev).sqrt() * model_output
    # x_{t-1} = sqrt(ᾱ_{t-1}) x̂_0 + sqrt(1 − ᾱ_{t-1}) ε
    return alpha_prod_t_prev.sqrt() * pred_original_sample + pred_sample_direction


def ddim_path(num_train_timesteps: int, steps: int, depth: float = 1.0) -> list[int]:
    """The timesteps an inversion climbs and a decoding descends: the first ``ceil(depth*S)``
    of the S-step DDIM grid.

    ``depth = 1`` is the full path to ``x_T``; ``depth < 1`` is partial inversion / decoding:
    the code is ``x_{t0}`` at ``t0 = τ_k`` instead of ``x_T`` (SDEdit-style; the decoder then
    redraws only the content the remaining noise level governs). The number of network
    evaluations of one decoding is the length of the path.

    Args:
        num_train_timesteps: T.
        steps: S, the DDIM grid size.
        depth: fraction of the grid used, in (0, 1].

    Returns:
        Ascending timesteps ``[τ_1, …, τ_k]``, ``1 <= k <= S``.
    """
    if not 0.0 < depth <= 1.0:
        raise ValueError(f"depth must be in (0, 1], got {depth}")
    taus = ddim_timesteps(num_train_timesteps, steps).tolist()
    k = max(1, math.ceil(depth * len(taus) - 1e-9))
    return taus[:k]


def _batched_t(t: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((like.shape[0],), int(t), dtype=torch.long, device=like.device)


@torch.no_grad()
def ddim_sample(
    eps_model: EpsModel,
    x_T: torch.Tensor,
    z: torch.Tensor,
    schedule: NoiseSchedule,
    steps: int,
    depth: float = 1.0,
) -> torch.Tensor:
    """Decode ``x_T`` to ``x_0`` with ``steps`` deterministic DDIM steps conditioned on ``z``.

    Args:
        eps_model: ``(x_t [B,C,H,W], t LongTensor[B], z [B,Z]) -> ε [B,C,H,W]``.
        x_T: start noise (or an inverted code), ``[B,C,H,W]``.
        z: semantic code, ``[B,Z]``.
        schedule: the training schedule.
        steps: number of DDIM steps S (network evaluations at ``depth = 1``).
        depth: start from ``τ_k`` of :func:`ddim_path` (``x_T`` is then a partial
            inversion's ``x_{τ_k}``); ``ceil(depth*S)`` network evaluations.

    Returns:
        ``x_0`` estimate ``[B,C,H,W]`` (not clamped).
    """
    taus = ddim_path(schedule.num_train_timesteps, steps, depth)
    alphas = schedule.alpha_prod(torch.tensor([-1] + taus)).tolist()  # ᾱ_{τ_0} = 1 (clean)
    x = x_T
    for i in range(len(taus), 0, -1):
        model_output = eps_model(x, _batched_t(taus[i - 1], x), z).to(x.dtype)
        x = ddim_step(model_output, x, alpha_prod_t=alphas[i], alpha_prod_t_prev=alphas[i - 1])
    return x


@torch.no_grad()
def ddim_invert(
    eps_model: EpsModel,
    x_0: torch.Tensor,
    z: torch.Tensor,
    schedule: NoiseSchedule,
    steps: int,
    fixed_point_iters: int = 0,
    depth: float = 1.0,
) -> torch.Tensor:
    """Deterministic DDIM inversion ``x_0 -> x_T`` (diffae's "stochastic encoding").

    Each step solves the DDIM update backwards. Plain inversion evaluates the network at
    the current sample, ``x_{τ_i} = step(ε_θ(x_{τ_{i-1}}, τ_i))``; with
    ``fixed_point_iters = k > 0`` the step is refined k times as
    ``x_{τ_i} <- step(ε_θ(x_{τ_i}, τ_i))``, the exact inverse of the sampler's step at its
    fixed point (fixed-point DDIM inversion, cf. Pan et al. 2023, "AIDI"). Each iteration
    costs one more network evaluation per step; on the cpu-small model one iteration raised
    inversion PSNR at 50 steps from 35 to 48 dB.

    Decoding the result with :func:`ddim_sample` and the same ``z`` and ``steps``
    reconstructs ``x_0`` up to the remaining inversion error.

    Args:
        eps_model: ``(x_t [B,C,H,W], t LongTensor[B], z [B,Z]) -> ε [B,C,H,W]``.
        x_0: clean images ``[B,C,H,W]`` in [-1, 1].
        z: semantic code ``[B,Z]`` (normally ``E(x_0)``).
        schedule: the training schedule.
        steps: number of DDIM steps S.
        fixed_point_iters: refinement iterations per step (0 = plain DDIM inversion).
        depth: stop at ``τ_k`` of :func:`ddim_path` (partial inversion); decode the result
            with the same ``steps`` and ``depth``.

    Returns:
        ``x_T`` ``[B,C,H,W]`` (approximately unit-variance noise at ``depth = 1``).
    """
    taus = ddim_path(schedule.num_train_timesteps, steps, depth)
    alphas = schedule.alpha_prod(torch.tensor([-1] + taus)).tolist()
    x = x_0
    for i in range(1, len(taus) + 1):
        t = _batched_t(taus[i - 1], x)
        model_output = eps_model(x, t, z).to(x.dtype)
        x_next = ddim_step(model_output, x, alpha_prod_t=alphas[i - 1], alpha_prod_t_prev=alphas[i])
        for _ in range(fixed_point_iters):
            model_output = eps_model(x_next, t, z).to(x.dtype)
            x_next = ddim_step(model_output, x, alpha_prod_t=alphas[i - 1], alpha_prod_t_prev=alphas[i])
        x = x_next
    return x


def stochastic_x_T(x_0: torch.Tensor, noise: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The forward-noised code ``x_T = sqrt(ᾱ_T) x_0 + sqrt(1 − ᾱ_T) ε`` (q(x_T | x_0)).

    Args:
        x_0: clean images ``[B,C,H,W]`` in [-1, 1].
        noise: ``ε ~ N(0, I)``, same shape as ``x_0``.
        schedule: supplies ``ᾱ_T`` (the last training timestep).

    Returns:
        ``[B,C,H,W]``.
    """
    alpha_prod_T = float(schedule.alphas_cumprod[-1])
    return alpha_prod_T**0.5 * x_0 + (1 - alpha_prod_T) ** 0.5 * noise
