"""Agent fidelity gate: AUC and F1 against the teacher's decisions."""

from __future__ import annotations

from components.config import GateConfig
from components.gates import agent_gate


def test_agent_gate_thresholds() -> None:
    cfg = GateConfig(agent_auc_min=0.95, agent_f1_min=0.85)
    ok = agent_gate({"auc": 0.97, "f1": 0.9, "kl": 0.08}, cfg)
    assert ok.passed and ok.name == "agent" and ok.message == "agent gate passed"
    low = agent_gate({"auc": 0.94, "f1": 0.9}, cfg)
    assert not low.passed and "auc = 0.94 fails >= 0.95" in low.message
    missing = agent_gate({"auc": 0.99}, cfg)
    assert not missing.passed and "f1 not measured" in missing.message
    assert agent_gate({"auc": float("nan"), "f1": 0.9}, cfg).passed is False
