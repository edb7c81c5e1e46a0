"""The current champion, re-scored on a challenger's evaluation cases (non-inferiority inputs).

Non-inferiority is decided on the *same* cases: the champion's DiffAE reconstructs the
challenger's external cohort (and decodes the same patients' z from the same prior x_T for the
semantic PSNR), the champion agent (on the champion DiffAE's latents) is scored against the
champion black box's decisions on the challenger's gate cases, and the champion's DiffAE, agent
and black box sweep the challenger's explained cases. Champion weights equal to the
challenger's (a cached DiffAE, an unchanged agent and teacher) are not re-run: their per-case
values are the challenger's, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from components.blackbox import BlackBox
from components.config import CounterfactualConfig
from components.counterfactual.criteria import per_case_manipulation
from components.counterfactual.sweep import run_sweep
from components.metrics.reconstruction_eval import gate_semantic_cases, reconstruct_cohort, score_reconstruction
from components.models.diffae import DiffAE
from components.training.agent_suite import blackbox_targets
from components.training.distill_agent import agent_scores
from components.training.latents import encode_latents
from registry.loaders import load_classifier, load_registered, weights_sha256
from registry.mlflow_registry import current_champion

__all__ = ["ChampionCases", "champion_version", "champion_reconstruction", "champion_agent", "champion_counterfactual"]


@dataclass
class ChampionCases:
    """Per-case values of the champion on the challenger's cases, or why there are none.

    Attributes:
        version: the champion's registry version (None: no champion).
        per_case: arrays on the challenger's cases (None: not compared).
        reason: why no comparison was made although a champion exists.
        same_blackbox: whether the champion's black box has the challenger's weights (None: not
            known or not asked).
    """

    version: str | None
    per_case: dict[str, Any] | None = None
    reason: str | None = None
    same_blackbox: bool | None = None


def champion_version(name: str) -> str | None:
    """The version behind ``name@champion``, or None."""
    return current_champion(name)


def champion_reconstruction(
    diffae_name: str, current: DiffAE, bb: BlackBox, images: np.ndarray, steps: int,
    current_per_case: dict[str, np.ndarray],
    semantic_cases: int = 0,
    seed: int = 0,
) -> ChampionCases:
    """The champion DiffAE's per-patient reconstruction values on ``images`` ``[N,4,H,W]``.

    Scored with the current black box so that only the DiffAE differs. With
    ``semantic_cases`` > 0 also ``semantic_psnr`` / ``semantic_ssim`` of the first patients,
    decoded from the same seeded prior x_T as the challenger's
    (:func:`components.metrics.reconstruction_eval.gate_semantic_cases`).
    """
    version = champion_version(diffae_name)
    if version is None:
        return ChampionCases(None)
    try:
        champ, _ = load_registered(diffae_name, version)
    except Exception as exc:  # noqa: BLE001 - any load failure is recorded, not fatal
        return ChampionCases(version, reason=f"champion DiffAE could not be loaded: {exc}")
    if not isinstance(champ, DiffAE):
        return ChampionCases(version, reason=f"champion is not a DiffAE ({type(champ).__name__})")
    if weights_sha256(champ) == weights_sha256(current):
        return ChampionCases(version, {k: np.asarray(v) for k, v in current_per_case.items()})
    print(f"[gate] champion DiffAE v{version}: reconstructing the same {len(images)} patients", flush=True)
    rec = reconstruct_cohort(champ.eval(), images, steps)
    per_case = score_reconstruction(bb, images, rec["recon"])["per_case"]
    per_case.update(gate_semantic_cases(champ, images, rec["q"], steps, semantic_cases, seed))
    return ChampionCases(version, per_case)


def champion_agent(
    agent_name: str, teacher_name: str, diffae_name: str, current_diffae: DiffAE, q_current: np.ndarray,
    images: np.ndarray,
    current_blackbox: BlackBox | None = None,
) -> ChampionCases:
    """The champion agent's scores and its black box's decisions on the gate cases.

    Args:
        agent_name / teacher_name / diffae_name: registered model names.
        current_diffae: the challenger's DiffAE (its latents ``q_current`` are reused when the
            champion DiffAE has the same weights).
        q_current: ``[M,2048]`` the challenger's latents of the gate cases.
        images: ``[M,4,H,W]`` the gate cases' stacks in [-1,1].
        current_blackbox: the challenger's black box, to record whether the champion's has the
            same weights (which margins apply: :meth:`GateConfig.margins`).

    Returns:
        per_case ``{teacher_decision, agent_score, agent_threshold}`` or a reason.
    """
    loaded = _champion_models(agent_name, teacher_name, diffae_name)
    if isinstance(loaded, ChampionCases):
        return loaded
    version, agent, threshold, bb, diffae = loaded
    if weights_sha256(diffae) == weights_sha256(current_diffae):
        q = np.asarray(q_current, np.float32)
    else:
        q = encode_latents(diffae.eval(), images)
    logits = blackbox_targets(bb, images)["logits"]
    same = None if current_blackbox is None else weights_sha256(bb.module) == weights_sha256(current_blackbox.module)
    return ChampionCases(version, {"teacher_decision": (logits.argmax(1) == 1).astype(np.int64),
                                   "agent_score": agent_scores(agent, q), "agent_threshold": threshold},
                         same_blackbox=same)



def _champion_models(
    agent_name: str, teacher_name: str, diffae_name: str
) -> tuple[str, torch.nn.Module, float, BlackBox, DiffAE] | ChampionCases:
    """``(agent version, agent, its threshold, black box, DiffAE)`` of the champion, or the
    :class:`ChampionCases` that says why there is nothing to compare with."""
    version = champion_version(agent_name)
    if version is None:
        return ChampionCases(None)
    try:
        agent, mv = load_registered(agent_name, version)
        threshold = float(mv.tags.get("agent_threshold", 0.5))
        teacher_version = champion_version(teacher_name)
        diffae_version = champion_version(diffae_name)
        if teacher_version is None or diffae_version is None:
            return ChampionCases(version, reason="champion agent without a champion teacher / DiffAE")
        bb = load_classifier(f"models:/{teacher_name}/{teacher_version}")
        diffae = cast(DiffAE, load_registered(diffae_name, diffae_version)[0])  # registered as a DiffAE
    except Exception as exc:  # noqa: BLE001 - recorded in the decision, not fatal
        return ChampionCases(version, reason=f"champion models could not be loaded: {exc}")
    return version, agent, threshold, bb, diffae


def champion_counterfactual(
    agent_name: str, teacher_name: str, diffae_name: str, current: tuple[DiffAE, torch.nn.Module, BlackBox],
    images: np.ndarray, cfg: CounterfactualConfig, current_per_case: dict[str, Any],
    precomputed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> ChampionCases:
    """The champion's counterfactual sweep on the challenger's explained cases.

    Args:
        agent_name / teacher_name / diffae_name: registered model names.
        current: the challenger's ``(DiffAE, agent, black box)``; when the champion's three
            have the same weights (state-dict hashes: a TorchScript classifier whose code
            changed but whose weights did not counts as the same), ``current_per_case`` is
            returned as the champion's.
        images: ``[K,4,H,W]`` in [-1,1], the challenger's explained cases (its selection).
        cfg: the challenger's sweep settings (alphas, steps, random control seed).
        current_per_case: the challenger's :func:`per_case_manipulation` on ``images``.
        precomputed: the challenger's ``(recon, x_T, q)`` of ``images``, reused when the
            champion's DiffAE has the same weights.

    Returns:
        per_case as :func:`components.counterfactual.criteria.per_case_manipulation` returns
        it (flips on the cases indeterminate for the champion's black box), or a reason;
        ``same_blackbox`` says whether the two black boxes' weights are equal (it selects the
        margins and how the flip gain is compared).
    """
    loaded = _champion_models(agent_name, teacher_name, diffae_name)
    if isinstance(loaded, ChampionCases):
        return loaded
    version, agent, _, bb, diffae = loaded
    cur_diffae, cur_agent, cur_bb = current
    same_diffae = weights_sha256(diffae) == weights_sha256(cur_diffae)
    same_bb = weights_sha256(bb.module) == weights_sha256(cur_bb.module)
    if same_diffae and same_bb and weights_sha256(agent) == weights_sha256(cur_agent):
        return ChampionCases(version, dict(current_per_case), same_blackbox=True)
    print(f"[counterfactual] champion agent v{version}: its own sweep on the same {len(images)} cases", flush=True)
    try:  # the gate uses the sweep's fixed alphas only: no alpha search
        sweep = run_sweep(diffae.eval(), agent.eval(), bb, torch.as_tensor(np.asarray(images, np.float32)), cfg,
                          search=False, precomputed=precomputed if same_diffae else None)
    except Exception as exc:  # noqa: BLE001 - recorded in the decision, not fatal
        return ChampionCases(version, reason=f"the champion's sweep failed: {type(exc).__name__}: {exc}",
                             same_blackbox=same_bb)
    return ChampionCases(version, dict(per_case_manipulation(sweep)), same_blackbox=same_bb)
