"""Lineage review: from a registered model version back to its data, runs, gates and code."""

from __future__ import annotations

import json
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from components.errors import UserError
from registry.mlflow_registry import read_audit_log, resolve_version

__all__ = ["parse_model_spec", "lineage"]


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """``NAME``, ``NAME@alias`` or ``NAME/version`` -> (name, version-or-@alias-or-None)."""
    if "@" in spec:
        name, alias = spec.split("@", 1)
        return name, "@" + alias
    if "/" in spec:
        name, version = spec.rsplit("/", 1)
        return name, version
    return spec, None


def _run_summary(client: MlflowClient, run_id: str) -> dict[str, Any]:
    run = client.get_run(run_id)
    keep = ("dataset_hash", "external_dataset_hash", "git_commit", "preset", "stage", "zenml_pipeline",
            "zenml_pipeline_run", "zenml_pipeline_run_name", "zenml_step", "blackbox_hash", "blackbox_mode",
            "blackbox_head", "cohort")
    return {
        "run_id": run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "tags": {k: v for k, v in run.data.tags.items() if k in keep},
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
    }


def _decision_record(client: MlflowClient, tags: dict[str, str]) -> dict[str, Any] | None:
    """The gate decision record logged at registration (None for versions registered before it)."""
    uri = tags.get("gate_decision.artifact")
    if not uri:
        return None
    run_id, _, path = uri.removeprefix("runs:/").partition("/")
    try:
        with open(client.download_artifacts(run_id, path)) as fh:
            return json.load(fh)
    except (MlflowException, OSError, ValueError) as exc:
        return {"verdict": tags.get("gate_decision.verdict"), "failing": tags.get("gate_decision.failing"),
                "error": f"decision record {uri} unreadable: {type(exc).__name__}"}


def lineage(spec: str) -> dict[str, Any]:
    """Everything recorded about one model version, newest data first.

    Returns:
        {model, version, aliases, dataset {hash, ingest runs, validation success},
        training_run {...}, gates {name: passed|failed + message}, gate_decision (the full
        decision record: bounds, thresholds, champion, cohort hashes, library versions,
        verdict, failing metrics), code_version,
        related_runs [...] (all runs of the same pipeline run), audit [...]}.

    Raises:
        UserError: unknown model, version or alias.
    """
    name, ver = parse_model_spec(spec)
    client = MlflowClient()
    version = resolve_version(client, name, ver)
    mv = client.get_model_version(name, version)
    tags = dict(mv.tags)
    out: dict[str, Any] = {
        "model": name,
        "version": version,
        "aliases": list(getattr(mv, "aliases", []) or []),
        "source": mv.source,
        "gates": {
            k.split(".", 1)[1]: {"result": v, "message": tags.get(f"{k}.message", "")}
            for k, v in tags.items()
            if k.startswith("gate.") and not k.endswith(".message")
        },
        "gates_passed": tags.get("gates_passed"),
        "gate_decision": _decision_record(client, tags),
        "code_version": tags.get("git_commit"),
        "config_preset": tags.get("preset"),
    }
    dataset_hash = tags.get("dataset_hash")
    training = _run_summary(client, mv.run_id) if mv.run_id else None
    out["training_run"] = training
    if training and not dataset_hash:
        dataset_hash = training["tags"].get("dataset_hash")
    out["dataset"] = {"hash": dataset_hash, "ingest_runs": []}
    if dataset_hash:
        runs: list[Run]
        try:
            runs = client.search_runs(
                experiment_ids=[e.experiment_id for e in client.search_experiments()],
                filter_string=f"tags.dataset_hash = '{dataset_hash}' and tags.stage = 'ingest'",
            )
        except MlflowException:
            runs = []
        for r in runs:
            summary = _run_summary(client, r.info.run_id)
            try:
                text = client.download_artifacts(r.info.run_id, "validation/results.json")
                with open(text) as fh:
                    summary["validation_success"] = json.load(fh).get("success")
            except (MlflowException, OSError, ValueError):
                summary["validation_success"] = None
            out["dataset"]["ingest_runs"].append(summary)
    pipeline_run = (training or {}).get("tags", {}).get("zenml_pipeline_run")
    out["pipeline_run"] = pipeline_run
    related: list[dict[str, Any]] = []
    if pipeline_run:
        runs = client.search_runs(
            experiment_ids=[e.experiment_id for e in client.search_experiments()],
            filter_string=f"tags.zenml_pipeline_run = '{pipeline_run}'",
        )
        related = [
            {"run_id": r.info.run_id, "name": r.info.run_name, "stage": r.data.tags.get("stage")} for r in runs
        ]
    out["related_runs"] = related
    out["audit"] = [r for r in read_audit_log(name) if r["version"] == version or r.get("previous_champion") == version]
    if not out["dataset"]["hash"]:
        raise UserError(f"{name} v{version} carries no dataset_hash tag: not registered by this pipeline")
    return out
