"""Distil agents for one black box under several objectives and report their alignment.

This is what both the training pipeline and ``swap-classifier`` run for a black box: black-box
targets on the training stacks (and on flipped / one-pixel-shifted copies, augmentations that
multiply the training pairs, DESIGN.md §5a), one agent per objective, and the alignment table
on the external cohort with the black box's decisions as ground truth (paper Table 1). The
agent gate's cases: the external cohort, held-out training patients and, optionally, every
training row scored out of fold by an agent of the same recipe that did not see its fold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import torch
from numpy.typing import ArrayLike

from components.blackbox import BlackBox
from components.config import AgentConfig
from components.errors import UserError
from components.metrics.classification import auc_along, f1_along, f1_threshold, prob_kl_per_case
from components.models.agent import Agent
from components.training.distill_agent import Objective, agent_scores, alignment_report, distill_agent
from components.training.latents import augment_stacks

__all__ = ["AgentSuite", "BlackBoxTargets", "blackbox_targets", "cohort_scores", "distill_suite"]


class BlackBoxTargets(TypedDict):
    """:func:`blackbox_targets`: ``logits [N,C]``; ``features [N,F]`` (None in output mode)."""

    logits: np.ndarray
    features: np.ndarray | None


@dataclass
class AgentSuite:
    """Agents per objective, their alignment reports and training metrics."""

    agents: dict[str, Agent]
    alignment: dict[str, dict[str, float]]
    training: dict[str, dict[str, Any]]
    primary: str
    gate_cases: dict[str, np.ndarray]
    """Per case of the gate's evaluation set (external cohort, held-out training rows and, with
    ``crossfit_folds``, every training row out of fold), for the primary agent:
    ``teacher_decision`` int ``[M]`` (0/1), ``agent_score`` ``[M]`` (P(positive); on ``crossfit``
    rows the fold agent's), ``agent_decision`` int ``[M]`` (0/1: ``agent_score`` at the deciding
    agent's own threshold), ``kl`` ``[M]`` (KL(black box ‖ agent)), ``cohort`` ``[M]``
    (``external`` | ``holdout`` | ``crossfit``) and ``threshold`` (0-d, the primary agent's
    decision threshold fixed in training)."""

    @property
    def agent(self) -> Agent:
        """The agent of the configured objective."""
        return self.agents[self.primary]


@torch.no_grad()
def blackbox_targets(bb: BlackBox, images: ArrayLike, batch_size: int = 64) -> BlackBoxTargets:
    """Black-box logits (and features in feature mode) on stacks.

    Args:
        bb: the black box.
        images: ``[N,4,H,W]`` float32 in [-1,1].
        batch_size: stacks per forward pass.

    Returns:
        ``{"logits": [N,C], "features": [N,F] or None}`` as float32 numpy arrays.
    """
    x = np.asarray(images, dtype=np.float32)
    logits: list[torch.Tensor] = []
    feats: list[torch.Tensor | None] = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.array(x[i : i + batch_size]))  # writable copy of a memmap slice
        logits.append(bb(xb).float())
        if bb.mode == "feature":
            f = bb.features(xb)
            feats.append(f.float() if f is not None else None)
    complete = [f for f in feats if f is not None]
    features = torch.cat(complete).numpy() if feats and len(complete) == len(feats) else None
    return {"logits": torch.cat(logits).numpy(), "features": features}


def distill_suite(
    bb: BlackBox,
    images_train: ArrayLike,
    q_train: ArrayLike,
    images_ext: ArrayLike,
    q_ext: ArrayLike,
    cfg: AgentConfig,
    q_train_aug: dict[str, ArrayLike] | None = None,
    progress: Callable[[float, str], None] | None = None,
    log_metrics: Callable[[dict[str, float], int], None] | None = None,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
    crossfit_folds: ArrayLike | None = None,
) -> AgentSuite:
    """Distil one agent per objective in ``cfg.report_objectives`` (+ ``cfg.objective``).

    Args:
        bb: the black box to mimic.
        images_train: ``[N,4,H,W]`` training stacks in [-1,1]; each augmentation in
            ``cfg.augmentations`` with latents in ``q_train_aug`` is scored by the black box too.
        q_train: ``[N,2048]`` DiffAE latents of ``images_train``.
        images_ext: ``[M,4,H,W]`` external stacks; ``q_ext``: their latents ``[M,2048]``.
        cfg: agent config.
        q_train_aug: augmentation name -> ``[N,2048]`` latents of the augmented training stacks
            (see :func:`components.training.latents.augment_stacks`).
        holdout: ``(images [K,4,H,W], q [K,2048])`` of training-cohort patients the agents are
            not fitted on; scored with the external cohort in ``gate_cases``.
        crossfit_folds: ``[N]`` patient fold id per training row: each fold is also scored by an
            agent of the primary objective distilled on the other folds (cohort ``crossfit`` in
            ``gate_cases``; see :func:`_crossfit_cases`). None = off.

    Returns:
        :class:`AgentSuite`. Output-mode black boxes (no features / head) give KL-only agents.
    """
    x_train = np.asarray(images_train, dtype=np.float32)
    targets = blackbox_targets(bb, x_train)
    q_aug, targets_aug = None, None
    names = [n for n in cfg.augmentations if q_train_aug and n in q_train_aug]
    if names and q_train_aug:  # blocks of N rows: row j augments training row j % N (distill_agent's convention)
        q_aug = np.concatenate([np.asarray(q_train_aug[n], dtype=np.float32) for n in names])
        per_aug = [blackbox_targets(bb, augment_stacks(x_train, n)) for n in names]
        targets_aug = {
            key: None if per_aug[0][key] is None else np.concatenate([t[key] for t in per_aug])
            for key in ("logits", "features")
        }
    ext_logits = blackbox_targets(bb, images_ext)["logits"]
    objectives = list(dict.fromkeys([cfg.objective, *cfg.report_objectives]))
    if bb.mode == "output":
        objectives = ["KL"]
    agents: dict[str, Agent] = {}
    alignment: dict[str, dict[str, float]] = {}
    training: dict[str, dict[str, Any]] = {}
    for objective in objectives:
        agent, metrics = distill_agent(
            q_train, targets, bb.head if bb.mode == "feature" else None, cfg, objective=objective,
            progress=progress, q_aug=q_aug, targets_aug=targets_aug, log_metrics=log_metrics,
        )
        agents[objective] = agent
        alignment[objective] = alignment_report(agent, q_ext, ext_logits)
        training[objective] = metrics
    primary = cfg.objective if cfg.objective in agents else objectives[0]
    q_gate, logits_gate, cohort = np.asarray(q_ext, np.float32), ext_logits, ["external"] * len(ext_logits)
    if holdout is not None and len(holdout[0]):
        q_gate = np.concatenate([q_gate, np.asarray(holdout[1], np.float32)])
        logits_gate = np.concatenate([logits_gate, blackbox_targets(bb, holdout[0])["logits"]])
        cohort += ["holdout"] * len(holdout[0])
    threshold = float(training[primary].get("decision_threshold", 0.5))
    extra = None
    if crossfit_folds is not None:
        extra = _crossfit_cases(np.asarray(q_train, np.float32), targets, q_aug, targets_aug, len(names),
                                np.asarray(crossfit_folds), bb, cfg, primary, progress)
        if cfg.threshold_rule == "crossfit_f1" and len(extra["teacher_decision"]):
            # every fit row scored by an agent of the same recipe that was not fitted on it: the pooled
            # F1-maximising threshold rests on all N rows instead of the 20 % epoch-selection rows
            threshold = f1_threshold(extra["teacher_decision"], extra["agent_score"])
            training[primary] |= {"decision_threshold": threshold, "decision_threshold_rows": len(extra["kl"])}
    training[primary]["decision_threshold_rule"] = (
        "crossfit_f1" if "decision_threshold_rows" in training[primary] else
        "half" if cfg.threshold_rule == "half" else "validation_f1")
    gate_cases = _gate_cases(agents[primary], q_gate, logits_gate, threshold)
    gate_cases["cohort"] = np.asarray(cohort)
    if extra is not None:
        for key in ("teacher_decision", "agent_score", "agent_decision", "kl"):
            gate_cases[key] = np.concatenate([gate_cases[key], extra[key]])
        gate_cases["cohort"] = np.concatenate([gate_cases["cohort"], np.full(len(extra["kl"]), "crossfit")])
    return AgentSuite(agents=agents, alignment=alignment, training=training, primary=primary, gate_cases=gate_cases)


def cohort_scores(gate_cases: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Point F1 (on ``agent_decision``) and AUC (on ``agent_score``) per cohort of
    :attr:`AgentSuite.gate_cases`: ``{"f1": {cohort: x}, "auc": {cohort: x}}``, cohorts present only."""
    out: dict[str, dict[str, float]] = {"f1": {}, "auc": {}}
    for c in ("external", "holdout", "crossfit"):
        m = gate_cases["cohort"] == c
        if m.any():
            y = gate_cases["teacher_decision"][m]
            out["f1"][c] = float(f1_along(y, gate_cases["agent_decision"][m], 0.5))
            out["auc"][c] = float(auc_along(y, gate_cases["agent_score"][m]))
    return out


def _crossfit_cases(
    q: np.ndarray, targets: BlackBoxTargets, q_aug: np.ndarray | None, targets_aug: dict[str, Any] | None,
    n_aug_blocks: int, folds: np.ndarray, bb: BlackBox, cfg: AgentConfig, objective: Objective,
    progress: Callable[[float, str], None] | None,
) -> dict[str, np.ndarray]:
    """Out-of-fold gate cases on the training rows: for each fold, an agent distilled (same recipe,
    ``objective``) on the other folds' rows and their augmentations scores that fold.

    Each fold's agent decides its fold at its own threshold ``t_k``, fixed from its own training
    rows (``agent_decision``); its scores are its own ``P(positive)`` (every agent is distilled to
    the same black box, so their probabilities share one scale; AUC is measured on them pooled).

    Returns:
        ``teacher_decision`` ``[N]`` int, ``agent_score`` ``[N]``, ``agent_decision`` ``[N]``
        int, ``kl`` ``[N]``, in training-row order; empty arrays when the rows hold fewer than
        two folds (nothing to fit a fold's agent on).
    """
    n = len(q)
    if folds.shape != (n,):
        raise UserError(f"crossfit_folds must give one fold per training row ({n}), got shape {list(folds.shape)}")
    ids = np.unique(folds)
    keys = ("teacher_decision", "agent_score", "agent_decision", "kl")
    if len(ids) < 2:
        return {k: np.zeros(0, np.int64 if "decision" in k else np.float64) for k in keys}
    out = {k: np.zeros(n, np.int64 if "decision" in k else np.float64) for k in keys}
    for i, fold in enumerate(ids):
        test = folds == fold
        train, train_aug = ~test, np.tile(~test, n_aug_blocks)
        if progress is not None:
            progress(i / len(ids), f"cross-fit: agent without fold {fold} ({int(train.sum())} rows)")
        sub: dict[str, np.ndarray | None] = {"logits": targets["logits"][train], "features": None
                                             if targets["features"] is None else targets["features"][train]}
        sub_aug = None if targets_aug is None else {k: None if v is None else v[train_aug] for k, v in targets_aug.items()}
        agent, info = distill_agent(q[train], sub, bb.head if bb.mode == "feature" else None, cfg, objective=objective,
                                    q_aug=None if q_aug is None else q_aug[train_aug], targets_aug=sub_aug)
        cases = _gate_cases(agent, q[test], targets["logits"][test], float(info.get("decision_threshold", 0.5)))
        for key in keys:
            out[key][test] = cases[key]
    return out


def _gate_cases(agent: Agent, q: np.ndarray, teacher_logits: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Per-case arrays of :attr:`AgentSuite.gate_cases` (positive class 1)."""
    score = agent_scores(agent, q)
    with torch.no_grad():
        a_prob = torch.softmax(agent(torch.as_tensor(q)).float(), dim=1).numpy()
    t_prob = torch.softmax(torch.as_tensor(teacher_logits).float(), dim=1).numpy()
    return {"teacher_decision": (t_prob.argmax(1) == 1).astype(np.int64), "agent_score": score,
            "agent_decision": (score >= threshold).astype(np.int64),
            "kl": prob_kl_per_case(t_prob, a_prob), "threshold": np.asarray(float(threshold))}
