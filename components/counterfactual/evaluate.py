"""Cohort-level evaluation of counterfactuals (paper §3.4-3.5) on the external cohort.

Select cases, run the sweep (with the random-direction control and the alpha search), score
the three criteria, and - on synthetic cohorts with planted masks - compare the DiffExplainer
difference map and the counterfactual attribution map (:mod:`.attribution`) with Grad-CAM,
Grad-CAM++, saliency, Integrated Gradients and occlusion on the same cases. Every evaluation
also says where each map's evidence lies (:mod:`.evidence`: lungs, outside the lungs and,
with masks, disease / distractor / marker / rest of the lungs) and raises a shortcut warning
when it lies mostly outside the lungs; without masks only the cheap maps (difference, random
direction, attribution) are computed for that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from components.config import CounterfactualConfig
from components.counterfactual.attribution import counterfactual_attribution, flip_counterfactual
from components.counterfactual.baselines import attribution_maps
from components.counterfactual.code_swap import decision_swap
from components.counterfactual.criteria import (
    manipulation_criterion,
    observable_criterion,
    reconstruction_criterion,
)
from components.counterfactual.decoding import teacher_probabilities
from components.counterfactual.evidence import evidence_shares
from components.counterfactual.localization import difference_relevance, localization_table
from components.counterfactual.protocols import AgentLike, BlackBoxLike, DiffAELike
from components.counterfactual.sweep import SweepResult, inversion_rows, run_sweep
from components.errors import UserError

__all__ = ["CohortEvaluation", "select_cases", "localization_maps", "random_baseline", "evaluate_cohort"]


@dataclass
class CohortEvaluation:
    """Result of :func:`evaluate_cohort`.

    Attributes:
        metrics: ``reconstruction``, ``observable``, ``counterfactual``, ``localization`` and
            ``evidence`` sections (plain JSON-ready values; ``localization`` is ``None``
            without masks).
        sweep: the sweep over the selected cases.
        case_index: ``[K]`` indices of the selected cases in the cohort arrays.
        maps: localisation maps of the selected cases, name -> ``[K,4,H,W]``.
        seconds: wall time.
    """

    metrics: dict[str, Any]
    sweep: SweepResult
    case_index: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0


def select_cases(teacher_probs: np.ndarray, cfg: CounterfactualConfig) -> np.ndarray:
    """Indices of up to ``cfg.max_cases`` cases.

    ``borderline``: the cases whose top teacher probability is nearest 0.5 (ties by index);
    ``first``: the first cases; ``random``: a seeded random subset. Returned sorted.
    """
    n = teacher_probs.shape[0]
    k = min(cfg.max_cases, n)
    if cfg.case_selection == "first":
        idx = np.arange(k)
    elif cfg.case_selection == "random":
        idx = np.random.default_rng(cfg.seed).choice(n, size=k, replace=False)
    else:
        idx = np.argsort(teacher_probs.max(axis=1), kind="stable")[:k]
    return np.sort(idx)


def random_baseline(sweep: SweepResult, healthy: int, chosen: np.ndarray | None) -> np.ndarray:
    """The random direction's counterfactuals that ``random_attribution`` starts from.

    Step-matched to the attribution map where the sweep decoded the random direction at every
    alpha (``random_control_alphas: all``): with the flip rule (``chosen``, the attribution's alpha
    index per case) each case's random counterfactual at the same alpha, otherwise all alphas (averaged
    as the attribution map averages them). With the largest alpha only (the demo's setting) that one
    step for every case: a larger step than the flip rule's on cases that flip early.

    Args:
        sweep: a two-class sweep with ``random_cf [K,2,A_r,4,H,W]``.
        healthy: the direction's class index.
        chosen: int ``[K]`` alpha indices into ``sweep.alphas``, or None (maps averaged over alphas).

    Returns:
        float32 ``[K,4,H,W]`` (one step per case) or ``[K,A_r,4,H,W]`` (averaged by the attribution).
    """
    assert sweep.random_cf is not None
    rand = np.asarray(sweep.random_cf[:, healthy])
    every_alpha = sweep.random_alphas is not None and np.array_equal(np.asarray(sweep.random_alphas),
                                                                     np.asarray(sweep.alphas))
    if chosen is None:
        return rand
    if every_alpha:
        return rand[np.arange(rand.shape[0]), chosen]
    return rand[:, -1]


def localization_maps(
    sweep: SweepResult, bb: BlackBoxLike, cfg: CounterfactualConfig, baselines: bool = True,
    skipped: dict[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Relevance maps ``[K,4,H,W]`` on the sweep's cases.

    ``diffexplainer``: ``|cf - recon|`` toward the healthy class (mean over alphas);
    ``random_direction``: its control; ``attribution`` (``cfg.attribution_map``): integrated
    gradients of the black box's disease margin from the healthy counterfactuals to the
    reconstruction (signed, logit units, positive = disease evidence the counterfactual
    removed; mean over alphas, or at each case's flipping alpha with ``cfg.attribution_alpha``
    = "flip"); ``random_attribution`` (with ``attribution`` and a random control): the same
    attribution from the random direction's counterfactuals (the method-matched control of the
    attribution map; its steps: :func:`random_baseline`); with ``baselines`` the teacher
    baselines for the disease class.
    With ``skipped`` a map that cannot be computed for this black box is left out and the
    reason recorded there (otherwise its error propagates).
    """
    healthy = cfg.healthy_class
    if sweep.n_classes != 2:
        raise ValueError("localisation assumes two classes (healthy vs disease)")
    maps = {"diffexplainer": difference_relevance(sweep.counterfactuals[:, healthy], sweep.recon)}
    if sweep.random_cf is not None:
        maps["random_direction"] = difference_relevance(sweep.random_cf[:, healthy], sweep.recon)
    if cfg.attribution_map:
        baseline = sweep.counterfactuals[:, healthy]  # [K,A,4,H,W]: every alpha, maps averaged
        chosen: np.ndarray | None = None  # the flip rule's alpha index per case
        if cfg.attribution_alpha == "flip":  # the minimal counterfactual of each case: one map per case
            baseline, chosen = flip_counterfactual(baseline, sweep.teacher_cf[:, healthy], healthy)
        try:
            maps["attribution"] = counterfactual_attribution(
                bb, sweep.recon, baseline, healthy, cfg.attribution_steps, cfg.attribution_batch_size)
            if sweep.random_cf is not None:
                maps["random_attribution"] = counterfactual_attribution(
                    bb, sweep.recon, random_baseline(sweep, healthy, chosen), healthy, cfg.attribution_steps,
                    cfg.attribution_batch_size)
        except (UserError, RuntimeError) as exc:  # e.g. no module to differentiate: skip it, say why
            if skipped is None:
                raise
            skipped["attribution"] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    if baselines:
        x = torch.as_tensor(sweep.original)
        maps.update(attribution_maps(bb, x, 1 - healthy, cfg, skipped=skipped))
    return maps


def evaluate_cohort(
    model: DiffAELike,
    agent: AgentLike,
    bb: BlackBoxLike,
    images: np.ndarray,
    lung_masks: np.ndarray,
    cfg: CounterfactualConfig,
    masks: np.ndarray | None = None,
    inversions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
    distractor: np.ndarray | None = None,
    marker: np.ndarray | None = None,
) -> CohortEvaluation:
    """Evaluate counterfactual explanations on a cohort.

    Args:
        model: DiffAE (eval mode).
        agent: agent ``[B,4Z] -> [B,C]``.
        bb: teacher ``[B,4,H,W] -> [B,C]`` (eval mode).
        images: ``[N,4,H,W]`` in [-1,1].
        lung_masks: ``[N,4,H,W]`` nonzero inside the lungs.
        cfg: the counterfactual section of the run config.
        masks: ``[N,4,H,W]`` planted disease fraction in [0,1] (synthetic cohorts), or None.
        inversions: ``(recon [N,4,H,W], x_T [N,4,H,W], q [N,4Z])`` of the whole cohort from an
            earlier DDIM inversion with this model and ``cfg.ddim_steps`` (the reconstruction
            gate's), reused for the selected cases instead of inverting them again.
        progress: optional callback, one line per phase (see :func:`.sweep.run_sweep`).
        distractor: ``[N,4,H,W]`` planted distractor fraction in [0,1], or None.
        marker: ``[N,4,H,W]`` planted shortcut-marker fraction in [0,1], or None.

    Returns:
        :class:`CohortEvaluation`; ``metrics["counterfactual"]`` carries ``flip_rate``,
        ``random_control_flip_rate``, ``monotonicity_spearman``, ``direction_agreement``,
        ``n_cases`` and ``nfe_per_patient`` (mean encoder + UNet evaluations per patient), and
        with ``inversions`` the code-swap test on the cohort's first ``cfg.code_swap_cases``
        patients (``code_swap``: the share of the black box's decision that follows ``z``).
        ``metrics["evidence"]``: map name -> shares of its evidence (``lungs``,
        ``outside_lungs``, ``disease``, ``distractor``, ``marker``, ``rest_of_lungs``; None
        where no mask), ``shortcut_warning`` and ``n_cases`` (:func:`.evidence.evidence_shares`).
    """
    start = time.perf_counter()
    x_all = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    probs = teacher_probabilities(bb, x_all, cfg.batch_size).numpy()
    idx = select_cases(probs, cfg)
    pre = None if inversions is None else inversion_rows(inversions, idx)
    if progress is not None:
        progress(f"{len(idx)} {cfg.case_selection} cases of {len(x_all)}")
    sweep = run_sweep(model, agent, bb, x_all[idx], cfg, precomputed=pre, progress=progress)
    lungs = np.asarray(lung_masks)[idx]

    manip = manipulation_criterion(sweep)
    nfe = [c.as_dict() for c in sweep.nfe]
    manip["nfe_per_patient"] = float(np.mean([c["diffae_total"] for c in nfe]))
    manip["nfe_breakdown_mean"] = {k: float(np.mean([c[k] for c in nfe])) for k in nfe[0]}
    manip["alphas"] = [float(a) for a in sweep.alphas]
    manip["normalized_direction"] = cfg.normalized_direction

    if inversions is not None and cfg.code_swap_cases > 0 and sweep.n_classes == 2:
        k = min(cfg.code_swap_cases, len(x_all))
        if k >= 3:
            if progress is not None:
                progress(f"code-swap test: {k} patients x 2 derangements, {cfg.code_swap_steps} DDIM steps")
            recon_all, x_t_all, q_all = (np.asarray(a)[:k] for a in inversions)
            manip["code_swap"] = decision_swap(model, bb, recon_all, x_t_all, q_all, cfg.code_swap_steps,
                                               seed=cfg.seed, batch_size=cfg.batch_size)

    localization = None
    evidence = None
    skipped: dict[str, str] = {}  # maps that cannot run on this black box, with the reason
    if sweep.n_classes == 2:  # the maps move toward "healthy": two classes only (evidence None otherwise)
        if progress is not None:
            extra = f", {', '.join(cfg.baselines)}" if masks is not None else ""
            progress(f"relevance maps: diffexplainer, random direction"
                     f"{', attribution and its random-direction control' if cfg.attribution_map else ''}{extra}")
        maps = localization_maps(sweep, bb, cfg, baselines=masks is not None, skipped=skipped)
    else:
        maps = {}
        skipped["all maps"] = f"{sweep.n_classes} classes: the maps move toward the healthy class (two classes only)"
    if masks is not None and maps:
        localization = localization_table(
            maps, np.asarray(masks)[idx], lungs, cfg.mask_threshold, cfg.pointing_tolerance_px
        )
    if maps:
        parts = {"disease": masks, "distractor": distractor, "marker": marker}
        evidence = evidence_shares(maps, lungs, {k: np.asarray(v)[idx] for k, v in parts.items() if v is not None},
                                   cfg.shortcut_outside_share_max)
    metrics: dict[str, Any] = {
        "reconstruction": reconstruction_criterion(sweep),
        "observable": observable_criterion(sweep, lungs, cfg.change_threshold),
        "counterfactual": manip,
        "localization": localization,
        "evidence": evidence,
        "maps_skipped": skipped or None,
    }
    return CohortEvaluation(metrics, sweep, idx, maps, time.perf_counter() - start)
