"""Promotion gates: pure functions of recorded metrics (DESIGN.md §4, "audited promotion").

A gate is a list of rules ``metric -> (op, threshold)``; :func:`evaluate_gate` checks the
measured values against them. A rule whose metric was not measured is recorded as
``"not measured"`` and fails the gate (nothing passes silently); gate-specific helpers may
drop optional rules whose metric is absent before calling it.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from components.config import GateConfig

__all__ = ["GateResult", "evaluate_gate", "reconstruction_gate", "agent_gate", "OPS"]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass
class GateResult:
    """Outcome of one gate.

    Attributes:
        name: gate name, e.g. ``"reconstruction"``.
        passed: every required check passed.
        checks: one dict per rule: ``{metric, value, op, threshold, passed, status}`` with
            ``status`` in ``{"passed", "failed", "not measured"}`` and ``value`` None when
            not measured.
        message: one line; names every failing or unmeasured metric with value and threshold.
    """

    name: str
    passed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for MLflow tags / audit records)."""
        return {"name": self.name, "passed": self.passed, "checks": list(self.checks), "message": self.message}


def evaluate_gate(
    name: str,
    values: Mapping[str, float],
    rules: Mapping[str, tuple[str, float]],
    optional: tuple[str, ...] = (),
) -> GateResult:
    """Check ``values`` against ``rules``.

    Args:
        name: gate name.
        values: measured metrics.
        rules: ``metric -> (op, threshold)`` with op in ``>=, >, <=, <, ==``.
        optional: metrics that may be absent: recorded as ``"not measured"`` but not failing.
            Required metrics that are absent (or NaN) fail the gate.

    Returns:
        A :class:`GateResult`.
    """
    checks: list[dict[str, Any]] = []
    problems: list[str] = []
    unmeasured_optional: list[str] = []
    for metric, (op, threshold) in rules.items():
        if op not in OPS:
            raise ValueError(f"gate {name}: unknown operator {op!r} for {metric}")
        raw = values.get(metric)
        value = None if raw is None or (isinstance(raw, float) and math.isnan(raw)) else float(raw)
        if value is None:
            required = metric not in optional
            checks.append({"metric": metric, "value": None, "op": op, "threshold": float(threshold),
                           "passed": not required, "status": "not measured"})
            if required:
                problems.append(f"{metric} not measured (required {op} {threshold:g})")
            else:
                unmeasured_optional.append(metric)
            continue
        ok = bool(OPS[op](value, float(threshold)))
        checks.append({"metric": metric, "value": value, "op": op, "threshold": float(threshold),
                       "passed": ok, "status": "passed" if ok else "failed"})
        if not ok:
            problems.append(f"{metric} = {value:.4g} fails {op} {threshold:g}")
    passed = not problems
    if passed:
        message = f"{name} gate passed"
    else:
        message = f"{name} gate failed: " + "; ".join(problems)
    if unmeasured_optional:
        message += f" (not measured: {', '.join(unmeasured_optional)})"
    return GateResult(name=name, passed=passed, checks=checks, message=message)


def reconstruction_gate(values: Mapping[str, float], cfg: GateConfig) -> GateResult:
    """Reconstruction gate: ``psnr >= psnr_min``, ``ssim >= ssim_min`` (required) and, when
    measured, ``decision_kept >= decision_kept_min`` and ``teacher_kl <= teacher_kl_max``.

    Args:
        values: ``{"psnr", "ssim"[, "decision_kept", "teacher_kl"]}`` (PSNR in dB and SSIM
            on images mapped to [0, 1]).
        cfg: thresholds.

    Returns:
        A :class:`GateResult`; absent optional metrics are listed as "not measured".
    """
    rules = {
        "psnr": (">=", cfg.psnr_min),
        "ssim": (">=", cfg.ssim_min),
        "decision_kept": (">=", cfg.decision_kept_min),
        "teacher_kl": ("<=", cfg.teacher_kl_max),
    }
    return evaluate_gate("reconstruction", values, rules, optional=("decision_kept", "teacher_kl"))


def agent_gate(values: Mapping[str, float], cfg: GateConfig) -> GateResult:
    """Agent fidelity gate: ``auc >= agent_auc_min`` and ``f1 >= agent_f1_min`` (both required).

    Args:
        values: output of :func:`components.training.distill_agent.alignment_report` on the
            external cohort (the teacher's predicted class is the ground truth, the agent's
            probability the score); other keys (``kl``, ``accuracy``, ...) are ignored.
        cfg: thresholds.

    Returns:
        A :class:`GateResult` named ``"agent"``.
    """
    rules = {"auc": (">=", cfg.agent_auc_min), "f1": (">=", cfg.agent_f1_min)}
    return evaluate_gate("agent", values, rules)
