"""Agent distillation against a known linear teacher (feature and output mode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from components.config import AgentConfig
from components.errors import UserError
from components.models.agent import Agent
from components.training.distill_agent import Objective, alignment_report, distill_agent, objective_loss

D, F, C = 24, 6, 2


def _teacher(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(D, F, generator=g) / D**0.5
    b = torch.randn(F, generator=g) * 0.1
    head = nn.Linear(F, C)
    with torch.no_grad():
        head.weight.copy_(torch.randn(C, F, generator=g))
        head.bias.zero_()
    return a, b, head


def _data(n: int, a: torch.Tensor, b: torch.Tensor, head: nn.Linear, seed: int) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, D, generator=g) * 2.0 + 0.5
    feats = q @ a + b
    with torch.no_grad():
        logits = head(feats)
    return q, {"features": feats, "logits": logits}


def _cfg(**kw) -> AgentConfig:
    base = dict(epochs=40, batch_size=16, lr=1e-2, ridge_init=False, val_fraction=0.0, seed=0)
    return AgentConfig(**{**base, **kw})


def _loss(agent: Agent, q: torch.Tensor, t: dict, objective: Objective) -> float:
    with torch.no_grad():
        return float(objective_loss(agent, q, t["features"] if agent.mode == "feature" else None, t["logits"], objective))


def _fit_reduces_loss_and_agrees(seed: int, feature_mode: bool, objective: Objective) -> tuple[Agent, dict, nn.Linear]:
    """Distil 1 epoch and 40 epochs; the loss must halve and the agent agree on new data."""
    a, b, head = _teacher(seed)
    q, t = _data(160, a, b, head, seed=seed + 1)
    q_ext, t_ext = _data(200, a, b, head, seed=seed + 2)
    targets = t if feature_mode else {"features": None, "logits": t["logits"]}
    bb_head = head if feature_mode else None
    first = _loss(distill_agent(q, targets, bb_head, _cfg(epochs=1), objective)[0], q, t, objective)
    agent, m = distill_agent(q, targets, bb_head, _cfg(), objective)
    assert _loss(agent, q, t, objective) < 0.5 * first
    rep = alignment_report(agent, q_ext, t_ext["logits"])
    assert rep["accuracy"] > 0.9 and rep["auc"] > 0.95
    return agent, m, head


@pytest.mark.parametrize("objective", ["L1", "MSE", "KL"])
def test_feature_mode_objectives_reduce_loss_and_agree(objective: Objective) -> None:
    agent, m, head = _fit_reduces_loss_and_agrees(0, True, objective)
    assert agent.mode == m["mode"] == "feature" and m["objective"] == objective
    torch.testing.assert_close(agent.head.weight, head.weight)  # frozen teacher head


def test_output_mode_kl_reduces_loss_and_agrees() -> None:
    agent, m, _ = _fit_reduces_loss_and_agrees(3, False, "KL")
    assert m["mode"] == "output" and agent.feature_dim == C


def test_ridge_start_recovers_linear_teacher_and_validation_selects_epochs() -> None:
    a, b, head = _teacher(6)
    q, t = _data(120, a, b, head, seed=7)
    q_ext, t_ext = _data(200, a, b, head, seed=8)
    cfg = _cfg(ridge_init=True, ridge_alphas=[1e-4, 1e-2, 1.0], val_fraction=0.25, epochs=10, lr=1e-4, patience=3)
    agent, m = distill_agent(q, t, head, cfg, "L1")
    assert m["ridge_alpha"] == pytest.approx(1e-4)
    assert 0 <= m["epochs"] <= 10 and m["val_curve"][0] < 1e-2  # ridge is already near exact
    rep = alignment_report(agent, q_ext, t_ext["logits"])
    assert rep["auc"] > 0.99 and rep["kl"] < 1e-3
    assert {"val_ridge", "val_best"} <= m.keys()


def test_augmented_rows_are_used_and_checked() -> None:
    a, b, head = _teacher(9)
    q, t = _data(40, a, b, head, seed=10)
    qa, ta = _data(80, a, b, head, seed=11)
    cfg = _cfg(ridge_init=True, val_fraction=0.25, epochs=3)
    _, m = distill_agent(q, t, head, cfg, "MSE", q_aug=qa, targets_aug=ta)
    assert m["n_aug"] == 80 and m["n_train"] == 40
    with pytest.raises(UserError, match="targets_aug"):
        distill_agent(q, t, head, cfg, "MSE", q_aug=qa, targets_aug={"logits": ta["logits"][:5]})
    with pytest.raises(UserError, match="objective"):
        distill_agent(q, t, head, cfg, "L2")  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"features must be \[N,6\]"):
        distill_agent(q, {"features": t["features"][:, :3], "logits": t["logits"]}, head, cfg)


def test_alignment_report_known_answers() -> None:
    agent = Agent(latent_dim=2, feature_dim=2, num_classes=2, mode="output", normalize=False)
    with torch.no_grad():
        agent.linear.weight.copy_(torch.eye(2))
        agent.linear.bias.zero_()
    q = torch.tensor([[0.0, 2.0], [2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    rep = alignment_report(agent, q, q.numpy())  # agent == teacher
    assert rep["auc"] == 1.0 and rep["f1"] == 1.0 and rep["kl"] == pytest.approx(0.0, abs=1e-9)
    assert rep["teacher_positives"] == 2.0
    flipped = alignment_report(agent, q, np.flip(q.numpy(), axis=1).copy())
    assert flipped["auc"] == 0.0 and flipped["accuracy"] == 0.0 and flipped["kl"] > 0.1
