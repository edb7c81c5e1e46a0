"""The report's promotion-gate table."""

from __future__ import annotations

from components.report.html import render_report


def test_gate_table_shows_reported_metrics_without_a_verdict(tmp_path) -> None:
    gates = {"agent": {"passed": True, "metrics": {"f1": {"point": 0.82, "lower": 0.78, "threshold": 0.7}},
                       "champion": None, "reported": {"f1_disjoint": {"point": 0.8, "lower": 0.73, "n": 200}}}}
    html = render_report({"gates": gates}, tmp_path / "g.html").read_text()
    assert "f1_disjoint (reported)" in html and "0.73" in html


def test_gate_table_names_a_champion_metric_left_uncompared_and_why(tmp_path) -> None:
    champion = {"version": "3", "compared": True, "blackbox": "changed",
                "metrics": {"direction_agreement": {"point": 0.0, "lower": -0.02, "threshold": -0.05}},
                "not_compared": {"flip_gain": "1 / 9 case(s) indeterminate for the challenger / the champion"}}
    gates = {"counterfactual": {"passed": True, "champion": champion,
                                "metrics": {"flip_gain": {"point": 0.7, "lower": 0.5, "threshold": 0.15}}}}
    html = render_report({"gates": gates}, tmp_path / "g.html").read_text()
    assert "flip_gain: not compared with champion v3: 1 / 9 case(s) indeterminate" in html
    assert "direction_agreement: challenger - champion v3" in html
