"""``schedule_training`` without a cluster: what it refuses, and the scheduled pipeline it would
submit to a Kubernetes orchestrator (captured just before ZenML's run, after composition)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from components.config import load_config
from components.errors import UserError
from pipelines.cli import main
from pipelines.k8s import ORCHESTRATOR_SETTINGS_KEY
from pipelines.schedule import schedule_training

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("s3://cohorts/osic", "s3://cohorts/osic/labels.csv", "s3://cohorts/ext", "s3://cohorts/ext/labels.csv")


def test_a_bad_cron_or_the_local_orchestrator_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(None, "cpu-small")
    with pytest.raises(UserError, match="expected 5 fields"):
        schedule_training(cfg, "0 3 * *", *SOURCES)
    with pytest.raises(UserError, match=r"\(local\) does not support schedules"):  # the embedded default stack
        schedule_training(cfg, "0 3 * * 1", *SOURCES)
    args = ["--source", SOURCES[0], "--labels", SOURCES[1], "--external-source", SOURCES[2],
            "--external-labels", SOURCES[3]]
    for cron in ("0 3 * *", "0 3 * * 1"):
        assert main(["schedule", "--cron", cron, *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")


def test_on_kubernetes_the_training_pipeline_is_submitted_with_the_cron_and_pod_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zenml.client
    from zenml.pipelines.pipeline_definition import Pipeline

    orchestrator = SimpleNamespace(name="k8s-prod", flavor="kubernetes")
    monkeypatch.setattr(zenml.client, "Client", lambda: SimpleNamespace(active_stack=SimpleNamespace(
        orchestrator=orchestrator)))
    monkeypatch.setenv("DIFFEXPLAINER_K8S_SETTINGS", str(ROOT / "configs" / "k8s-prod.yaml"))
    submitted: list[Any] = []
    monkeypatch.setattr(Pipeline, "_run", lambda self: submitted.append(self))  # prepared, not submitted

    cfg = load_config(None, "cpu-small")
    message = schedule_training(cfg, "0 3 * * 1", *SOURCES)
    assert message == "scheduled training pipeline '0 3 * * 1' on orchestrator k8s-prod (kubernetes)"
    (pipe,) = submitted
    run_args = pipe._run_args  # what ZenML 0.98 compiles and submits (a CronJob on Kubernetes)
    assert pipe.name == "training" and run_args["schedule"].cron_expression == "0 3 * * 1"
    assert set(pipe.configuration.settings) >= {ORCHESTRATOR_SETTINGS_KEY, "docker"}  # k8s-prod defaults
    gpu_pod = run_args["step_configurations"]["train_diffae_step"]["settings"][ORCHESTRATOR_SETTINGS_KEY]
    assert gpu_pod["pod_settings"]["node_selectors"] == {"diffexplainer.io/node-pool": "gpu"}
    assert {"ingest_osic", "ingest_external", "train_diffae_step", "distill_agent_step",
            "register_models_step"} <= set(pipe.invocations)
    for step, (source, labels) in {"ingest_osic": SOURCES[:2], "ingest_external": SOURCES[2:]}.items():
        params = pipe.invocations[step].parameters
        assert (params["source"], params["labels"]) == (source, labels), step
        assert params["source_fingerprint"] == "", "a scheduled run re-ingests (its source may change)"
