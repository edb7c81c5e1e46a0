"""The champion re-scored on a challenger's cases (non-inferiority inputs), on a real MLflow registry."""

from __future__ import annotations

import copy
import uuid

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from components.blackbox import from_module
from components.config import CounterfactualConfig, DiffAEConfig
from components.counterfactual.criteria import per_case_manipulation
from components.counterfactual.sweep import run_sweep
from components.models.agent import Agent
from components.models.diffae import DiffAE, build_diffae
from components.training.latents import encode_latents
from registry.champion import champion_agent, champion_counterfactual, champion_reconstruction
from registry.mlflow_registry import CHAMPION, register_model
from steps.tracking import step_run

TINY = DiffAEConfig(image_size=16, base_channels=8, channel_mults=[1, 2], num_res_blocks=1, attention_resolutions=[8],
                    z_dim=16, encoder_channels=4, timesteps=50, ddim_steps=2, inversion_fixed_point_iters=0,
                    device="cpu", seed=0)


class _Stack(torch.nn.Module):
    """A tiny feature-mode black box on [B,4,16,16]."""

    head_name = "head"

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                                        torch.nn.Flatten())
        self.head = torch.nn.Linear(4, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _champion(model: torch.nn.Module, name: str, tags: dict[str, str] | None = None) -> str:
    with step_run("champion-test", "train", tags={"stage": "test"}) as run:
        mlflow.log_metric("x", 1.0)
    version = register_model(model, name, run.info.run_id, tags or {})
    MlflowClient().set_registered_model_alias(name, CHAMPION, version)
    return version


def _champion_trio(agent_tags: dict[str, str] | None = None) -> tuple[
    DiffAE, _Stack, Agent, dict[str, str], str
]:
    """A seeded tiny DiffAE, teacher and agent, each registered as champion under fresh names;
    returns them, the names and the agent's version."""
    torch.manual_seed(0)
    diffae, teacher = build_diffae(TINY).eval(), _Stack().eval()
    agent = Agent(latent_dim=4 * TINY.z_dim, feature_dim=4, num_classes=2, head=teacher.head).eval()
    suffix = uuid.uuid4().hex[:6]
    names = {k: f"{k}-{suffix}" for k in ("agent", "teacher", "diffae")}
    _champion(diffae, names["diffae"])
    _champion(teacher, names["teacher"])
    return diffae, teacher, agent, names, _champion(agent, names["agent"], agent_tags)


@pytest.fixture()
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (5, 4, 16, 16)).astype(np.float32)


def test_no_champion_means_no_comparison(images: np.ndarray) -> None:
    torch.manual_seed(0)
    res = champion_reconstruction(f"d-{uuid.uuid4().hex[:6]}", build_diffae(TINY).eval(), from_module(_Stack()),
                                  images, 2, {"psnr": np.zeros(5)})
    assert res.version is None and res.per_case is None and res.reason is None


def test_champion_diffae_same_weights_reuses_and_other_weights_reconstruct(images: np.ndarray) -> None:
    torch.manual_seed(0)
    champion = build_diffae(TINY).eval()
    name = f"d-{uuid.uuid4().hex[:6]}"
    version = _champion(champion, name)
    bb = from_module(_Stack())
    mine = {"psnr": np.full(5, 40.0), "ssim": np.ones(5), "decision_kept": np.ones(5)}
    same = champion_reconstruction(name, champion, bb, images, 2, mine)
    assert same.per_case is not None
    assert same.version == version and same.per_case["psnr"].tolist() == [40.0] * 5  # same weights: exact reuse
    torch.manual_seed(1)
    other = champion_reconstruction(name, build_diffae(TINY).eval(), bb, images, 2, mine)
    assert other.per_case is not None
    assert other.version == version and other.per_case["psnr"].shape == (5,)
    assert not np.allclose(other.per_case["psnr"], 40.0)  # really re-reconstructed by the champion
    assert "semantic_psnr" not in other.per_case
    semantic = champion_reconstruction(name, build_diffae(TINY).eval(), bb, images, 2, mine, semantic_cases=3)
    assert semantic.per_case is not None
    assert semantic.per_case["semantic_psnr"].shape == (3,) and semantic.per_case["psnr"].shape == (5,)


