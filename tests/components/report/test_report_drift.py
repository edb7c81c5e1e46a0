"""The report's drift section: shown with its per-slice rows when present, absent otherwise."""

from __future__ import annotations

from pathlib import Path

from components.report.html import render_report


def test_drift_section_rendered_with_slices(tmp_path: Path) -> None:
    rec = {"status": "tested", "statistic": 0.123, "p_value": 0.001, "alpha": 0.01, "drift": True,
           "n_reference": 400, "n_current": 120, "on_drift": "agent_only", "action": "agent_only",
           "validation_success": True,
           "per_slice": [{"slice": k, "statistic": 0.1 * k, "p_value": 0.5 - 0.1 * k} for k in range(4)]}
    html = render_report({"drift": rec}, tmp_path / "a.html").read_text()
    assert "Cohort drift" in html and "agent_only" in html and "400 / 120" in html
    assert html.count("<tr><td>3</td>") == 1  # slice 3's row
    assert "Great Expectations" in html
    plain = render_report({}, tmp_path / "b.html").read_text()
    assert "Cohort drift" not in plain
