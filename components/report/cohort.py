"""Cohort report: figures for a few cases, ``metrics.json`` and ``index.html`` under
``WORKDIR/report/``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import CounterfactualConfig
from components.counterfactual.evaluate import CohortEvaluation
from components.counterfactual.sweep import SweepResult
from components.report.figures import plot_case_panel, plot_heatmaps, plot_localization, plot_score_curve
from components.report.html import render_report
from components.report.metrics_json import build_metrics, write_metrics

__all__ = ["ReportPaths", "case_figures", "write_cohort_report", "add_report_sections"]


@dataclass
class ReportPaths:
    """Files written by :func:`write_cohort_report`."""

    index_html: Path
    metrics_json: Path
    figures: list[Path] = field(default_factory=list)


def case_figures(
    sweep: SweepResult,
    index: int,
    out_dir: str | Path,
    case_id: str,
    target_confidence: float | None = None,
    prefix: str | None = None,
) -> list[Path]:
    """Panel, heatmaps and score curve of one case of a sweep.

    Args:
        sweep: the sweep.
        index: row of the case in the sweep.
        out_dir: folder for ``<prefix>panel.png``, ``<prefix>heatmaps.png``, ``<prefix>scores.png``.
        case_id: shown in the titles.
        target_confidence: drawn on the score curve.
        prefix: file-name prefix (default ``"<case_id>_"``).

    Returns:
        The three PNG paths.
    """
    out, i = Path(out_dir), index
    prefix = f"{case_id}_" if prefix is None else prefix
    return [
        plot_case_panel(sweep.original[i], sweep.recon[i], sweep.counterfactuals[i], sweep.alphas,
                        out / f"{prefix}panel.png", sweep.teacher_cf[i], sweep.teacher_recon[i], case_id),
        plot_heatmaps(sweep.recon[i], sweep.counterfactuals[i], sweep.alphas,
                      out / f"{prefix}heatmaps.png", f"{case_id}: counterfactual - reconstruction"),
        plot_score_curve(
            sweep.alphas, sweep.teacher_recon[i], sweep.teacher_cf[i], out / f"{prefix}scores.png",
            sweep.agent_q[i], sweep.agent_cf[i],
            None if sweep.teacher_random is None else sweep.teacher_random[i],
            target_confidence, case_id, sweep.random_alphas,
        ),
    ]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_cohort_report(
    workdir: str | Path,
    evaluation: CohortEvaluation | None = None,
    cfg: CounterfactualConfig | None = None,
    *,
    dataset: Mapping[str, Any] | None = None,
    reconstruction_gate: Mapping[str, Any] | None = None,
    agent_alignment: Mapping[str, Mapping[str, Any]] | None = None,
    timings_s: Mapping[str, Any] | None = None,
    run_ids: Mapping[str, str] | None = None,
    case_ids: Sequence[str] | None = None,
    gates: Mapping[str, Any] | None = None,
    blackbox: Mapping[str, Any] | None = None,
) -> ReportPaths:
    """Write ``WORKDIR/report/{index.html, metrics.json, *.png}``.

    Args:
        workdir: run folder; the report goes to ``workdir/report``.
        evaluation: result of :func:`~components.counterfactual.evaluate.evaluate_cohort`, or
            None (then those sections are null).
        cfg: counterfactual config (``report_cases``, ``target_confidence``); default values
            when None.
        dataset: ``hash``, ``patients_ok``, ``patients_quarantined``.
        reconstruction_gate: the gate's ``psnr``, ``ssim``, ``teacher_kl``,
            ``decision_kept``, ``passed``. Without it the section holds criterion 1 measured
            on the evaluated cases, with ``passed`` null.
        agent_alignment: objective -> classification metrics vs the teacher.
        timings_s: stage -> seconds; ``counterfactual`` is taken from ``evaluation`` if absent.
        run_ids: name -> run id, shown in the header.
        case_ids: cohort patient ids, indexed like the cohort arrays.
        gates: the ``gates`` section (:func:`components.gates.gates_section`).
        blackbox: how the classifier was read (``mode`` feature / output, ``head`` name,
            ``hash``, ``source``); section ``blackbox``, null when not given.

    Returns:
        :class:`ReportPaths`.
    """
    cfg = cfg or CounterfactualConfig()
    out = Path(workdir) / "report"
    figures: list[Path] = []
    per_case: dict[str, list[Path]] = {}
    timings = dict(timings_s or {})
    sections: dict[str, Any] = {"reconstruction": reconstruction_gate}
    extra: dict[str, Any] = {"run_ids": dict(run_ids or {}), "blackbox": None if blackbox is None else dict(blackbox)}
    if evaluation is not None:
        m = evaluation.metrics
        extra["criteria"] = {"reconstruction": m["reconstruction"], "observable": m["observable"]}
        sections["counterfactual"] = m["counterfactual"]
        sections["localization"] = m["localization"]
        extra["evidence"] = m.get("evidence")
        extra["maps_skipped"] = m.get("maps_skipped")
        if reconstruction_gate is None:
            sections["reconstruction"] = {**m["reconstruction"], "passed": None}
        timings.setdefault("counterfactual", evaluation.seconds)
        for k, idx in enumerate(evaluation.case_index[: cfg.report_cases]):
            name = _safe(case_ids[idx] if case_ids is not None else f"case_{int(idx)}")
            per_case[name] = case_figures(evaluation.sweep, k, out / "cases", name, cfg.target_confidence)
            figures += per_case[name]
        if m["localization"]:
            loc_png = plot_localization(m["localization"], out / "localization.png")
            figures.append(loc_png)
    bench = Path(workdir) / "faithfulness" / "faithfulness.json"  # from benchmarks/faithfulness.py, if run
    if bench.is_file():  # only when it was measured on these cohorts (an older run's numbers are not shown)
        result = json.loads(bench.read_text())
        ds = dict(dataset or {})
        if result.get("dataset_hash") == ds.get("hash") and result.get("external_hash") == ds.get("external_hash"):
            extra["faithfulness"] = result
    doc = build_metrics(
        dataset=dataset, agent_alignment=agent_alignment, timings_s=timings or None, gates=gates, **sections, **extra
    )
    metrics_path = write_metrics(out / "metrics.json", doc)
    cohort_figs = [p for p in figures if p.parent == out]
    index = render_report(doc, out / "index.html", per_case, cohort_figs)
    return ReportPaths(index, metrics_path, figures)


_CASE_FIGURES = ("panel", "heatmaps", "scores")


def add_report_sections(workdir: str | Path, **sections: Any) -> ReportPaths:
    """Add (or replace) top-level sections of an existing ``WORKDIR/report`` and re-render it.

    For results computed after the run, e.g. ``benchmarks/faithfulness.py``'s ``faithfulness``
    section. The figures already in the report folder are kept.

    Raises:
        FileNotFoundError: the workdir has no ``report/metrics.json`` yet.
    """
    out = Path(workdir) / "report"
    doc = json.loads((out / "metrics.json").read_text())
    doc.update(sections)
    metrics_path = write_metrics(out / "metrics.json", doc)
    per_case: dict[str, list[Path]] = {}
    for png in sorted((out / "cases").glob("*_panel.png")):
        case = png.name[: -len("_panel.png")]
        per_case[case] = [p for p in (out / "cases" / f"{case}_{k}.png" for k in _CASE_FIGURES) if p.is_file()]
    cohort_figs = sorted(out.glob("*.png"))
    index = render_report(json.loads(metrics_path.read_text()), out / "index.html", per_case, cohort_figs)
    return ReportPaths(index, metrics_path, cohort_figs + [p for v in per_case.values() for p in v])
