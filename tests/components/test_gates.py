"""Promotion gates are pure functions of measured values."""

from __future__ import annotations

import pytest

from components.config import GateConfig
from components.gates import GateResult, evaluate_gate, reconstruction_gate


def test_reconstruction_gate_passes_on_good_values() -> None:
    res = reconstruction_gate({"psnr": 37.0, "ssim": 0.97, "decision_kept": 0.95, "teacher_kl": 0.02}, GateConfig())
    assert isinstance(res, GateResult) and res.passed
    assert all(c["status"] == "passed" for c in res.checks)


def test_gate_fails_when_threshold_above_measured_and_names_metric() -> None:
    cfg = GateConfig(psnr_min=40.0, ssim_min=0.5)
    res = reconstruction_gate({"psnr": 37.2, "ssim": 0.96}, cfg)
    assert not res.passed
    assert "psnr" in res.message and "37.2" in res.message and "40" in res.message
    assert "ssim" not in res.message.split("not measured")[0].split("failed:")[1]
    failed = [c["metric"] for c in res.checks if c["status"] == "failed"]
    assert failed == ["psnr"]


def test_optional_metrics_recorded_as_not_measured() -> None:
    res = reconstruction_gate({"psnr": 36.0, "ssim": 0.96}, GateConfig())
    assert res.passed
    status = {c["metric"]: c["status"] for c in res.checks}
    assert status["decision_kept"] == "not measured" and status["teacher_kl"] == "not measured"
    assert "not measured: decision_kept, teacher_kl" in res.message


def test_optional_metric_failing_when_present() -> None:
    res = reconstruction_gate({"psnr": 36.0, "ssim": 0.96, "teacher_kl": 0.5}, GateConfig(teacher_kl_max=0.1))
    assert not res.passed and "teacher_kl = 0.5 fails <= 0.1" in res.message


def test_required_metric_missing_fails() -> None:
    res = reconstruction_gate({"ssim": 0.99}, GateConfig())
    assert not res.passed and "psnr not measured" in res.message


@pytest.mark.parametrize(("op", "value", "ok"), [(">=", 1.0, True), (">", 1.0, False), ("<=", 1.0, True),
                                                 ("<", 0.5, True), ("==", 2.0, False)])
def test_evaluate_gate_ops(op: str, value: float, ok: bool) -> None:
    res = evaluate_gate("g", {"m": value}, {"m": (op, 1.0)})
    assert res.passed is ok
    assert res.to_dict()["checks"][0]["op"] == op


def test_nan_counts_as_not_measured() -> None:
    assert not evaluate_gate("g", {"m": float("nan")}, {"m": (">=", 0.0)}).passed
