"""End to end on an isolated local ZenML + MLflow stack: the demo with the tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.config import load_config
from pipelines.cli import main
from pipelines.demo import run_demo
from steps.registry.lineage import lineage
from steps.registry.mlflow_registry import read_audit_log

TINY = Path(__file__).with_name("tiny.yaml")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, object]:
    workdir = tmp_path_factory.mktemp("demo")
    cfg = load_config(TINY, overrides={"workdir": str(workdir), "tracking": {"experiment": "e2e"}})
    summary = run_demo(cfg, progress=lambda m: None)
    return summary, workdir, cfg


def test_demo_writes_report_with_all_sections(demo_run: tuple[dict, Path, object]) -> None:
    summary, workdir, _ = demo_run
    assert summary["status"] == "completed"
    report = workdir / "report" / "index.html"
    assert summary["report"] == str(report) and report.is_file()
    metrics = json.loads((workdir / "report" / "metrics.json").read_text())
    for key in ("dataset", "reconstruction", "agent_alignment", "counterfactual", "localization", "timings_s"):
        assert key in metrics
    assert metrics["dataset"]["hash"].startswith("sha256:")
    assert set(metrics["agent_alignment"]) == {"L1", "MSE", "KL"}
    assert metrics["counterfactual"]["n_cases"] >= 1
    assert metrics["counterfactual"]["nfe_per_patient"] > 0
    for stage in ("ingest", "diffae", "teacher", "agent", "counterfactual", "total"):
        assert metrics["timings_s"][stage] is not None and metrics["timings_s"][stage] >= 0
    html = report.read_text()
    assert "data:image/png;base64," in html


def test_registration_matches_gates_and_lineage(demo_run: tuple[dict, Path, object]) -> None:
    summary, _, cfg = demo_run
    reg = next(v for k, v in summary.items() if k.endswith(".registration"))
    gate = next(v for k, v in summary.items() if k.endswith(".reconstruction_gate"))
    client = MlflowClient()
    for name in (cfg.tracking.diffae_model_name, cfg.tracking.teacher_model_name, cfg.tracking.agent_model_name):
        entry = reg[name]
        mv = client.get_model_version(name, entry["version"])
        assert mv.tags["dataset_hash"] == summary["ingest_osic.dataset"]["hash"]
        all_passed = mv.tags["gates_passed"] == "true"
        assert entry["promoted"] == all_passed
        assert mv.tags["gate.reconstruction"] == ("passed" if gate["passed"] else "failed")
        actions = [r["action"] for r in read_audit_log(name) if r["version"] == entry["version"]]
        assert actions == ["promote" if all_passed else "refuse"]
        info = lineage(f"{name}/{entry['version']}")
        assert info["dataset"]["hash"] == mv.tags["dataset_hash"]
        assert info["dataset"]["ingest_runs"], "lineage must reach the ingest run"
        assert info["pipeline_run"] == summary["pipeline_run"]


def test_rerun_reuses_cached_diffae(demo_run: tuple[dict, Path, object]) -> None:
    summary, workdir, cfg = demo_run
    second = run_demo(cfg, progress=lambda m: None)
    assert second["status"] == "completed"
    from zenml.client import Client

    run = Client().get_pipeline_run(second["pipeline_run"])
    assert str(run.steps["train_diffae_step"].status).endswith("cached")
    assert str(run.steps["ingest_osic"].status).endswith("cached")


def test_demo_cli_bad_preset_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown preset" in err[0]