def test_champion_agent_scores_its_own_black_box_on_the_challenger_cases(images: np.ndarray) -> None:
    diffae, teacher, agent, names, version = _champion_trio({"agent_threshold": "0.4"})
    q = encode_latents(diffae, images)
    res = champion_agent(names["agent"], names["teacher"], names["diffae"], diffae, q, images)
    assert res.version == version and res.reason is None and res.per_case is not None
    assert res.per_case["agent_threshold"] == pytest.approx(0.4)
    with torch.no_grad():
        expect = torch.softmax(agent(torch.as_tensor(q)), 1)[:, 1].numpy()
        decision = (teacher(torch.as_tensor(images)).argmax(1) == 1).numpy().astype(int)
    assert np.allclose(res.per_case["agent_score"], expect, atol=1e-6)
    assert res.per_case["teacher_decision"].tolist() == decision.tolist()
    assert res.same_blackbox is None  # not asked
    same = champion_agent(names["agent"], names["teacher"], names["diffae"], diffae, q, images,
                          current_blackbox=from_module(copy.deepcopy(teacher)))
    assert same.same_blackbox is True
    changed = copy.deepcopy(teacher)
    with torch.no_grad():
        next(changed.parameters()).add_(0.01)
    assert champion_agent(names["agent"], names["teacher"], names["diffae"], diffae, q, images,
                          current_blackbox=from_module(changed)).same_blackbox is False
    # a champion agent without a champion teacher is recorded, not fatal
    lonely = f"agent-{uuid.uuid4().hex[:6]}"
    _champion(agent, lonely)
    reason = champion_agent(lonely, "nope", names["diffae"], diffae, q, images).reason
    assert reason is not None and "without a champion teacher" in reason


def test_champion_counterfactual_reuses_identical_weights_and_sweeps_its_own_models_otherwise(
    images: np.ndarray,
) -> None:
    diffae, teacher, agent, names, version = _champion_trio()
    cfg = CounterfactualConfig(alphas=[0.5, 1.0], ddim_steps=2, batch_size=8, search_max_evals=0)
    bb = from_module(teacher)
    mine = {"direction_agreement": np.full(5, 0.25), "flips": np.ones(2), "random_flips": np.zeros(2),
            "flip_cases": np.arange(2)}
    same = champion_counterfactual(names["agent"], names["teacher"], names["diffae"], (diffae, agent, bb), images,
                                   cfg, mine)
    assert same.version == version and same.per_case is not None
    assert same.per_case["direction_agreement"].tolist() == [0.25] * 5  # reused, not re-swept
    torch.manual_seed(1)
    challenger = Agent(latent_dim=4 * TINY.z_dim, feature_dim=4, num_classes=2, head=teacher.head).eval()
    res = champion_counterfactual(names["agent"], names["teacher"], names["diffae"], (diffae, challenger, bb),
                                  images, cfg, mine)
    assert res.version == version and res.reason is None and res.per_case is not None
    expect = per_case_manipulation(run_sweep(diffae, agent, bb, torch.as_tensor(images), cfg))
    assert np.allclose(res.per_case["direction_agreement"], expect["direction_agreement"])
    assert res.per_case["flip_cases"].tolist() == expect["flip_cases"].tolist()
    assert not np.allclose(res.per_case["direction_agreement"], 0.25)
    assert same.same_blackbox is True and res.same_blackbox is True  # only the agent differs
    # a retrained black box (other weights): its own sweep, flagged as changed for the margins
    retrained = copy.deepcopy(teacher)
    with torch.no_grad():
        next(retrained.parameters()).add_(0.1)
    other = champion_counterfactual(names["agent"], names["teacher"], names["diffae"],
                                    (diffae, agent, from_module(retrained)), images, cfg, mine)
    assert other.same_blackbox is False and other.per_case is not None
    assert np.allclose(other.per_case["direction_agreement"], expect["direction_agreement"])
