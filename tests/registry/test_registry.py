"""Registration, audited promotion, rollback and lineage on a real (SQLite) MLflow registry."""

from __future__ import annotations

import json
import uuid

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from components.config import GateConfig
from components.errors import UserError
from components.gates import agent_evidence, reconstruction_evidence
from pipelines.cli import main
from registry.gate_decision import decide, decision_record
from registry.lineage import lineage, parse_model_spec
from registry.mlflow_registry import (
    CHAMPION,
    gate_tags,
    promote,
    read_audit_log,
    record_decision,
    register_model,
    rollback,
)
from steps.tracking import step_run

FAST = GateConfig(n_resamples=300)


def _recon_cases(psnr: float | np.ndarray, n: int = 30) -> dict[str, np.ndarray]:
    return {"psnr": np.broadcast_to(np.asarray(psnr, float), (n,)).copy(), "ssim": np.full(n, 0.99),
            "decision_kept": np.ones(n)}


def _register(name: str, psnr: float, dataset_hash: str = "abc123") -> str:
    gate = decide(reconstruction_evidence(_recon_cases(psnr), FAST))
    with step_run("registry-test", "train", tags={"dataset_hash": dataset_hash, "stage": "diffae"}) as run:
        mlflow.log_metric("psnr", psnr)
    torch.manual_seed(0)
    tags = {"dataset_hash": dataset_hash, "git_commit": "deadbeef", **gate_tags([gate])}
    return register_model(torch.nn.Linear(3, 2), name, run.info.run_id, tags)


def test_promotion_is_gated_audited_and_reversible() -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    v1 = _register(name, psnr=36.0)
    v2 = _register(name, psnr=20.0)
    v3 = _register(name, psnr=37.0)
    client = MlflowClient()

    rec = promote(name, v1, "first model", actor="alice")
    assert rec.action == "promote" and rec.previous_champion is None
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v1

    with pytest.raises(UserError) as exc:
        promote(name, v2, "try the bad one", actor="bob")
    assert "reconstruction" in str(exc.value) and "psnr" in str(exc.value)
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v1

    promote(name, v3, "better", actor="carol")
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v3
    back = rollback(name, "regression in the field", actor="dave")
    assert back.version == v1 and back.previous_champion == v3
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == v1

    log = read_audit_log(name)
    assert [r["action"] for r in log] == ["promote", "refuse", "promote", "rollback"]
    assert log[1]["failing_gates"] == ["reconstruction"] and log[1]["actor"] == "bob"
    assert log[2]["previous_champion"] == v1 and log[2]["metrics"]["psnr"] == pytest.approx(37.0)
    tags = client.get_model_version(name, v2).tags
    audit_tags = [json.loads(v) for k, v in tags.items() if k.startswith("audit.")]
    assert len(audit_tags) == 1 and audit_tags[0]["action"] == "refuse"

    info = lineage(f"{name}@{CHAMPION}")
    assert info["version"] == v1 and info["dataset"]["hash"] == "abc123"
    assert info["gates"]["reconstruction"]["result"] == "passed"
    assert info["code_version"] == "deadbeef"
    assert info["training_run"]["metrics"]["psnr"] == pytest.approx(36.0)
    assert {a["action"] for a in info["audit"]} >= {"promote", "rollback"}


def test_promote_cli_refusal_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    v = _register(name, psnr=10.0)
    capsys.readouterr()  # registration chatter from MLflow is not the CLI's output
    rc = main(["promote", "--model", name, "--version", v, "--reason", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "refused" in err[0] and "psnr" in err[0]
    assert main(["lineage", f"{name}/99"]) == 2
    assert main(["rollback", "--model", name, "--reason", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


def test_parse_model_spec() -> None:
    assert parse_model_spec("a@champion") == ("a", "@champion")
    assert parse_model_spec("a/3") == ("a", "3")
    assert parse_model_spec("a") == ("a", None)


def test_mlflow_validation_refuses_a_bound_below_the_floor_with_the_point_above() -> None:
    rng = np.random.default_rng(0)
    psnr = 35.5 + rng.normal(0.0, 3.0, 40)
    psnr += 35.5 - psnr.mean()
    gate = decide(reconstruction_evidence(_recon_cases(psnr, 40), FAST))
    assert not gate.passed and gate.failing == ["psnr_lower"]
    check = next(c for c in gate.checks if c["metric"] == "psnr_lower")
    assert check["point"] == pytest.approx(35.5) and check["value"] < 35.0 and check["status"] == "failed"
    ok = decide(reconstruction_evidence(_recon_cases(psnr + 2.0, 40), FAST))
    assert ok.passed and ok.message == "reconstruction gate passed"


def test_champion_challenger_noninferiority_through_mlflow() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(int)
    good = np.clip(0.5 * y + rng.normal(0.25, 0.12, 200), 0, 1)
    bad = np.where(rng.random(200) < 0.25, 1 - good, good)
    champion = {"teacher_decision": y, "agent_score": good, "agent_threshold": 0.5}
    cfg = GateConfig(n_resamples=500, agent_auc_min=0.5, agent_f1_min=0.3)
    equal = decide(agent_evidence(y, good, 0.5, None, cfg, champion=champion, champion_version="4"))
    worse = decide(agent_evidence(y, bad, 0.5, None, cfg, champion=champion, champion_version="4"))
    assert equal.passed
    assert not worse.passed and set(worse.failing) == {"auc_vs_champion_lower", "f1_vs_champion_lower"}
    assert "challenger - champion" in worse.message
    # the floors alone pass: only the comparison with the champion refuses it
    assert all(c["passed"] for c in worse.checks if not c["metric"].endswith("_vs_champion_lower"))


def test_decision_record_reaches_artifact_audit_log_and_lineage() -> None:
    name = f"m-{uuid.uuid4().hex[:8]}"
    v = _register(name, psnr=36.0)
    gate = decide(reconstruction_evidence(_recon_cases(36.0), FAST))
    record = decision_record([gate], {"dataset": "abc123", "external": "ext456"}, {name: None})
    assert set(record) >= {"verdict", "failing", "method", "bootstrap", "thresholds", "gates", "champion_versions",
                           "cohort_hashes", "library_versions", "decided_at"}
    assert record["bootstrap"]["seed"] == 0 and record["bootstrap"]["n_resamples"] == 300
    assert record["library_versions"]["mlflow"] and record["thresholds"]["reconstruction"]["psnr_lower"] == 35.0
    run_id = MlflowClient().get_model_version(name, v).run_id
    assert run_id is not None
    record_decision(name, v, run_id, record, actor="ci")
    audit = [r for r in read_audit_log(name) if r["action"] == "decide"]
    assert len(audit) == 1 and audit[0]["decision"]["verdict"] == "pass" and audit[0]["actor"] == "ci"
    info = lineage(f"{name}/{v}")
    assert info["gate_decision"]["verdict"] == "pass"
    assert info["gate_decision"]["cohort_hashes"] == {"dataset": "abc123", "external": "ext456"}
    assert info["gate_decision"]["gates"]["reconstruction"]["evidence"]["metrics"]["psnr"]["lower"] == 36.0
    tags = MlflowClient().get_model_version(name, v).tags
    assert tags["gate_decision.verdict"] == "pass" and tags["gate_decision.failing"] == "none"
