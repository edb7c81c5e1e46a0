"""distill_suite's gate cases: external + held-out rows, and the out-of-fold (cross-fitted) training rows."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from components.blackbox import from_module
from components.config import AgentConfig
from components.training.agent_suite import blackbox_targets, cohort_scores, distill_suite

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
    for key in ("teacher_decision", "agent_score", "agent_decision", "kl"):
        assert len(crossed.gate_cases[key]) == 180
        # the cases the final agent scores are unchanged by the cross-fit
        np.testing.assert_allclose(crossed.gate_cases[key][:60], plain.gate_cases[key][:60], rtol=1e-6)
    teacher = (blackbox_targets(bb, x)["logits"].argmax(1) == 1).astype(int)
    np.testing.assert_array_equal(crossed.gate_cases["teacher_decision"][60:], teacher)
    # each fold's rows are decided by an agent that never saw them, yet agree with the teacher
    decided = crossed.gate_cases["agent_decision"][60:] == 1
    assert 0 < teacher.sum() < len(teacher) and (decided == teacher).mean() > 0.9
    per_cohort = cohort_scores(crossed.gate_cases)
    assert set(per_cohort["f1"]) == {"external", "holdout", "crossfit"} and set(per_cohort["auc"]) == set(per_cohort["f1"])
    tp = int((decided & (teacher == 1)).sum())
    assert per_cohort["f1"]["crossfit"] == 2 * tp / (decided.sum() + teacher.sum())


def test_crossfit_with_a_single_fold_adds_no_cases() -> None:
    bb = from_module(_Box(), source="test box")
    x, q = _stacks(40, 0)
    xe, qe = _stacks(20, 1)
    cfg = AgentConfig(epochs=2, report_objectives=["L1"], augmentations=[], val_fraction=0.2, seed=0)
    suite = distill_suite(bb, x, q, xe, qe, cfg, crossfit_folds=np.zeros(40, int))
    assert suite.gate_cases["cohort"].tolist() == ["external"] * 20
    assert all(len(suite.gate_cases[k]) == 20 for k in ("teacher_decision", "agent_score", "agent_decision", "kl"))


def test_crossfit_agents_never_see_their_fold_and_decide_at_their_own_threshold(monkeypatch) -> None:
    """A spy on distill_agent: each fold agent's rows (originals and the flip block) exclude its fold,
    the flip block stays aligned with the original rows, and each fold is scored and decided by its
    own agent at that agent's threshold."""
    import components.training.agent_suite as suite_mod
    from components.training.distill_agent import agent_scores

    bb = from_module(_Box(), source="test box")
    x, q = _stacks(90, 0)
    q_flip = _stacks(90, 5)[1]  # any latents: only their identity matters here
    xe, qe = _stacks(20, 1)
    folds = np.random.default_rng(3).permutation(np.repeat(np.arange(3), 30))
    row_of = {q[i].tobytes(): i for i in range(90)}
    flip_row_of = {q_flip[i].tobytes(): i for i in range(90)}
    calls: list[dict] = []
    real = suite_mod.distill_agent

    def spy(q_train, targets, head, cfg, **kw):
        agent, info = real(q_train, targets, head, cfg, **kw)
        calls.append({"rows": [row_of[r.tobytes()] for r in np.asarray(q_train)],
                      "aug_rows": [flip_row_of[r.tobytes()] for r in np.asarray(kw["q_aug"])],
                      "agent": agent, "threshold": float(info["decision_threshold"])})
        return agent, info

    monkeypatch.setattr(suite_mod, "distill_agent", spy)
    cfg = AgentConfig(epochs=3, report_objectives=["L1"], augmentations=["flip"], val_fraction=0.2, seed=0)
    suite = distill_suite(bb, x, q, xe, qe, cfg, q_train_aug={"flip": q_flip}, crossfit_folds=folds)
    assert len(calls) == 4  # the final agent, then one per fold
    assert sorted(calls[0]["rows"]) == list(range(90))
    cases = suite.gate_cases
    crossed = cases["cohort"] == "crossfit"
    for fold, call in zip(range(3), calls[1:], strict=True):
        expected = np.flatnonzero(folds != fold).tolist()
        assert call["rows"] == expected and call["aug_rows"] == expected  # no fold row, blocks aligned
        own = agent_scores(call["agent"], q[folds == fold])
        np.testing.assert_allclose(cases["agent_score"][crossed][folds == fold], own, rtol=1e-6)
        np.testing.assert_array_equal(cases["agent_decision"][crossed][folds == fold], own >= call["threshold"])
    assert len({round(c["threshold"], 6) for c in calls}) > 1  # the per-case decisions matter: thresholds differ


def test_crossfit_f1_threshold_is_fixed_from_the_pooled_out_of_fold_scores() -> None:
    from components.metrics.classification import f1_threshold

    bb = from_module(_Box(), source="test box")
    x, q = _stacks(120, 0)
    xe, qe = _stacks(40, 1)
    folds = np.repeat(np.arange(4), 30)
    base = {"epochs": 5, "report_objectives": ["L1"], "augmentations": [], "val_fraction": 0.2, "seed": 0}
    pooled = distill_suite(bb, x, q, xe, qe, AgentConfig(**base, threshold_rule="crossfit_f1"), crossfit_folds=folds)
    plain = distill_suite(bb, x, q, xe, qe, AgentConfig(**base), crossfit_folds=folds)
    cases, crossed = pooled.gate_cases, pooled.gate_cases["cohort"] == "crossfit"
    expect = f1_threshold(cases["teacher_decision"][crossed], cases["agent_score"][crossed])
    assert float(cases["threshold"]) == expect
    info = pooled.training[pooled.primary]
    assert info["decision_threshold_rule"] == "crossfit_f1" and info["decision_threshold_rows"] == 120
    # the same agents and the same out-of-fold cases: only the final agent's threshold moved
    np.testing.assert_allclose(cases["agent_score"], plain.gate_cases["agent_score"], rtol=1e-6)
    np.testing.assert_array_equal(cases["agent_decision"][crossed], plain.gate_cases["agent_decision"][crossed])
    ext = ~crossed
    np.testing.assert_array_equal(cases["agent_decision"][ext], cases["agent_score"][ext] >= expect)
    assert plain.training[plain.primary]["decision_threshold_rule"] == "validation_f1"
    # without cross-fit there are no pooled scores: the epoch-selection rows decide, and the record says so
    alone = distill_suite(bb, x, q, xe, qe, AgentConfig(**base, threshold_rule="crossfit_f1"))
    assert alone.training[alone.primary]["decision_threshold_rule"] == "validation_f1"
    assert float(alone.gate_cases["threshold"]) == float(plain.gate_cases["threshold"])
