"""``metrics.json``: one fixed shape, filled with what a run measured and ``null`` elsewhere.

The writer never invents numbers: a section or field it is not given stays ``null``; nan and
inf become ``null`` (JSON has neither). Extra fields given inside a section are kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SCHEMA",
    "AGENT_OBJECTIVES",
    "LOCALIZATION_METHODS",
    "build_metrics",
    "validate_metrics",
    "write_metrics",
    "json_ready",
]

AGENT_OBJECTIVES = ("L1", "MSE", "KL")
LOCALIZATION_METHODS = (
    "diffexplainer", "attribution", "gradcam", "gradcampp", "saliency", "integrated_gradients", "occlusion",
)
_AGENT_FIELDS = ("auc", "accuracy", "sensitivity", "specificity", "f1", "kl")
_LOC_FIELDS = ("auroc", "pointing_game", "relevance_mass")

SCHEMA: dict[str, Any] = {
    "dataset": ("hash", "patients_ok", "patients_quarantined"),
    "reconstruction": ("psnr", "ssim", "teacher_kl", "decision_kept", "passed"),
    "agent_alignment": {name: _AGENT_FIELDS for name in AGENT_OBJECTIVES},
    "counterfactual": (
        "flip_rate", "random_control_flip_rate", "monotonicity_spearman",
        "direction_agreement", "n_cases", "nfe_per_patient",
    ),
    "localization": {name: _LOC_FIELDS for name in LOCALIZATION_METHODS},
    "timings_s": ("ingest", "diffae", "teacher", "agent", "reconstruction_gate", "counterfactual", "total"),
    "gates": {name: ("passed", "metrics", "champion") for name in ("reconstruction", "agent", "counterfactual")},
}
"""Required keys: a tuple lists a section's fields, a dict its named rows."""


def json_ready(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, nan/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def _fill(spec: Any, given: Any) -> Any:
    """Required fields from ``spec`` (None when absent) plus everything in ``given``."""
    given = json_ready(given) if given is not None else None
    if given is None:
        return None
    if isinstance(spec, dict):
        rows = dict(given)
        return {**rows, **{name: _fill(fields, rows.get(name)) for name, fields in spec.items()}}
    return {**{key: None for key in spec}, **given}


def build_metrics(
    dataset: Mapping[str, Any] | None = None,
    reconstruction: Mapping[str, Any] | None = None,
    agent_alignment: Mapping[str, Mapping[str, Any]] | None = None,
    counterfactual: Mapping[str, Any] | None = None,
    localization: Mapping[str, Mapping[str, Any]] | None = None,
    timings_s: Mapping[str, Any] | None = None,
    gates: Mapping[str, Mapping[str, Any] | None] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Assemble the metrics document.

    Args:
        dataset: ``hash``, ``patients_ok``, ``patients_quarantined``.
        reconstruction: gate values ``psnr``, ``ssim``, ``teacher_kl``, ``decision_kept``,
            ``passed``.
        agent_alignment: objective (``L1``/``MSE``/``KL``) -> ``auc``, ``accuracy``,
            ``sensitivity``, ``specificity``, ``f1``, ``kl``.
        counterfactual: ``flip_rate``, ``random_control_flip_rate``,
            ``monotonicity_spearman``, ``direction_agreement``, ``n_cases``,
            ``nfe_per_patient`` (+ anything else).
        localization: method -> ``auroc``, ``pointing_game``, ``relevance_mass``.
        timings_s: ``ingest``, ``diffae``, ``teacher``, ``agent``, ``counterfactual``, ``total``.
        gates: gate name -> ``{passed, metrics {metric: {point, lower, threshold}}, champion}``
            (:func:`components.gates.gates_section`).
        **extra: further top-level sections (e.g. ``criteria``, ``run_ids``), kept as given.

    Returns:
        A JSON-ready dict. A section not given is ``null``; a section given but missing a
        required field has that field ``null``. A table section (``agent_alignment``,
        ``localization``) that is given lists every known row, ``null`` where not measured.
    """
    given = {
        "dataset": dataset,
        "reconstruction": reconstruction,
        "agent_alignment": agent_alignment,
        "counterfactual": counterfactual,
        "localization": localization,
        "timings_s": timings_s,
        "gates": gates,
    }
    doc = {name: _fill(spec, given[name]) for name, spec in SCHEMA.items()}
    doc.update({k: json_ready(v) for k, v in extra.items()})
    return doc


def validate_metrics(doc: Mapping[str, Any]) -> list[str]:
    """Problems with a metrics document's shape (empty list = valid)."""
    problems = []
    for name, spec in SCHEMA.items():
        if name not in doc:
            problems.append(f"missing section {name!r}")
            continue
        section = doc[name]
        if section is None:
            continue
        rows = spec.items() if isinstance(spec, dict) else [(None, spec)]
        for row, fields in rows:
            target = section if row is None else section.get(row)
            if target is None:
                if row is None or row not in section:
                    problems.append(f"{name}: missing row {row!r}")
                continue
            problems += [f"{name}.{row or ''}: missing {f!r}".replace("..", ".") for f in fields if f not in target]
    return problems


def write_metrics(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` (from :func:`build_metrics`) as indented JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(doc), indent=2, allow_nan=False) + "\n")
    return path
