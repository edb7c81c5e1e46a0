"""Promotion gates: pure functions of recorded per-case evidence (DESIGN.md §4, "audited promotion").

A gate no longer compares point values with thresholds. For every gate metric it records the
point value and a one-sided 95 % bootstrap lower bound over cases
(:mod:`components.stats.bootstrap`), and it passes only when every lower bound clears its
floor. When a champion exists, the challenger must also be non-inferior on the same cases:
the paired-bootstrap lower bound of ``challenger - champion`` must be >= ``-delta``.

This module builds that evidence (:class:`GateEvidence`) and turns per-metric verdicts into a
:class:`GateResult`; the verdicts themselves come from MLflow's model-validation API in
``registry/gate_decision.py`` (``components/`` never imports MLflow). Every gated quantity
is "greater is better", so the validation inputs are named ``<metric>_lower`` (floor) and
``<metric>_vs_champion_lower`` (margin ``-delta``).

Gates: ``reconstruction`` (PSNR, SSIM, teacher decision kept; the semantic PSNR of z decoded
from a prior x_T, which an inversion cannot rescue, when its floor is set; teacher KL reported),
``agent`` (AUC and F1 of the agent's score against the black box's decision, the agent's
threshold fixed from training data; KL reported) and ``counterfactual`` (direction agreement;
flip-rate gain over the random direction on the same cases).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from components.config import GateConfig
from components.metrics.classification import auc_along, f1_along
from components.stats.bootstrap import (
    BootstrapSettings,
    Bound,
    independent_difference_bound,
    mean_bound,
    one_sided_bound,
    paired_difference_bound,
)

__all__ = [
    "GATE_NAMES",
    "MetricEvidence",
    "GateEvidence",
    "GateResult",
    "bootstrap_settings",
    "reconstruction_evidence",
    "agent_evidence",
    "counterfactual_evidence",
    "finalize_gate",
    "champion_key",
    "gates_section",
]

GATE_NAMES = ("reconstruction", "agent", "counterfactual")
CHAMPION_SUFFIX = "_vs_champion_lower"


def champion_key(metric: str) -> str:
    """Validation-input name of a non-inferiority bound."""
    return f"{metric}{CHAMPION_SUFFIX}"


@dataclass(frozen=True)
class MetricEvidence:
    """Point, one-sided lower bound and floor of one gate metric."""

    point: float | None
    lower: float | None
    threshold: float
    n: int
    degenerate: bool = False

    @classmethod
    def from_bound(cls, b: Bound, threshold: float) -> MetricEvidence:
        """From a lower :class:`~components.stats.bootstrap.Bound`."""
        return cls(_num(b.point), _num(b.bound), float(threshold), b.n, b.degenerate)

    def to_dict(self) -> dict[str, Any]:
        """``{point, lower, threshold, n, degenerate}`` (None for nan)."""
        return {"point": self.point, "lower": self.lower, "threshold": self.threshold, "n": self.n,
                "degenerate": self.degenerate}


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


@dataclass
class GateEvidence:
    """Everything a gate decides on, before the decision.

    Attributes:
        name: gate name (one of :data:`GATE_NAMES`).
        metrics: gated metric -> :class:`MetricEvidence` (lower bound vs floor).
        reported: measured but not gated (e.g. KL), metric -> ``{point, lower|upper, n}``.
        n: cases the bounds resample.
        teacher_positives: cases the black box calls positive (agent gate), else None.
        champion: ``None`` without a champion, else ``{"version", "metrics": {metric:
            {point, lower, threshold (= -delta), n}}}`` or ``{"version", "compared": False,
            "reason"}`` when the comparison could not be made.
        settings: the bootstrap settings used.
        context: extra facts for the decision record (cohorts, thresholds fixed in training).
    """

    name: str
    metrics: dict[str, MetricEvidence]
    reported: dict[str, dict[str, Any]] = field(default_factory=dict)
    n: int = 0
    teacher_positives: int | None = None
    champion: dict[str, Any] | None = None
    settings: BootstrapSettings = field(default_factory=BootstrapSettings)
    context: dict[str, Any] = field(default_factory=dict)

    def validation_inputs(self) -> tuple[dict[str, float | None], dict[str, float]]:
        """``(candidate values, floors)`` for MLflow's validation API, all greater-is-better.

        A value is None when unmeasured (the validation then fails it as missing).
        """
        values: dict[str, float | None] = {}
        floors: dict[str, float] = {}
        for metric, ev in self.metrics.items():
            values[f"{metric}_lower"] = ev.lower
            floors[f"{metric}_lower"] = ev.threshold
        for metric, ev in ((self.champion or {}).get("metrics") or {}).items():
            values[champion_key(metric)] = ev["lower"]
            floors[champion_key(metric)] = ev["threshold"]
        return values, floors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (metrics.json ``gates.<name>`` without the verdict)."""
        return {
            "metrics": {m: ev.to_dict() for m, ev in self.metrics.items()},
            "reported": dict(self.reported),
            "n": self.n,
            "teacher_positives": self.teacher_positives,
            "champion": self.champion,
            "bootstrap": self.settings.to_dict(),
            "context": dict(self.context),
        }


