"""metrics.json: fixed shape, nulls for what was not measured, nan never written."""

from __future__ import annotations

import json

import numpy as np

from components.report.metrics_json import SCHEMA, build_metrics, validate_metrics, write_metrics


def test_empty_document_is_all_null_and_valid(tmp_path):
    doc = build_metrics()
    assert set(doc) == set(SCHEMA)
    assert all(v is None for v in doc.values())
    assert validate_metrics(doc) == []


def test_partial_sections_fill_required_fields_with_null(tmp_path):
    doc = build_metrics(
        dataset={"hash": "sha256:abc", "patients_ok": np.int64(10)},
        agent_alignment={"L1": {"auc": 0.91, "f1": np.float32(0.5)}},
        counterfactual={"flip_rate": float("nan"), "n_cases": 3, "extra_field": [1, 2]},
        localization={"saliency": {"auroc": 0.7}},
        criteria={"observable": {"x": 1}},
    )
    assert doc["dataset"] == {"hash": "sha256:abc", "patients_ok": 10, "patients_quarantined": None}
    assert doc["agent_alignment"]["L1"]["auc"] == 0.91 and doc["agent_alignment"]["L1"]["kl"] is None
    assert doc["agent_alignment"]["MSE"] is None and doc["agent_alignment"]["KL"] is None
    assert doc["counterfactual"]["flip_rate"] is None  # nan -> null, never a number
    assert doc["counterfactual"]["random_control_flip_rate"] is None
    assert doc["counterfactual"]["extra_field"] == [1, 2]
    assert doc["localization"]["diffexplainer"] is None
    assert doc["reconstruction"] is None and doc["timings_s"] is None
    assert doc["criteria"] == {"observable": {"x": 1}}
    assert validate_metrics(doc) == []
    path = write_metrics(tmp_path / "r" / "metrics.json", doc)
    loaded = json.loads(path.read_text())
    assert loaded == doc
    assert "NaN" not in path.read_text()


def test_validate_reports_missing_pieces():
    assert "missing section 'timings_s'" in validate_metrics({k: None for k in SCHEMA if k != "timings_s"})
    bad = build_metrics()
    bad["dataset"] = {"hash": "x"}
    assert any("patients_ok" in p for p in validate_metrics(bad))
