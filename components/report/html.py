"""Self-contained HTML report: every figure embedded as base64, no external assets.

:func:`render_report` takes the plain ``metrics`` dict of :mod:`.metrics_json` and figure
paths, so it can be called from a pipeline step and the file logged as an artifact.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.report.metrics_json import AGENT_OBJECTIVES, LOCALIZATION_METHODS

__all__ = ["DIME_NFE_PER_IMAGE", "embed_png", "render_report"]

DIME_NFE_PER_IMAGE = 1800
"""Network evaluations DiME (Jeanneret et al., ACCV 2022) spends per counterfactual image."""

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
.pass{color:#0a0;font-weight:bold}.fail{color:#c00;font-weight:bold}.na{color:#888}
img{max-width:100%;margin:4px 0}
.case{border-top:1px solid #ddd;padding-top:.5em}
"""


def embed_png(path: str | Path) -> str:
    """``<img>`` tag with the PNG at ``path`` embedded as base64."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = html.escape(Path(path).name)
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def _fmt(value: Any) -> str:
    if value is None:
        return '<span class="na">n/a</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + f"<td>{html.escape(str(r[0]))}</td>" + "".join(f"<td>{_fmt(v)}</td>" for v in r[1:]) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _get(section: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(section, Mapping):
            return None
        section = section.get(key)
    return section


def _header(metrics: Mapping[str, Any]) -> str:
    ds = metrics.get("dataset") or {}
    rows = [
        ("dataset hash", ds.get("hash")),
        ("patients ok", ds.get("patients_ok")),
        ("patients quarantined", ds.get("patients_quarantined")),
    ]
    bb = metrics.get("blackbox") or {}
    if bb:
        head = f" (head {bb.get('head')!r})" if bb.get("head") else ""
        rows.append(("black box", f"{bb.get('source')}: {bb.get('mode')} mode{head}"))
    rows += [(f"run id: {k}", v) for k, v in (metrics.get("run_ids") or {}).items()]
    return "<h2>Run</h2>" + _table(["item", "value"], rows)


def _gate(metrics: Mapping[str, Any]) -> str:
    rec = metrics.get("reconstruction")
    if not rec:
        return '<h2>Reconstruction gate</h2><p class="na">not evaluated</p>'
    passed = rec.get("passed")
    verdict = {True: '<span class="pass">PASSED</span>', False: '<span class="fail">FAILED</span>'}.get(
        passed, '<span class="na">not decided</span>'
    )
    rows = [(k, rec.get(k)) for k in ("psnr", "ssim", "teacher_kl", "decision_kept")]
    return f"<h2>Reconstruction gate: {verdict}</h2>" + _table(["metric", "value"], rows)


def _gates(metrics: Mapping[str, Any]) -> str:
    gates = metrics.get("gates")
    if not gates:
        return '<h2>Promotion gates</h2><p class="na">not decided</p>'
    rows: list[tuple[Any, ...]] = []
    for name, g in gates.items():
        if not g:
            rows.append((name, "not evaluated", None, None, None, None))
            continue
        for metric, m in (g.get("metrics") or {}).items():
            ok = m.get("lower") is not None and m["lower"] >= m["threshold"]
            rows.append((name, metric, m.get("point"), m.get("lower"), m.get("threshold"), ok))
        champ = g.get("champion") or {}
        for metric, m in (champ.get("metrics") or {}).items():
            ok = m.get("lower") is not None and m["lower"] >= m["threshold"]
            rows.append((name, f"{metric}: challenger - champion v{champ.get('version')}", m.get("point"),
                         m.get("lower"), m.get("threshold"), ok))
        for metric, why in (champ.get("not_compared") or {}).items():
            rows.append((name, f"{metric}: not compared with champion v{champ.get('version')}: {why}",
                         None, None, None, None))
        for metric, m in (g.get("reported") or {}).items():  # measured, not gated: no threshold, no verdict
            rows.append((name, f"{metric} (reported)", m.get("point"), m.get("lower"), None, None))
        if champ and not champ.get("compared", True):
            rows.append((name, f"champion v{champ.get('version')} not compared: {champ.get('reason')}",
                         None, None, None, None))
    verdicts = ", ".join(f"{n}: {'passed' if g and g.get('passed') else 'FAILED' if g else 'n/a'}"
                         for n, g in gates.items())
    note = ("<p>Each gate passes when every one-sided 95 % bootstrap lower bound (BCa, resampling cases) "
            "clears its floor; with a champion, the lower bound of challenger minus champion on the same "
            f"cases must clear -delta. {html.escape(verdicts)}</p>")
    table = _table(["gate", "metric", "point", "95% lower bound", "threshold", "passed"], rows)
    return "<h2>Promotion gates</h2>" + note + table


def _agent(metrics: Mapping[str, Any]) -> str:
    table = metrics.get("agent_alignment")
    if not table:
        return '<h2>Agent alignment</h2><p class="na">not evaluated</p>'
    cols = ["auc", "accuracy", "sensitivity", "specificity", "f1", "kl"]
    names = list(AGENT_OBJECTIVES) + [k for k in table if k not in AGENT_OBJECTIVES]
    rows = [[n] + [_get(table, n, c) for c in cols] for n in names]
    return "<h2>Agent alignment (vs teacher)</h2>" + _table(["objective"] + cols, rows)


def _criteria(metrics: Mapping[str, Any]) -> str:
    cf = metrics.get("counterfactual") or {}
    crit = metrics.get("criteria") or {}
    rec, obs = crit.get("reconstruction") or {}, crit.get("observable") or {}
    rnd = obs.get("random_control") or {}
    rows = [
        ("1. reconstruction PSNR (dB)", rec.get("psnr"), None),
        ("1. reconstruction SSIM", rec.get("ssim"), None),
        ("1. teacher |delta p1| original -> reconstruction", rec.get("teacher_score_change"), None),
        ("1. teacher decision kept", rec.get("decision_kept"), None),
        ("2. changed pixels inside lungs", obs.get("changed_fraction_inside"), rnd.get("changed_fraction_inside")),
        ("2. changed pixels outside lungs", obs.get("changed_fraction_outside"), rnd.get("changed_fraction_outside")),
        ("2. mean |change| inside lungs", obs.get("mean_abs_change_inside"), rnd.get("mean_abs_change_inside")),
        ("2. mean |change| outside lungs", obs.get("mean_abs_change_outside"), rnd.get("mean_abs_change_outside")),
        ("3. direction agreement", cf.get("direction_agreement"), cf.get("random_control_direction_agreement")),
        ("3. flip rate, indeterminate cases", cf.get("flip_rate"), cf.get("random_control_flip_rate")),
        ("3. flip rate, all cases", cf.get("flip_rate_all_cases"), cf.get("random_control_flip_rate_all_cases")),
        ("3. monotonicity (mean Spearman)", cf.get("monotonicity_spearman"), cf.get("random_control_monotonicity_spearman")),
        ("cases / indeterminate", cf.get("n_cases"), cf.get("n_indeterminate")),
    ]
    search = cf.get("search") or {}
    nfe = cf.get("nfe_per_patient")
    note = (
        f"<p>Network evaluations (encoder + UNet) per patient: {_fmt(nfe)} for 4 slices "
        f"(per slice: {_fmt(nfe / 4 if isinstance(nfe, (int, float)) else None)}); "
        f"DiME spends ~{DIME_NFE_PER_IMAGE:,} per image. Alpha search on indeterminate cases: "
        f"{_fmt(search.get('n_searches'))} searches, target reached {_fmt(search.get('reached_rate'))}, "
        f"stopped at alpha_cap {_fmt(search.get('capped_rate'))}. Flips are counted against the "
        "reconstruction's teacher decision.</p>"
    )
    swap = cf.get("code_swap") or {}
    if swap.get("z_share") is not None:
        note += (
            f"<p>Code-swap test ({_fmt(swap.get('n'))} hybrids: one patient's z decoded with another's x_T): "
            f"{_fmt(swap.get('z_share'))} of the teacher's decision follows z (coefficient "
            f"{_fmt(swap.get('coef_z'))} vs {_fmt(swap.get('coef_x_T'))} for x_T); the rest rides on x_T, "
            "which neither the agent nor a counterfactual moves.</p>"
        )
    return (
        "<h2>Evaluation criteria</h2>"
        + _table(["criterion", "DiffExplainer", "random direction (same step)"], rows)
        + note
    )


def _skipped(metrics: Mapping[str, Any]) -> str:
    skipped = metrics.get("maps_skipped") or {}
    items = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in skipped.items())
    return f"<p>Maps not computed for this black box:</p><ul>{items}</ul>" if items else ""


def _localization(metrics: Mapping[str, Any]) -> str:
    table = metrics.get("localization")
    if not table:
        return '<h2>Localisation</h2><p class="na">not evaluated (no ground-truth masks)</p>' + _skipped(metrics)
    names = list(LOCALIZATION_METHODS) + [k for k in table if k not in LOCALIZATION_METHODS]
    cols = ["auroc", "pointing_game", "relevance_mass", "n_cases"]
    rows = [[n] + [_get(table, n, c) for c in cols] for n in names]
    note = ("<p>Each map scored by its magnitude |map| against the planted disease mask inside the lungs. "
            "Controls: <code>random_direction</code> (the difference map of a random latent step of the same "
            "size) and <code>random_attribution</code> (the attribution map along that random step).</p>")
    return ("<h2>Localisation vs planted lesions (inside lungs)</h2>" + note + _table(["method"] + cols, rows)
            + _skipped(metrics))


def _timings(metrics: Mapping[str, Any]) -> str:
    t = metrics.get("timings_s")
    if not t:
        return ""
    return "<h2>Timings (s)</h2>" + _table(["stage", "seconds"], list(t.items()))


def render_report(
    metrics: Mapping[str, Any],
    out_path: str | Path,
    case_figures: Mapping[str, Sequence[str | Path]] | None = None,
    figures: Sequence[str | Path] = (),
    title: str = "DiffExplainer report",
) -> Path:
    """Write the HTML report.

    Args:
        metrics: document from :func:`~components.report.metrics_json.build_metrics`
            (optionally with ``criteria`` and ``run_ids`` sections).
        out_path: the ``.html`` file to write (parents created).
        case_figures: case id -> PNG paths (panel, heatmaps, score curve), in display order.
        figures: cohort-level PNGs (e.g. the localisation chart).
        title: page title.

    Returns:
        ``out_path``.
    """
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        _header(metrics), _gates(metrics), _gate(metrics), _agent(metrics), _criteria(metrics),
        _localization(metrics),
    ]
    from components.report.drift import render_drift  # these reuse this module
    from components.report.faithfulness import render_evidence, render_faithfulness

    parts.insert(3, render_drift(metrics))

    parts.append(render_evidence(metrics))
    faith = metrics.get("faithfulness")
    if faith:
        pictures = {f"black box {b}": v["figure"] for b, v in (faith.get("black_boxes") or {}).items()
                    if isinstance(v, Mapping) and v.get("figure") and Path(v["figure"]).is_file()}
        parts.append(render_faithfulness(faith, pictures))
    parts.append(_timings(metrics))
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(embed_png(p) for p in figures))
    if case_figures:
        parts.append("<h2>Cases</h2>")
        for case, paths in case_figures.items():
            parts.append(f"<div class='case'><h3>{html.escape(str(case))}</h3>")
            parts.extend(embed_png(p) for p in paths)
            parts.append("</div>")
    dump = html.escape(json.dumps(metrics, indent=2, default=str))
    parts.append(f"<details><summary>metrics.json</summary><pre>{dump}</pre></details></body></html>")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join(parts), encoding="utf-8")
    return out_path
