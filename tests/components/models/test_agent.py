"""Agent module: shapes, frozen / trainable heads, normalisation, save / load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from components.models.agent import Agent, load_agent, save_agent


def test_feature_mode_copies_and_freezes_teacher_head() -> None:
    torch.manual_seed(0)
    teacher_head = nn.Linear(6, 2)
    agent = Agent(latent_dim=12, feature_dim=6, num_classes=2, mode="feature", head=teacher_head)
    q = torch.randn(5, 12)
    assert agent(q).shape == (5, 2) and agent.features(q).shape == (5, 6)
    torch.testing.assert_close(agent.head.weight, teacher_head.weight)
    assert not any(p.requires_grad for p in agent.head.parameters())
    assert all(p.requires_grad for p in agent.linear.parameters())
    torch.testing.assert_close(agent(q), teacher_head(agent.features(q)))
    with pytest.raises(ValueError, match="expected Linear"):
        Agent(latent_dim=12, feature_dim=5, num_classes=2, head=teacher_head)


def test_output_mode_head_is_trainable_identity() -> None:
    agent = Agent(latent_dim=12, feature_dim=2, num_classes=2, mode="output")
    assert all(p.requires_grad for p in agent.head.parameters())
    q = torch.randn(3, 12)
    torch.testing.assert_close(agent(q), agent.features(q))


def test_normalisation_round_trip() -> None:
    agent = Agent(latent_dim=4, feature_dim=3, num_classes=2)
    agent.set_normalization(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([2.0, 2.0, 0.0, 1.0]))
    q = torch.randn(2, 4)
    u = agent.normalize_latents(q)
    torch.testing.assert_close(agent.denormalize_latents(u), q)
    torch.testing.assert_close(agent.features(q), agent.features_from_normalized(u))
    assert float(agent.latent_std.min()) > 0  # zero std clamped
    plain = Agent(latent_dim=4, feature_dim=3, num_classes=2, normalize=False)
    plain.set_normalization(torch.ones(4), torch.full((4,), 2.0))
    torch.testing.assert_close(plain.normalize_latents(q), q)


def test_save_load_without_pickled_classes(tmp_path: Path) -> None:
    torch.manual_seed(1)
    agent = Agent(latent_dim=8, feature_dim=4, num_classes=2, head=nn.Linear(4, 2))
    agent.set_normalization(torch.randn(8), torch.rand(8) + 0.5)
    path = save_agent(agent, tmp_path / "a" / "agent.pt", extra={"objective": "L1", "hash": "abc"})
    payload = torch.load(path, weights_only=True)  # plain tensors / str / numbers only
    assert payload["config"]["mode"] == "feature"
    loaded, extra = load_agent(path)
    q = torch.randn(3, 8)
    torch.testing.assert_close(loaded(q), agent.eval()(q))
    assert extra == {"objective": "L1", "hash": "abc"} and not loaded.training
    assert not loaded.head.weight.requires_grad
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a diffexplainer agent"):
        load_agent(tmp_path / "other.pt")
