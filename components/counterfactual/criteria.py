"""The paper's three evaluation criteria (§3.4) on a :class:`~.sweep.SweepResult`.

1. Reconstruction: is ``I'_q`` faithful to ``I_q`` (PSNR / SSIM, teacher agreement)?
2. Observable: are the edits visible, and are they inside the lungs?
3. Manipulation: does the teacher follow the agent's edit (direction agreement, flips on
   indeterminate cases, monotonicity in alpha), each beside a random-direction control of the
   same step size, which should not flip.

Flips are counted against the reconstruction's teacher decision, not the original's: the
reconstruction itself shifts borderline decisions (DESIGN.md §5a).
"""

from __future__ import annotations

import warnings
from typing import Any, TypedDict

import numpy as np
from scipy.stats import spearmanr

from components.counterfactual.sweep import SweepResult
from components.metrics.classification import prob_kl
from components.metrics.image_quality import image_quality

__all__ = [
    "reconstruction_criterion",
    "observable_criterion",
    "manipulation_criterion",
    "per_case_manipulation",
    "PerCaseManipulation",
    "nan_to_none",
]


class PerCaseManipulation(TypedDict):
    """:func:`per_case_manipulation`'s arrays (``random_flips`` None without a random control)."""

    direction_agreement: np.ndarray
    flips: np.ndarray
    random_flips: np.ndarray | None
    flip_cases: np.ndarray


def nan_to_none(value: float | None) -> float | None:
    """``float`` or ``None`` for nan / missing (JSON has no nan)."""
    if value is None:
        return None
    value = float(value)
    return None if not np.isfinite(value) else value


def _nanmean(values: list[float] | np.ndarray) -> float | None:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def reconstruction_criterion(sweep: SweepResult) -> dict[str, float | None]:
    """Criterion 1: fidelity of ``I'_q`` to ``I_q``.

    Returns:
        ``psnr`` (dB), ``ssim``, ``teacher_kl`` (mean KL(teacher(I_q) || teacher(I'_q))),
        ``teacher_score_change`` (mean |delta P(class 1)|), ``decision_kept`` (fraction of
        patients whose teacher decision is the same), ``n_patients``.
    """
    psnr, ssim = image_quality(sweep.original, sweep.recon)
    t_o, t_r = sweep.teacher_original, sweep.teacher_recon
    return {
        "psnr": nan_to_none(psnr),
        "ssim": nan_to_none(ssim),
        "teacher_kl": nan_to_none(prob_kl(t_o, t_r)),
        "teacher_score_change": nan_to_none(np.abs(t_r[:, 1] - t_o[:, 1]).mean()),
        "decision_kept": nan_to_none((t_o.argmax(1) == t_r.argmax(1)).mean()),
        "n_patients": int(t_o.shape[0]),
    }


def _change_stats(diff: np.ndarray, lungs: np.ndarray, threshold: float) -> dict[str, float | None]:
    """``diff [N,...,4,H,W]``, ``lungs [N,4,H,W]`` bool broadcast over the middle axes."""
    inside = np.broadcast_to(lungs.reshape(lungs.shape[0], *([1] * (diff.ndim - 4)), *lungs.shape[1:]), diff.shape)
    mag = np.abs(diff)
    changed = mag > threshold

    def frac(mask: np.ndarray, values: np.ndarray) -> float | None:
        return float(values[mask].mean()) if mask.any() else None

    stats = {
        "changed_fraction_inside": frac(inside, changed),
        "changed_fraction_outside": frac(~inside, changed),
        "mean_abs_change_inside": frac(inside, mag),
        "mean_abs_change_outside": frac(~inside, mag),
    }
    a, b = stats["mean_abs_change_inside"], stats["mean_abs_change_outside"]
    stats["inside_outside_ratio"] = nan_to_none(a / b) if a is not None and b else None
    return stats


def observable_criterion(
    sweep: SweepResult, lung_masks: np.ndarray, change_threshold: float
) -> dict[str, object]:
    """Criterion 2: how much of each slice the counterfactual changes, inside vs outside lungs.

    Args:
        sweep: the sweep.
        lung_masks: ``[N,4,H,W]`` nonzero inside the lungs.
        change_threshold: ``|cf - recon|`` above this (in [-1,1] units) counts as changed.

    Returns:
        Changed-pixel fractions and mean ``|cf - recon|`` inside / outside the lungs over all
        directions and alphas, ``per_alpha`` lists of the same, and ``random_control``.
    """
    lungs = np.asarray(lung_masks) > 0
    diff = sweep.counterfactuals - sweep.recon[:, None, None]
    out: dict[str, object] = dict(_change_stats(diff, lungs, change_threshold))
    per_alpha = [_change_stats(diff[:, :, a], lungs, change_threshold) for a in range(diff.shape[2])]
    out["per_alpha"] = {k: [s[k] for s in per_alpha] for k in per_alpha[0]}
    out["change_threshold"] = change_threshold
    if sweep.random_cf is not None:
        out["random_control"] = _change_stats(sweep.random_cf - sweep.recon[:, None, None], lungs, change_threshold)
    return out


def _flips(teacher: np.ndarray, recon_decision: np.ndarray, cases: np.ndarray) -> list[float]:
    """For each case, 1.0 if the teacher's decision reaches the class opposite the
    reconstruction's decision at any alpha along that class's direction."""
    out = []
    for n in cases:
        for d in range(teacher.shape[1]):
            if d == recon_decision[n]:
                continue
            out.append(float((teacher[n, d].argmax(-1) == d).any()))
    return out


