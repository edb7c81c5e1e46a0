"""Latent shifts and the sweep move the agent (and an aligned teacher) the intended way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.config import CounterfactualConfig
from components.counterfactual.criteria import manipulation_criterion
from components.counterfactual.manipulation import agent_gradient, random_directions, shift_latents
from components.counterfactual.sweep import run_sweep


@pytest.mark.parametrize("score", ["probability", "logit"])
@pytest.mark.parametrize("target", [0, 1])
def test_gradient_step_raises_agent_score(standins, score, target):
    model, agent, _, x = standins
    q = model.encode_stack(x).detach()
    q_before = q.clone()
    g = agent_gradient(agent, q, target, score)
    assert g.shape == q.shape
    assert torch.equal(q, q_before)  # input not mutated
    shifted = shift_latents(q, g, torch.tensor([0.0, 0.1, 0.2, 0.4]), normalized=True)
    p = torch.softmax(agent(shifted.reshape(-1, q.shape[1])), 1)[:, target].view(q.shape[0], 4)
    assert torch.allclose(shifted[:, 0], q)
    assert (p.diff(dim=1) > 0).all()  # larger alpha, larger score of the target class


def test_normalized_step_is_a_fraction_of_q_norm():
    q = torch.randn(3, 32)
    d = torch.randn(3, 32) * 7
    out = shift_latents(q, d, torch.tensor([0.25]), normalized=True)[:, 0]
    assert torch.allclose((out - q).norm(dim=1), 0.25 * q.norm(dim=1), rtol=1e-5)
    raw = shift_latents(q, d, torch.tensor([0.25]), normalized=False)[:, 0]
    assert torch.allclose(raw - q, 0.25 * d, atol=1e-6)


def test_random_directions_are_unit_and_seeded():
    like = torch.zeros(5, 32)
    a = random_directions(like, torch.Generator().manual_seed(3))
    b = random_directions(like, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.allclose(a.norm(dim=1), torch.ones(5))


def test_sweep_moves_scores_and_counts_network_evaluations(standins):
    model, agent, bb, x = standins
    cfg = CounterfactualConfig(alphas=[0.1, 0.2, 0.4], ddim_steps=3, batch_size=8)
    x_before = x.clone()
    res = run_sweep(model, agent, bb, x, cfg, search=False)
    n, a = x.shape[0], len(cfg.alphas)
    assert torch.equal(x, x_before)
    assert res.counterfactuals.shape == (n, 2, a, 4, 16, 16)
    assert res.random_cf is not None and res.random_cf.shape == res.counterfactuals.shape
    assert res.teacher_cf.shape == res.agent_cf.shape == (n, 2, a, 2)
    for d in (0, 1):
        agent_curve = np.concatenate([res.agent_q[:, None, d], res.agent_cf[:, d, :, d]], axis=1)
        teacher_curve = np.concatenate([res.teacher_recon[:, None, d], res.teacher_cf[:, d, :, d]], axis=1)
        assert (np.diff(agent_curve, axis=1) > 0).all()
        assert (np.diff(teacher_curve, axis=1) > 0).all()  # the stand-in teacher is aligned
    # lossless stand-in: the reconstruction equals the input
    np.testing.assert_allclose(res.recon, x.numpy(), atol=1e-5)
    # NFE bookkeeping matches the images the stand-in actually inverted / rendered
    unet_images = model.calls["invert"] + model.calls["render"]
    assert sum(c.unet for c in res.nfe) == unet_images * cfg.ddim_step_count
    assert sum(c.encoder for c in res.nfe) == model.calls["encode"] == n * 4
    # per patient: invert + recon (2*4*steps) + (2 directions + 2 random) * A * 4 * steps
    assert res.nfe[0].unet == (2 * 4 + 4 * a * 4) * cfg.ddim_step_count


def test_standardized_step_space_keeps_low_variance_dims_still(standins):
    from cf_standins import StandardizingAgent

    from components.counterfactual.manipulation import step_frame
    from components.errors import UserError

    model, plain_agent, bb, x = standins
    dim = 4 * model.z_dim
    std = torch.ones(dim)
    std[:4] = 1e-3  # four nearly constant latent dimensions
    agent = StandardizingAgent(dim, std)
    q = model.encode_stack(x).detach()
    q[:, :4] = q[0, :4] + 1e-3 * torch.randn(q.shape[0], 4, generator=torch.Generator().manual_seed(1))
    agent.latent_mean.copy_(q.mean(0))  # std matches the data: dims 0-3 barely vary
    moves = {}
    for space in ("latent", "standardized"):
        to_step, to_latent = step_frame(agent, space)
        u = to_step(q)
        g = agent_gradient(agent, u, 1, to_latent=to_latent)
        q_new = to_latent(shift_latents(u, g, torch.tensor([0.2]), normalized=True)[:, 0]).detach()
        m0, m1 = (agent(t) @ torch.tensor([-1.0, 1.0]) for t in (q, q_new))  # logit margin
        assert (m1 > m0).all()
        moves[space] = (q_new - q).abs()
    # through the standardisation the gradient is divided by std: the near-constant dims
    # dominate the step; in standardised coordinates they hardly move
    assert moves["latent"][:, :4].sum() > moves["latent"][:, 4:].sum()
    assert (moves["standardized"][:, :4] < 1e-2).all()
    assert step_frame(plain_agent, "auto")[0](q) is q
    with pytest.raises(UserError):
        step_frame(plain_agent, "standardized")
    cfg = CounterfactualConfig(alphas=[0.1, 0.2], ddim_steps=1, batch_size=8, random_control=False)
    res = run_sweep(model, agent, bb, x[:2], cfg, search=False)  # auto -> standardized
    assert (np.diff(res.agent_cf[:, 1, :, 1], axis=1) >= 0).all()


def test_random_control_at_the_largest_alpha_only_costs_one_row_per_direction(standins):
    model, agent, bb, x = standins
    cfg = CounterfactualConfig(alphas=[0.1, 0.2, 0.4], ddim_steps=4, ddim_depth=0.5, batch_size=8,
                               random_control_alphas="largest")
    res = run_sweep(model, agent, bb, x, cfg, search=False)
    n, a = x.shape[0], len(cfg.alphas)
    assert res.counterfactuals.shape == (n, 2, a, 4, 16, 16)
    assert res.random_cf is not None and res.random_cf.shape == (n, 2, 1, 4, 16, 16)
    assert res.teacher_random is not None and res.agent_random is not None and res.random_alphas is not None
    assert res.teacher_random.shape == res.agent_random.shape == (n, 2, 1, 2)
    assert res.random_alphas.tolist() == [0.4]
    full = run_sweep(model, agent, bb, x, cfg.model_copy(update={"random_control_alphas": "all"}), search=False)
    # the same random directions (seeded): the largest-alpha row is the full control's last one
    assert full.random_cf is not None
    np.testing.assert_allclose(res.random_cf[:, :, 0], full.random_cf[:, :, -1], atol=1e-6)
    np.testing.assert_allclose(res.counterfactuals, full.counterfactuals, atol=1e-6)
    # per patient, path = ceil(0.5 * 4) = 2 UNet evaluations per decode:
    # invert + recon (2 * 4 slices) + (2 directions x 3 alphas + 2 random) rows x 4 slices
    assert res.nfe[0].unet == (2 * 4 + (2 * a + 2) * 4) * 2
    crit = manipulation_criterion(res)
    assert crit["random_control_flip_rate_all_cases"] is not None