@dataclass
class GateResult:
    """Outcome of one gate.

    Attributes:
        name: gate name, e.g. ``"reconstruction"``.
        passed: every validation input cleared its floor.
        checks: one dict per validation input: ``{metric, value, point, op, threshold,
            passed, status}`` (``value`` = the bound decided on; status ``passed``,
            ``failed`` or ``not measured``).
        message: one line naming every failing metric with point, bound and floor.
        evidence: :meth:`GateEvidence.to_dict` (None for records from before bounds).
    """

    name: str
    passed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    evidence: dict[str, Any] | None = None

    @property
    def failing(self) -> list[str]:
        """Names of the validation inputs that failed or were not measured."""
        return [c["metric"] for c in self.checks if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (MLflow artifacts, audit records, step outputs)."""
        return {"name": self.name, "passed": self.passed, "checks": list(self.checks), "message": self.message,
                "evidence": self.evidence}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateResult:
        """Inverse of :meth:`to_dict`."""
        return cls(name=d["name"], passed=bool(d["passed"]), checks=list(d.get("checks", [])),
                   message=d.get("message", ""), evidence=d.get("evidence"))


def bootstrap_settings(cfg: GateConfig) -> BootstrapSettings:
    """The bootstrap settings a gate config asks for."""
    return BootstrapSettings(confidence=cfg.confidence, n_resamples=cfg.n_resamples, seed=cfg.bootstrap_seed)


def _mean_metric(values: ArrayLike, threshold: float, s: BootstrapSettings) -> MetricEvidence:
    return MetricEvidence.from_bound(mean_bound(values, s), threshold)


def _reported_mean(values: ArrayLike, s: BootstrapSettings, greater_is_better: bool) -> dict[str, Any]:
    b = mean_bound(values, s, greater_is_better)
    side = "lower" if greater_is_better else "upper"
    return {"point": _num(b.point), side: _num(b.bound), "n": b.n}


def _noninferiority(
    statistic: Any, challenger: list[np.ndarray], champion: list[np.ndarray], delta: float, s: BootstrapSettings
) -> dict[str, Any]:
    b = paired_difference_bound(statistic, challenger, champion, s, vectorized=True)
    return {"point": _num(b.point), "lower": _num(b.bound), "threshold": -float(delta), "n": b.n}


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def reconstruction_evidence(
    per_case: Mapping[str, ArrayLike],
    cfg: GateConfig,
    champion_per_case: Mapping[str, ArrayLike] | None = None,
    champion_version: str | None = None,
    champion_reason: str | None = None,
) -> GateEvidence:
    """Evidence of the reconstruction gate.

    Args:
        per_case: per patient ``[n]``: ``psnr`` (dB, mean over the 4 slices, images mapped to
            [0,1]), ``ssim`` (mean over slices), ``decision_kept`` (1.0 if the black box's
            decision on the reconstruction equals that on the original) and optionally
            ``teacher_kl`` (reported with its upper bound, not gated) and, per patient of a
            possibly smaller set, ``semantic_psnr`` / ``semantic_ssim`` (z decoded from a prior
            ``x_T``; PSNR gated when ``cfg.semantic_psnr_min`` is set, else reported).
        cfg: floors (``psnr_min``, ``ssim_min``, ``decision_kept_min``), deltas, bootstrap.
        champion_per_case: the champion DiffAE's values on the same patients (same order);
            ``semantic_psnr`` is compared when it is gated (``semantic_psnr_min`` set) and both
            sides measured it on the same patients.
        champion_version: its registry version (recorded).
        champion_reason: why no comparison was made although a champion exists (recorded).
    """
    s = bootstrap_settings(cfg)
    floors = {"psnr": cfg.psnr_min, "ssim": cfg.ssim_min, "decision_kept": cfg.decision_kept_min}
    metrics = {m: _mean_metric(per_case[m], t, s) for m, t in floors.items()}
    reported = {}
    if per_case.get("teacher_kl") is not None:
        reported["teacher_kl"] = _reported_mean(per_case["teacher_kl"], s, greater_is_better=False)
    if per_case.get("semantic_psnr") is not None:  # measured on its own (smaller) set of patients
        if cfg.semantic_psnr_min is not None:
            metrics["semantic_psnr"] = _mean_metric(per_case["semantic_psnr"], cfg.semantic_psnr_min, s)
        else:
            reported["semantic_psnr"] = _reported_mean(per_case["semantic_psnr"], s, greater_is_better=True)
    if per_case.get("semantic_ssim") is not None:
        reported["semantic_ssim"] = _reported_mean(per_case["semantic_ssim"], s, greater_is_better=True)
    champion = _champion_block(champion_version, champion_reason)
    if champion_per_case is not None:
        champion = {"version": champion_version, "compared": True, "metrics": {
            m: _noninferiority(_mean, [np.asarray(per_case[m], float)], [np.asarray(champion_per_case[m], float)],
                               cfg.noninferiority_delta[m], s)
            for m in (*floors, *(("semantic_psnr",) if cfg.semantic_psnr_min is not None else ()))
            if m in cfg.noninferiority_delta and per_case.get(m) is not None and champion_per_case.get(m) is not None
        }}
    return GateEvidence("reconstruction", metrics, reported, n=len(np.asarray(per_case["psnr"])),
                        champion=champion, settings=s)


def _champion_block(version: str | None, reason: str | None) -> dict[str, Any] | None:
    if version is None and reason is None:
        return None
    return {"version": version, "compared": False, "reason": reason or "not compared"}


def _f1_at(threshold: float):  # noqa: ANN202 - a batched statistic for scipy.stats.bootstrap
    def f1(y: np.ndarray, score: np.ndarray, axis: int = -1) -> np.ndarray | float:
        return f1_along(y, score, threshold, axis=axis)

    return f1


def agent_evidence(
    teacher_decision: ArrayLike,
    agent_score: ArrayLike,
    agent_threshold: float,
    kl_per_case: ArrayLike | None,
    cfg: GateConfig,
    champion: Mapping[str, Any] | None = None,
    champion_version: str | None = None,
    champion_reason: str | None = None,
    context: Mapping[str, Any] | None = None,
    champion_cases: ArrayLike | None = None,
    agent_decision: ArrayLike | None = None,
    disjoint_cases: ArrayLike | None = None,
    same_blackbox: bool | None = None,
) -> GateEvidence:
    """Evidence of the agent gate: how well the agent reproduces the black box's decisions.

    Args:
        teacher_decision: ``[n]`` 0/1, the black box's decision (its argmax) per case.
        agent_score: ``[n]`` the agent's ``P(positive class)`` in [0, 1] (AUC is measured on it).
        agent_threshold: the agent's decision threshold on ``agent_score``, fixed from
            training data before these cases were seen (F1 is measured at it).
        agent_decision: ``[n]`` 0/1, the agent's decision per case when cases are decided by
            different agents at their own thresholds (out-of-fold cases); F1 is then measured on
            it instead of ``agent_score >= agent_threshold``.
        disjoint_cases: bool ``[n]``, the cases patient-disjoint from everything the black box and
            the DiffAE were trained on (external + held-out); AUC and F1 on them alone are
            reported (``auc_disjoint`` / ``f1_disjoint``, point and lower bound), not gated.
        kl_per_case: ``[n]`` KL(black box ‖ agent) per case (reported, upper bound), or None.
        cfg: floors ``agent_auc_min`` / ``agent_f1_min``, deltas, bootstrap settings.
        champion: the champion agent on the same cases: ``{"teacher_decision", "agent_score",
            "agent_threshold"}`` (its own black box's decisions and its own threshold).
        champion_cases: bool ``[n]``, the cases ``champion`` was scored on, in order (default
            all); e.g. the external + held-out cases but not the out-of-fold training rows,
            which the champion agent may have been fitted on.
        champion_version / champion_reason: recorded with the comparison.
        same_blackbox: whether the champion's black box has the challenger's weights: False selects
            the changed-black-box margins (:meth:`GateConfig.margins`); None (not known) the base ones.
        context: recorded facts (cohorts scored, how the threshold was chosen, ...).
    """
    s = bootstrap_settings(cfg)
    y = np.asarray(teacher_decision).astype(int)
    p = np.asarray(agent_score, dtype=float)
    # F1 on 0/1 decisions (at 0.5), so that each case may have been decided at its own agent's threshold
    d = (p >= float(agent_threshold) if agent_decision is None else np.asarray(agent_decision) > 0).astype(float)
    if d.shape != y.shape:
        raise ValueError(f"agent_decision has shape {list(d.shape)}, teacher_decision {list(y.shape)}")
    f1 = _f1_at(0.5)
    metrics = {
        "auc": MetricEvidence.from_bound(one_sided_bound(auc_along, [y, p], s, vectorized=True), cfg.agent_auc_min),
        "f1": MetricEvidence.from_bound(one_sided_bound(f1, [y, d], s, vectorized=True), cfg.agent_f1_min),
    }
    reported = {} if kl_per_case is None else {"kl": _reported_mean(kl_per_case, s, greater_is_better=False)}
    if disjoint_cases is not None and not np.all(sub := np.asarray(disjoint_cases, dtype=bool)):
        for m, stat, arr in (("auc", auc_along, p), ("f1", f1, d)):
            b = one_sided_bound(stat, [y[sub], arr[sub]], s, vectorized=True)
            reported[f"{m}_disjoint"] = {"point": _num(b.point), "lower": _num(b.bound), "n": b.n}
    block = _champion_block(champion_version, champion_reason)
    if champion is not None:
        keep = np.ones(len(y), bool) if champion_cases is None else np.asarray(champion_cases, dtype=bool)
        yc = np.asarray(champion["teacher_decision"]).astype(int)
        pc = np.asarray(champion["agent_score"], dtype=float)
        if len(yc) != int(keep.sum()) or len(pc) != len(yc) or len(keep) != len(y):
            raise ValueError(f"the champion was scored on {len(yc)} cases but {int(keep.sum())} of {len(y)} are "
                             "selected for the comparison (champion_cases)")
        f1c = _f1_at(float(champion["agent_threshold"]))
        margins = cfg.margins(same_blackbox)
        block = {"version": champion_version, "compared": True, "metrics": {},
                 "blackbox": {True: "same", False: "changed", None: "not known"}[same_blackbox]}
        for m, stat, stat_c, ours in (("auc", auc_along, auc_along, p), ("f1", f1, f1c, d)):
            if m in margins:

                def pair(yy, pp, yyc, ppc, axis=-1, _a=stat, _c=stat_c):  # noqa: ANN001, ANN202
                    return np.asarray(_a(yy, pp, axis=axis)) - np.asarray(_c(yyc, ppc, axis=axis))

                b = one_sided_bound(pair, [y[keep], ours[keep], yc, pc], s, vectorized=True)
                block["metrics"][m] = {"point": _num(b.point), "lower": _num(b.bound),
                                       "threshold": -float(margins[m]), "n": b.n}
    return GateEvidence("agent", metrics, reported, n=len(y), teacher_positives=int(y.sum()), champion=block,
                        settings=s, context={"agent_threshold": float(agent_threshold), **dict(context or {})})


def counterfactual_evidence(
    direction_agreement: ArrayLike,
    flips: ArrayLike,
    random_flips: ArrayLike | None,
    cfg: GateConfig,
    champion_version: str | None = None,
    champion_reason: str | None = None,
    flip_cases: ArrayLike | None = None,
    champion: Mapping[str, Any] | None = None,
    same_blackbox: bool | None = None,
) -> GateEvidence:
    """Evidence of the counterfactual gate.

    Args:
        direction_agreement: ``[n]`` per explained case, the fraction of (direction, alpha)
            where the black box's score moves the way the agent's does.
        flips: ``[m]`` per indeterminate case, 1.0 if the counterfactual toward the other
            class flips the black box's decision at some alpha of the sweep.
        random_flips: ``[m]`` the same for the random direction of equal size on the same
            cases (paired), or None when the control is off (the gain is then unmeasured).
        cfg: floors ``direction_agreement_min`` / ``flip_gain_min``, non-inferiority margins
            (``noninferiority_delta`` ``direction_agreement`` / ``flip_gain``) and bootstrap settings.
        champion_version / champion_reason: recorded with the comparison.
        flip_cases: ``[m]`` the indices (in the explained cases) that ``flips`` refer to; needed
            to pair the flip gain with the champion's.
        champion: the champion's sweep on the *same* explained cases, as
            :func:`components.counterfactual.criteria.per_case_manipulation` returns it
            (``direction_agreement [n]``, ``flips`` / ``random_flips`` ``[k]``, ``flip_cases [k]``).
            Direction agreement is paired over all n cases. The flip gain is paired over the
            cases indeterminate for both black boxes when the black box is the same or not
            known (not compared, with the reason recorded, when fewer than 2 are); when the
            black box changed (``same_blackbox`` False) and ``cfg`` sets a changed-black-box
            ``flip_gain`` margin (calibrated for this comparison), the two black boxes call
            different cases indeterminate, so each side's gain is taken over its own
            indeterminate cases and the two samples are resampled independently.
        same_blackbox: whether the champion's black box has the challenger's weights; False
            selects ``cfg.noninferiority_delta_changed_blackbox`` margins where it sets them.
    """
    s = bootstrap_settings(cfg)
    agree = np.asarray(direction_agreement, dtype=float)
    f = np.asarray(flips, dtype=float)
    metrics = {"direction_agreement": _mean_metric(agree, cfg.direction_agreement_min, s)}
    reported = {"flip_rate": _reported_mean(f, s, True)}
    if random_flips is not None:
        r = np.asarray(random_flips, dtype=float)
        metrics["flip_gain"] = _mean_metric(f - r, cfg.flip_gain_min, s)
        reported["random_control_flip_rate"] = _reported_mean(r, s, False)
    else:
        metrics["flip_gain"] = MetricEvidence(None, None, cfg.flip_gain_min, 0)
    block = _champion_block(champion_version, champion_reason)
    if champion is not None:
        block = {"version": champion_version, **_counterfactual_noninferiority(
            agree, None if random_flips is None else f - np.asarray(random_flips, dtype=float),
            None if flip_cases is None else np.asarray(flip_cases), champion, cfg, s, same_blackbox)}
    return GateEvidence("counterfactual", metrics, reported, n=int(agree.size), champion=block, settings=s,
                        context={"n_flip_cases": int(f.size)})


def _counterfactual_noninferiority(
    agree: np.ndarray, gain: np.ndarray | None, flip_cases: np.ndarray | None, champion: Mapping[str, Any],
    cfg: GateConfig, s: BootstrapSettings, same_blackbox: bool | None = None,
) -> dict[str, Any]:
    """Challenger - champion on the same explained cases (see :func:`counterfactual_evidence`)."""
    delta = cfg.margins(same_blackbox)
    champ_agree = np.asarray(champion["direction_agreement"], dtype=float)
    if champ_agree.shape != agree.shape:
        raise ValueError(f"the champion's sweep covers {champ_agree.size} cases, the challenger's {agree.size}")
    block: dict[str, Any] = {"compared": True, "metrics": {}, "not_compared": {},
                             "blackbox": {True: "same", False: "changed", None: "not known"}[same_blackbox]}
    if "direction_agreement" in delta:
        block["metrics"]["direction_agreement"] = _noninferiority(_mean, [agree], [champ_agree],
                                                                  delta["direction_agreement"], s)
    if "flip_gain" in delta:
        champ_random = champion.get("random_flips")
        if gain is None or champ_random is None or flip_cases is None:
            block["not_compared"]["flip_gain"] = "no random-direction control on one side"
        else:
            champ_gain = np.asarray(champion["flips"], dtype=float) - np.asarray(champ_random, dtype=float)
            common, mine, theirs = np.intersect1d(flip_cases, np.asarray(champion["flip_cases"]),
                                                  return_indices=True)
            if same_blackbox is False and "flip_gain" in cfg.noninferiority_delta_changed_blackbox:
                if gain.size < 2 or champ_gain.size < 2:
                    block["not_compared"]["flip_gain"] = (f"{gain.size} / {champ_gain.size} case(s) indeterminate "
                                                          "for the challenger / the champion (need >= 2 each)")
                else:
                    b = independent_difference_bound(gain, champ_gain, s)
                    block["metrics"]["flip_gain"] = {"point": _num(b.point), "lower": _num(b.bound),
                                                     "threshold": -float(delta["flip_gain"]), "n": b.n,
                                                     "n_champion": int(champ_gain.size),
                                                     # a constant side adds no spread to the bound
                                                     "constant_sample": {"challenger": bool(np.ptp(gain) == 0),
                                                                         "champion": bool(np.ptp(champ_gain) == 0)},
                                                     "degenerate": b.degenerate}
                    block["flip_gain_pairing"] = "independent: each black box's own indeterminate cases"
                    block["n_flip_cases_compared"] = int(gain.size)
                    block["n_flip_cases_common"] = int(common.size)
            elif common.size < 2:
                block["not_compared"]["flip_gain"] = (f"{common.size} case(s) indeterminate for both black boxes "
                                                      "(need >= 2)")
            else:
                block["metrics"]["flip_gain"] = _noninferiority(_mean, [gain[mine]], [champ_gain[theirs]],
                                                                delta["flip_gain"], s)
                block["flip_gain_pairing"] = "paired: cases indeterminate for both black boxes"
                block["n_flip_cases_compared"] = int(common.size)
    return block


def finalize_gate(evidence: GateEvidence, verdicts: Mapping[str, bool]) -> GateResult:
    """Combine evidence with per-input verdicts (from MLflow's validation) into a result.

    Args:
        evidence: the gate's evidence.
        verdicts: validation-input name (see :meth:`GateEvidence.validation_inputs`) -> passed.
            A missing verdict counts as failed.

    Returns:
        :class:`GateResult`; its message names each failing input with point, bound and floor.
    """
    values, floors = evidence.validation_inputs()
    champion_metrics = (evidence.champion or {}).get("metrics") or {}
    checks, problems = [], []
    for key, floor in floors.items():
        value = values.get(key)
        ok = bool(verdicts.get(key, False)) and value is not None
        if key.endswith(CHAMPION_SUFFIX):
            metric = key[: -len(CHAMPION_SUFFIX)]
            point = champion_metrics[metric]["point"]
        else:
            metric = key[: -len("_lower")]
            point = evidence.metrics[metric].point
        status = "not measured" if value is None else ("passed" if ok else "failed")
        checks.append({"metric": key, "value": value, "point": point, "op": ">=", "threshold": floor,
                       "passed": ok, "status": status})
        if value is None:
            problems.append(f"{key} not measured (required >= {floor:g})")
        elif not ok:
            what = "challenger - champion" if key.endswith(CHAMPION_SUFFIX) else metric
            problems.append(f"{what}: point {_fmt(point)}, 95% lower bound {value:.4g} < {floor:g}")
    passed = not problems
    message = f"{evidence.name} gate passed" if passed else f"{evidence.name} gate failed: " + "; ".join(problems)
    uncompared = (evidence.champion or {}).get("not_compared") or {}
    if uncompared:  # not a failure (too little common evidence), but never silent
        message += "; not compared with the champion: " + "; ".join(f"{m} ({why})" for m, why in uncompared.items())
    return GateResult(evidence.name, passed, checks, message, evidence.to_dict())


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def gates_section(results: list[GateResult | Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``metrics.json`` ``gates``: per gate ``{passed, message, metrics {m: {point, lower,
    threshold, n}}, champion, reported, n, teacher_positives}``; every gate of
    :data:`GATE_NAMES` is listed (None when it was not evaluated)."""
    out: dict[str, dict[str, Any] | None] = {name: None for name in GATE_NAMES}
    for r in results:
        g = r if isinstance(r, GateResult) else GateResult.from_dict(r)
        ev = g.evidence or {}
        out[g.name] = {
            "passed": g.passed,
            "message": g.message,
            "metrics": ev.get("metrics", {}),
            "champion": ev.get("champion"),
            "reported": ev.get("reported", {}),
            "n": ev.get("n"),
            "teacher_positives": ev.get("teacher_positives"),
        }
    return out  # type: ignore[return-value]
