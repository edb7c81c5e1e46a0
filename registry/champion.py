"""The current champion, re-scored on a challenger's evaluation cases (non-inferiority inputs).

Non-inferiority is decided on the *same* cases: the champion's DiffAE reconstructs the
challenger's external cohort, and the champion agent (on the champion DiffAE's latents) is
scored against the champion black box's decisions on the challenger's gate cases. Champion
weights equal to the challenger's (a cached DiffAE) are not re-run: their per-case values are
the challenger's, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from components.blackbox import BlackBox
from components.metrics.reconstruction_eval import reconstruct_cohort, score_reconstruction
from components.models.diffae import DiffAE
from components.training.agent_suite import blackbox_targets
from components.training.distill_agent import agent_scores
from components.training.latents import encode_latents
from registry.loaders import load_classifier, load_registered, weights_sha256
from registry.mlflow_registry import current_champion

__all__ = ["ChampionCases", "champion_version", "champion_reconstruction", "champion_agent"]


@dataclass
class ChampionCases:
    """Per-case values of the champion on the challenger's cases, or why there are none.

    Attributes:
        version: the champion's registry version (None: no champion).
        per_case: arrays on the challenger's cases (None: not compared).
        reason: why no comparison was made although a champion exists.
    """

    version: str | None
    per_case: dict[str, Any] | None = None
    reason: str | None = None


def champion_version(name: str) -> str | None:
    """The version behind ``name@champion``, or None."""
    return current_champion(name)


def champion_reconstruction(
    diffae_name: str, current: DiffAE, bb: BlackBox, images: np.ndarray, steps: int,
    current_per_case: dict[str, np.ndarray],
) -> ChampionCases:
    """The champion DiffAE's per-patient reconstruction values on ``images`` ``[N,4,H,W]``.

    Scored with the current black box so that only the DiffAE differs.
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
    return ChampionCases(version, score_reconstruction(bb, images, rec["recon"])["per_case"])


def champion_agent(
    agent_name: str, teacher_name: str, diffae_name: str, current_diffae: DiffAE, q_current: np.ndarray,
    images: np.ndarray,
) -> ChampionCases:
    """The champion agent's scores and its black box's decisions on the gate cases.

    Args:
        agent_name / teacher_name / diffae_name: registered model names.
        current_diffae: the challenger's DiffAE (its latents ``q_current`` are reused when the
            champion DiffAE has the same weights).
        q_current: ``[M,2048]`` the challenger's latents of the gate cases.
        images: ``[M,4,H,W]`` the gate cases' stacks in [-1,1].

    Returns:
        per_case ``{teacher_decision, agent_score, agent_threshold}`` or a reason.
    """
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
    if weights_sha256(diffae) == weights_sha256(current_diffae):
        q = np.asarray(q_current, np.float32)
    else:
        q = encode_latents(diffae.eval(), images)
    logits = blackbox_targets(bb, images)["logits"]
    return ChampionCases(version, {"teacher_decision": (logits.argmax(1) == 1).astype(np.int64),
                                   "agent_score": agent_scores(agent, q), "agent_threshold": threshold})