def _agreement(teacher: np.ndarray, agent: np.ndarray, t0: np.ndarray, a0: np.ndarray) -> float | None:
    """Fraction of (case, direction, alpha) where the teacher's score of the direction's class
    moves (strictly) the same way as the agent's, both relative to alpha = 0."""
    n, d_cls = teacher.shape[:2]
    idx = np.arange(d_cls)
    dt = teacher[:, idx, :, idx].transpose(1, 0, 2) - t0[:, :, None]  # [N,D,A]
    da = agent[:, idx, :, idx].transpose(1, 0, 2) - a0[:, :, None]
    agree = (np.sign(dt) == np.sign(da)) & (dt != 0)
    return float(agree.mean()) if agree.size else None


def per_case_manipulation(sweep: SweepResult) -> PerCaseManipulation:
    """Per-case evidence of criterion 3, what the counterfactual gate's bootstrap resamples.

    Returns:
        ``direction_agreement`` float64 ``[N]`` (per case, the fraction of (direction, alpha)
        where the teacher's score of the direction's class moves strictly the way the
        agent's does), ``flips`` / ``random_flips`` float64 ``[M]`` over the M indeterminate
        cases (1.0 if that direction flips the reconstruction's decision at some alpha;
        ``random_flips`` None without a random control; paired with ``flips``) and
        ``flip_cases`` int ``[M]`` (their indices in the sweep).
    """
    t0, a0 = sweep.teacher_recon, sweep.agent_q
    idx = np.arange(sweep.teacher_cf.shape[1])
    dt = sweep.teacher_cf[:, idx, :, idx].transpose(1, 0, 2) - t0[:, :, None]  # [N,D,A]
    da = sweep.agent_cf[:, idx, :, idx].transpose(1, 0, 2) - a0[:, :, None]
    agree = ((np.sign(dt) == np.sign(da)) & (dt != 0)).reshape(len(t0), -1).mean(axis=1)
    decision = t0.argmax(1)
    indet = np.flatnonzero(sweep.indeterminate)
    # one opposite direction per case with two classes; C > 2: mean over the other classes
    flips = np.array([np.mean(_flips(sweep.teacher_cf, decision, np.array([n]))) for n in indet], dtype=np.float64)
    random_flips = None
    if sweep.teacher_random is not None:
        random_flips = np.array([np.mean(_flips(sweep.teacher_random, decision, np.array([n]))) for n in indet],
                                dtype=np.float64)
    return {"direction_agreement": agree.astype(np.float64), "flips": flips, "random_flips": random_flips,
            "flip_cases": indet}


def _spearman(alphas: np.ndarray, teacher: np.ndarray, t0: np.ndarray) -> list[float]:
    """Per (case, direction): Spearman of the teacher's score of that class vs alpha (0 = recon)."""
    x = np.concatenate([[0.0], alphas])
    rhos = []
    for n in range(teacher.shape[0]):
        for d in range(teacher.shape[1]):
            y = np.concatenate([[t0[n, d]], teacher[n, d, :, d]])
            if np.ptp(y) == 0:
                rhos.append(float("nan"))
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rhos.append(float(spearmanr(x, y).statistic))
    return rhos


def manipulation_criterion(sweep: SweepResult) -> dict[str, Any]:
    """Criterion 3: does the teacher follow the agent's edit?

    Returns:
        ``direction_agreement``, ``flip_rate`` (indeterminate cases; any alpha of the sweep
        reaching the class opposite the reconstruction's decision), ``flip_rate_all_cases``,
        ``monotonicity_spearman`` (mean) and ``monotonicity_spearman_median``, each with a
        ``random_control_*`` twin (``None`` without a control), ``n_cases``,
        ``n_indeterminate`` and an alpha-``search`` summary. Undefined values are ``None``.
    """
    t0, a0 = sweep.teacher_recon, sweep.agent_q
    decision = t0.argmax(1)
    indet = np.flatnonzero(sweep.indeterminate)
    every = np.arange(t0.shape[0])
    rho = _spearman(sweep.alphas, sweep.teacher_cf, t0)
    out: dict[str, Any] = {
        "n_cases": int(t0.shape[0]),
        "n_indeterminate": int(indet.size),
        "direction_agreement": _agreement(sweep.teacher_cf, sweep.agent_cf, t0, a0),
        "flip_rate": _nanmean(_flips(sweep.teacher_cf, decision, indet)),
        "flip_rate_all_cases": _nanmean(_flips(sweep.teacher_cf, decision, every)),
        "monotonicity_spearman": _nanmean(rho),
        "monotonicity_spearman_median": nan_to_none(np.nanmedian(rho)) if np.isfinite(rho).any() else None,
    }
    rnd_t, rnd_a = sweep.teacher_random, sweep.agent_random
    if rnd_t is not None and rnd_a is not None:
        rho_r = _spearman(sweep.alphas if sweep.random_alphas is None else sweep.random_alphas, rnd_t, t0)
        out.update({
            "random_control_direction_agreement": _agreement(rnd_t, rnd_a, t0, a0),
            "random_control_flip_rate": _nanmean(_flips(rnd_t, decision, indet)),
            "random_control_flip_rate_all_cases": _nanmean(_flips(rnd_t, decision, every)),
            "random_control_monotonicity_spearman": _nanmean(rho_r),
        })
    else:
        out.update({k: None for k in (
            "random_control_direction_agreement", "random_control_flip_rate",
            "random_control_flip_rate_all_cases", "random_control_monotonicity_spearman")})
    results = [r for case in sweep.searches for r in case.values()]
    out["search"] = {
        "n_searches": len(results),
        "reached_rate": _nanmean([r.reached for r in results]),
        "capped_rate": _nanmean([r.capped for r in results]),
        "mean_alpha_reached": _nanmean([r.alpha for r in results if r.reached]),
        "mean_evals": _nanmean([r.n_evals for r in results]),
    }
    return out
