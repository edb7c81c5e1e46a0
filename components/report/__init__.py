"""Report: ``metrics.json`` (fixed shape, nulls where not measured), PNG figures and a
self-contained ``index.html``; plus the single-patient :func:`explain_patient`."""

from components.report.cohort import ReportPaths, case_figures, write_cohort_report
from components.report.explain import explain_patient
from components.report.figures import plot_case_panel, plot_heatmaps, plot_localization, plot_score_curve
from components.report.html import DIME_NFE_PER_IMAGE, embed_png, render_report
from components.report.metrics_json import SCHEMA, build_metrics, json_ready, validate_metrics, write_metrics

__all__ = [
    "SCHEMA", "build_metrics", "validate_metrics", "write_metrics", "json_ready",
    "plot_case_panel", "plot_heatmaps", "plot_score_curve", "plot_localization",
    "DIME_NFE_PER_IMAGE", "embed_png", "render_report",
    "ReportPaths", "case_figures", "write_cohort_report",
    "explain_patient",
]
