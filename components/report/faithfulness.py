"""HTML fragments for the report: where the evidence lies, and the faithfulness benchmark.

* :func:`render_evidence`: the ``evidence`` section of ``metrics.json``
  (:func:`components.counterfactual.evidence.evidence_shares`): per map the share of its
  evidence in and outside the lungs and on each planted component, with a visible shortcut
  warning when most of it lies outside the lungs.
* :func:`render_faithfulness`: the JSON result of ``benchmarks/faithfulness.py`` (model
  contrast, randomisation, reliance correlation, AUROC vs the random direction) and a
  picture per black box.

Both take plain dicts and return a self-contained fragment (no ``<html>``), for
:func:`components.report.html.render_report` to append.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["EVIDENCE_COLUMNS", "FAITHFULNESS_COLUMNS", "render_evidence", "render_faithfulness"]

EVIDENCE_COLUMNS = ("lungs", "outside_lungs", "disease", "distractor", "marker", "rest_of_lungs")
FAITHFULNESS_COLUMNS = ("mcs_marker", "mcs_disease", "mcs_disease_f_positive", "randomisation_evidence_ratio",
                        "randomisation_spearman", "auroc_vs_random", "auroc_vs_random_attribution",
                        "reliance_spearman")


def _fmt(value: Any) -> str:
    if value is None:
        return '<span class="na">n/a</span>'
    if isinstance(value, bool):
        return '<span class="fail">WARNING</span>' if value else "no"
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) or v is None for v in value):
        point, low, high = (_fmt(v) for v in value)
        return f"{point} [{low}, {high}]"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + f"<td>{html.escape(str(r[0]))}</td>" + "".join(f"<td>{_fmt(v)}</td>" for v in r[1:])
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_evidence(metrics: Mapping[str, Any], threshold: float | None = None) -> str:
    """``<h2>`` + table of the ``evidence`` section, and a warning line per flagged map.

    Args:
        metrics: the metrics document (reads ``metrics["evidence"]``).
        threshold: the outside-lung share above which a map is flagged (shown in the text).

    Returns:
        HTML fragment; says "not evaluated" when the section is missing or null.
    """
    table = metrics.get("evidence")
    if not table:
        return '<h2>Where the evidence lies</h2><p class="na">not evaluated</p>'
    rows = [[name] + [row.get(c) for c in EVIDENCE_COLUMNS] + [row.get("shortcut_warning")]
            for name, row in table.items()]
    flagged = [name for name, row in table.items() if row.get("shortcut_warning")]
    limit = f" (more than {threshold:.0%} of it outside the lungs)" if threshold is not None else " (mostly outside the lungs)"
    warn = "".join(
        f'<p class="fail">Shortcut warning: the {html.escape(n)} map puts the classifier\'s evidence outside '
        f"the anatomy{limit}.</p>" for n in flagged
    )
    note = ("<p>Share of each map's absolute relevance, mean over the explained cases; components only "
            "where the cohort ships masks (synthetic cohorts).</p>")
    return ("<h2>Where the evidence lies</h2>" + warn + note
            + _table(["map", *EVIDENCE_COLUMNS, "shortcut warning"], rows))


def _embed(path: str | Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


def render_faithfulness(result: Mapping[str, Any] | None, figures: Mapping[str, str | Path] | None = None) -> str:
    """``<h2>Faithfulness</h2>`` fragment from the benchmark's JSON result.

    Args:
        result: ``benchmarks/faithfulness.py``'s JSON object (``n_cases``, ``maps`` ->
            :data:`FAITHFULNESS_COLUMNS`, ``probe_auc_marker``), or None.
        figures: black-box name -> PNG to embed (one picture per black box).

    Returns:
        HTML fragment ("not evaluated" without a result).
    """
    if not result:
        return '<h2>Faithfulness</h2><p class="na">not evaluated (run make bench-faithfulness)</p>'
    maps = result.get("maps") or {}
    rows = [[name] + [row.get(c) for c in FAITHFULNESS_COLUMNS] for name, row in maps.items()]
    intro = (f"<p>{_fmt(result.get('n_cases'))} external cases; black boxes F (mortality label), M (marker label), "
             f"R (random weights). MCS = model-contrast score [95 % bootstrap interval]; linear probe on z "
             f"predicts the marker with AUC {_fmt(result.get('probe_auc_marker'))}.</p>")
    pictures = "".join(f"<h3>{html.escape(name)}</h3>{_embed(p)}" for name, p in (figures or {}).items()
                       if Path(p).is_file())
    return "<h2>Faithfulness</h2>" + intro + _table(["map", *FAITHFULNESS_COLUMNS], rows) + pictures
