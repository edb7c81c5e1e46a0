"""Our schedules and DDIM against an independent implementation: MONAI's ``DDIMScheduler``
(eta = 0, no clipping, ``ᾱ = 1`` after the last step), same betas, same timesteps."""

from __future__ import annotations

from typing import Literal

import pytest
import torch
from monai.networks.schedulers import DDIMScheduler

from components.diffusion.ddim import ddim_invert, ddim_sample, ddim_step
from components.diffusion.schedule import NoiseSchedule, ddim_timesteps, make_schedule

BetaSchedule = Literal["linear", "cosine"]

T = 1000
MONAI_SCHEDULE = {"linear": "linear_beta", "cosine": "cosine"}


def _eps_model(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A fixed non-linear noise predictor ``[B,1,H,W]``: depends on x, t and z."""
    scale = (t.float() / T).view(-1, 1, 1, 1)
    return torch.tanh(1.5 * x + scale) * 0.7 + 0.2 * z[:, :1, None, None] * torch.cos(3 * x)


def _monai(kind: str, steps: int) -> DDIMScheduler:
    """MONAI's scheduler on our timestep grid (its ``prev = t - T // S`` then matches ours)."""
    sched = DDIMScheduler(num_train_timesteps=T, schedule=MONAI_SCHEDULE[kind], clip_sample=False,
                          set_alpha_to_one=True)
    sched.set_timesteps(steps)
    sched.timesteps = ddim_timesteps(T, steps).flip(0)
    return sched


def _as_float64(sched: DDIMScheduler) -> NoiseSchedule:
    """MONAI's own betas and ``ᾱ`` as our schedule type (so that only the DDIM arithmetic differs)."""
    return NoiseSchedule(betas=sched.betas.double(), alphas_cumprod=sched.alphas_cumprod.double())


# MONAI computes in float32: its cosine betas 1 - ᾱ_t/ᾱ_{t-1} lose ~1e-3 relative to cancellation
# (largest where β is small), its ᾱ up to 7e-5 relative where ᾱ is tiny (t near T).
@pytest.mark.parametrize(("kind", "beta_rtol"), [("linear", 1e-6), ("cosine", 2e-3)])
def test_beta_schedules_equal_monai(kind: BetaSchedule, beta_rtol: float) -> None:
    ours, theirs = make_schedule(kind, T), _monai(kind, 10)
    torch.testing.assert_close(ours.betas, theirs.betas.double(), rtol=beta_rtol, atol=5e-5)
    torch.testing.assert_close(ours.alphas_cumprod, theirs.alphas_cumprod.double(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1, 4, 10])
def test_ddim_sampling_equals_monai_step_by_step(kind: BetaSchedule, steps: int) -> None:
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    z = torch.randn(3, 4, generator=g, dtype=torch.float64)
    theirs = _monai(kind, steps)
    theirs.alphas_cumprod = theirs.alphas_cumprod.double()
    x = x_T
    for t in theirs.timesteps.tolist():
        x, _ = theirs.step(_eps_model(x, torch.full((3,), t), z), t, x)
    ours = ddim_sample(_eps_model, x_T, z, _as_float64(_monai(kind, steps)), steps)
    torch.testing.assert_close(ours, x, rtol=1e-6, atol=1e-7)
    # and on our own float64 schedule (built from the same betas): within float32 rounding of MONAI's
    torch.testing.assert_close(ddim_sample(_eps_model, x_T, z, make_schedule(kind, T), steps), x,
                               rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_inversion_steps_equal_monai_reversed_step(kind: str) -> None:
    """Inversion: the first move (clean image to ``ᾱ_0``) has no MONAI counterpart; every later
    move equals ``reversed_step`` with our network input (the target timestep's ε)."""
    steps = 5
    g = torch.Generator().manual_seed(1)
    x_0 = torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.randn(2, 4, generator=g, dtype=torch.float64)
    theirs = _monai(kind, steps)
    theirs.alphas_cumprod = theirs.alphas_cumprod.double()
    schedule = _as_float64(theirs)
    taus = ddim_timesteps(T, steps).tolist()
    t0 = torch.full((2,), taus[0])
    x = ddim_step(_eps_model(x_0, t0, z), x_0, 1.0, float(schedule.alphas_cumprod[taus[0]]))
    for t, t_next in zip(taus[:-1], taus[1:]):
        x, _ = theirs.reversed_step(_eps_model(x, torch.full((2,), t_next), z), t, x)
    torch.testing.assert_close(ddim_invert(_eps_model, x_0, z, schedule, steps), x, rtol=1e-6, atol=1e-7)
