"""Report section: the training cohort's drift against the champion's, beside its data quality."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

__all__ = ["render_drift"]

_QUALITY: dict[object, str] = {True: "passed", False: "failed"}


def render_drift(metrics: Mapping[str, Any]) -> str:
    """HTML for ``metrics["drift"]`` (the drift step's record); empty when absent."""
    from components.report.html import _table  # html imports this module lazily

    rec = metrics.get("drift")
    if not isinstance(rec, Mapping):
        return ""
    rows = [
        ("data quality (Great Expectations)", _QUALITY.get(rec.get("validation_success"))),
        ("drift check", rec.get("status")),
        ("energy distance (joint)", rec.get("statistic")),
        ("permutation p-value", rec.get("p_value")),
        ("alpha", rec.get("alpha")),
        ("drift", rec.get("drift")),
        ("patients: reference / current", f"{rec.get('n_reference')} / {rec.get('n_current')}"),
        ("on drift (config)", rec.get("on_drift")),
        ("action taken", rec.get("action")),
        ("champion DiffAE version", rec.get("champion_version")),
    ]
    if rec.get("reason"):
        rows.append(("note", rec["reason"]))
    out = "<h2>Cohort drift (champion DiffAE latents) and data quality</h2>" + _table(["item", "value"], rows)
    per_slice = rec.get("per_slice") or []
    if per_slice:
        out += "<p>Per slice position (reported, not decided on):</p>" + _table(
            ["slice", "energy distance", "p-value"], [(s["slice"], s["statistic"], s["p_value"]) for s in per_slice])
    acq = rec.get("acquisition")
    if isinstance(acq, Mapping) and acq.get("status") == "tested":
        out += (f"<p>Acquisition (what ingestion measured per scan; reported, not the trigger): combined p-value "
                f"{acq.get('p_value'):.3g}, changed: {html.escape(', '.join(acq.get('changed') or []) or 'none')}.</p>"
                ) + _table(
            ["field", "KS statistic", "p-value", "reference median", "current median"],
            [(f["field"], f["statistic"], f["p_value"], f["reference_median"], f["current_median"])
             for f in acq.get("fields") or []])
    elif isinstance(acq, Mapping) and acq.get("reason"):
        out += f"<p>Acquisition test not run: {html.escape(str(acq['reason']))}</p>"
    return out
