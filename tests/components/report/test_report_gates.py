"""The report's promotion-gate table."""

from __future__ import annotations

from components.report.html import render_report


def test_gate_table_shows_reported_metrics_without_a_verdict(tmp_path) -> None:
    gates = {"agent": {"passed": True, "metrics": {"f1": {"point": 0.82, "lower": 0.78, "threshold": 0.7}},
                       "champion": None, "reported": {"f1_disjoint": {"point": 0.8, "lower": 0.73, "n": 200}}}}
    html = render_report({"gates": gates}, tmp_path / "g.html").read_text()
    assert "f1_disjoint (reported)" in html and "0.73" in html
