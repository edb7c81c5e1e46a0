"""distill_suite's gate cases: external + held-out rows, and the out-of-fold (cross-fitted) training rows."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from components.blackbox import from_module
from components.config import AgentConfig
from components.training.agent_suite import blackbox_targets, distill_suite

H = 8


class _Box(nn.Module):
    """A feature-mode black box on ``[N,4,8,8]`` stacks: features = a fixed linear map of the pixels."""

    head_name = "head"

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Linear(4 * H * H, 6)
        self.head = nn.Linear(6, 2)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(6, 4 * H * H, generator=g) / 8)
            self.proj.bias.zero_()
            self.head.weight.copy_(torch.randn(2, 6, generator=g))
            self.head.bias.copy_(torch.tensor([0.0, -1.0]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _stacks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stacks and 12-d 'latents': the box's 6 features and 6 noise dimensions (a linear agent can
    learn the box exactly from them)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, (n, 4, H, H)).astype(np.float32)
    with torch.no_grad():
        feats = _Box().features(torch.from_numpy(x)).numpy()
    return x, np.concatenate([feats, rng.normal(0, 1, (n, 6))], axis=1).astype(np.float32)


def test_crossfit_scores_every_training_row_out_of_fold() -> None:
    bb = from_module(_Box(), source="test box")
    x, q = _stacks(120, 0)
    xe, qe = _stacks(40, 1)
    xh, qh = _stacks(20, 2)
    folds = np.repeat(np.arange(4), 30)
    cfg = AgentConfig(epochs=5, report_objectives=["L1"], augmentations=[], val_fraction=0.2, seed=0)
    plain = distill_suite(bb, x, q, xe, qe, cfg, holdout=(xh, qh))
    crossed = distill_suite(bb, x, q, xe, qe, cfg, holdout=(xh, qh), crossfit_folds=folds)
    assert plain.gate_cases["cohort"].tolist() == ["external"] * 40 + ["holdout"] * 20
    cohort = crossed.gate_cases["cohort"]
    assert cohort.tolist() == ["external"] * 40 + ["holdout"] * 20 + ["crossfit"] * 120
    for key in ("teacher_decision", "agent_score", "kl"):
        assert len(crossed.gate_cases[key]) == 180
        # the cases the final agent scores are unchanged by the cross-fit
        np.testing.assert_allclose(crossed.gate_cases[key][:60], plain.gate_cases[key][:60], rtol=1e-6)
    teacher = (blackbox_targets(bb, x)["logits"].argmax(1) == 1).astype(int)
    np.testing.assert_array_equal(crossed.gate_cases["teacher_decision"][60:], teacher)
    # each fold's rows are decided by an agent that never saw them, yet agree with the teacher
    decided = crossed.gate_cases["agent_score"][60:] >= float(crossed.gate_cases["threshold"])
    assert 0 < teacher.sum() < len(teacher) and (decided == teacher).mean() > 0.9


def test_crossfit_with_a_single_fold_adds_no_cases() -> None:
    bb = from_module(_Box(), source="test box")
    x, q = _stacks(40, 0)
    xe, qe = _stacks(20, 1)
    cfg = AgentConfig(epochs=2, report_objectives=["L1"], augmentations=[], val_fraction=0.2, seed=0)
    suite = distill_suite(bb, x, q, xe, qe, cfg, crossfit_folds=np.zeros(40, int))
    assert suite.gate_cases["cohort"].tolist() == ["external"] * 20
    assert all(len(suite.gate_cases[k]) == 20 for k in ("teacher_decision", "agent_score", "kl"))
