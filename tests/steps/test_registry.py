"""Registration, audited promotion, rollback and lineage on a real (SQLite) MLflow registry."""

from __future__ import annotations

import json
import uuid

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from components.errors import UserError
from components.gates import evaluate_gate
from pipelines.cli import main
from steps.registry.lineage import lineage, parse_model_spec
from steps.registry.mlflow_registry import (
    CHAMPION,
    gate_tags,
    promote,
    read_audit_log,
    register_model,
    rollback,
)
from steps.tracking import step_run


def _register(name: str, psnr: float, dataset_hash: str = "abc123") -> str:
    gate = evaluate_gate("reconstruction", {"psnr": psnr}, {"psnr": (">=", 35.0)})
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
