"""DDIM math: schedules, golden values with a linear eps model, exact invertibility."""

from __future__ import annotations

import math

import pytest
import torch

from components.diffusion import (
    NoiseSchedule,
    ddim_invert,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    make_betas,
    make_schedule,
    stochastic_x_T,
)

# A two-step schedule small enough to check by hand: ᾱ_0 = 0.9, ᾱ_1 = 0.5.
TWO = NoiseSchedule(betas=torch.tensor([0.1, 1 - 0.5 / 0.9], dtype=torch.float64),
                    alphas_cumprod=torch.tensor([0.9, 0.5], dtype=torch.float64))


def half_x(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """ε(x_t, t, z) = 0.5 · x_t (ignores t and z)."""
    return 0.5 * x


def test_linear_betas_endpoints() -> None:
    betas = make_betas("linear", 1000)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    assert make_schedule("linear", 1000).alphas_cumprod[-1].item() == pytest.approx(4.04e-5, rel=0.01)


def test_cosine_schedule_decreasing_to_zero() -> None:
    a = make_schedule("cosine", 100).alphas_cumprod
    assert torch.all(a[1:] < a[:-1]) and a[0] > 0.99 and a[-1] < 1e-3


def test_ddim_timesteps_leading() -> None:
    assert ddim_timesteps(1000, 50)[:3].tolist() == [0, 20, 40]
    assert ddim_timesteps(1000, 50)[-1].item() == 980
    assert ddim_timesteps(10, 10).tolist() == list(range(10))
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


def test_ddim_step_golden() -> None:
    # x_t = 1, ε = 0.5, ᾱ_t = 0.5 -> ᾱ_prev = 0.9:
    # x̂_0 = (1 − sqrt(0.5)·0.5)/sqrt(0.5) = 0.914214; x_prev = sqrt(0.9)·x̂_0 + sqrt(0.1)·0.5
    out = ddim_step(torch.full((1, 1, 1, 1), 0.5), torch.ones(1, 1, 1, 1), 0.5, 0.9)
    expected = math.sqrt(0.9) * (1 - math.sqrt(0.5) * 0.5) / math.sqrt(0.5) + math.sqrt(0.1) * 0.5
    assert out.item() == pytest.approx(expected, abs=1e-6)
    assert out.item() == pytest.approx(1.0254130, abs=1e-6)


def test_ddim_sample_golden() -> None:
    x_T = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    out = ddim_sample(half_x, x_T, torch.zeros(1, 3), TWO, steps=2)
    # step t=1 (ᾱ 0.5 -> 0.9): 1.0254130; step t=0 (ᾱ 0.9 -> 1): 0.9099781
    assert torch.allclose(out, torch.full_like(out, 0.9099780589592558), atol=1e-9)


def test_ddim_invert_golden() -> None:
    x0 = torch.ones(2, 1, 2, 2, dtype=torch.float64)
    out = ddim_invert(half_x, x0, torch.zeros(2, 3), TWO, steps=2)
    # ᾱ 1 -> 0.9 with ε(x0, t=0) = 0.5: 1.1067972; ᾱ 0.9 -> 0.5 with ε = 0.5·1.1067972: 1.0858325
    assert torch.allclose(out, torch.full_like(out, 1.085832508759281), atol=1e-9)


def test_fixed_point_inversion_golden() -> None:
    x0 = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    out = ddim_invert(half_x, x0, torch.zeros(1, 3), TWO, steps=1, fixed_point_iters=1)
    # steps=1 uses τ = [0]: ᾱ 1 -> 0.9. Plain: x1 = sqrt(0.9) + sqrt(0.1)·0.5 = 1.1067972;
    # one refinement re-evaluates ε at x1: x1' = sqrt(0.9) + sqrt(0.1)·0.5·1.1067972
    assert out.item() == pytest.approx(math.sqrt(0.9) + math.sqrt(0.1) * 0.5 * 1.1067971810589328, abs=1e-9)


def test_fixed_point_inversion_converges_to_exact_inverse() -> None:
    # For ε = 0.5·x the refinement is a contraction; at its fixed point inversion is the exact
    # inverse of the sampler, while plain inversion is off by a visible amount.
    x0 = torch.linspace(-1, 1, 8, dtype=torch.float64).reshape(2, 1, 2, 2)
    z = torch.zeros(2, 3)
    plain = ddim_sample(half_x, ddim_invert(half_x, x0, z, TWO, 2), z, TWO, 2)
    exact = ddim_sample(half_x, ddim_invert(half_x, x0, z, TWO, 2, fixed_point_iters=40), z, TWO, 2)
    assert (plain - x0).abs().max() > 1e-2
    assert torch.allclose(exact, x0, atol=1e-9)


def test_inversion_is_exact_when_eps_ignores_x() -> None:
    # With ε depending only on (t, z) every DDIM step is an affine map with a known inverse,
    # so decode(invert(x0)) == x0 up to float error, for any number of steps.
    sched = make_schedule("linear", 100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    z = torch.randn(3, 4, generator=g)

    def eps(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.sin(t.float()[:, None, None, None] / 7 + z[:, :1, None, None]).expand_as(x)

    x_T = ddim_invert(eps, x0.double(), z, sched, steps=10)
    back = ddim_sample(eps, x_T, z, sched, steps=10)
    assert torch.allclose(back, x0.double(), atol=1e-9)


def test_stochastic_x_T() -> None:
    sched = make_schedule("linear", 1000)
    a = sched.alphas_cumprod[-1].item()
    x0, noise = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0)
    out = stochastic_x_T(x0, noise, sched)
    assert torch.allclose(out, torch.full_like(out, math.sqrt(a) + 2 * math.sqrt(1 - a)), atol=1e-6)


def test_sample_does_not_mutate_input() -> None:
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    before = x_T.clone()
    ddim_sample(half_x, x_T, torch.zeros(2, 2), make_schedule("linear", 20), steps=4)
    assert torch.equal(x_T, before)


def test_partial_depth_inverts_and_decodes_the_first_part_of_the_grid() -> None:
    from components.diffusion import ddim_path

    assert ddim_path(1000, 50) == ddim_timesteps(1000, 50).tolist()
    assert ddim_path(1000, 50, 0.3) == ddim_timesteps(1000, 50)[:15].tolist()
    assert ddim_path(1000, 10, 0.55) == ddim_timesteps(1000, 10)[:6].tolist()  # ceil(5.5) = 6
    assert len(ddim_path(1000, 4, 0.01)) == 1
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError):
            ddim_path(1000, 10, bad)
    schedule = make_schedule("cosine", 100)
    calls = []

    def eps(x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        calls.append(int(t[0]))
        return 0.1 * x + 0.01 * t.view(-1, 1, 1, 1)

    x0 = torch.linspace(-1, 1, 16, dtype=torch.float64).view(1, 1, 4, 4)
    x_mid = ddim_invert(eps, x0, torch.zeros(1, 1), schedule, 10, fixed_point_iters=3, depth=0.4)
    assert calls == [t for t in ddim_path(100, 10, 0.4) for _ in range(4)]  # 1 + 3 refinements per step
    calls.clear()
    back = ddim_sample(eps, x_mid, torch.zeros(1, 1), schedule, 10, depth=0.4)
    assert calls == ddim_path(100, 10, 0.4)[::-1]  # ceil(0.4 * 10) = 4 network evaluations, top down
    torch.testing.assert_close(back, x0, atol=1e-6, rtol=0)
    # the partial code is x_{t0}, noisier than x_0 and less so than the full inversion's x_T
    x_T = ddim_invert(eps, x0, torch.zeros(1, 1), schedule, 10, fixed_point_iters=3)
    assert (x_mid - x0).abs().mean() < (x_T - x0).abs().mean()
