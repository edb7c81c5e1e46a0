"""The ``training`` pipeline: composition only; the work happens in steps and components."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zenml import pipeline

from components.config import ExperimentConfig
from steps.ingest.ingest_cohort import ingest_cohort

__all__ = ["training_pipeline", "run_training"]


@pipeline(name="training", enable_cache=True)
def training_pipeline(
    config: dict,
    train_source: str,
    train_labels: str,
    external_source: str | None = None,
    external_labels: str | None = None,
) -> None:
    """Ingest both cohorts, then (as later stages land) train, gate, explain and register."""
    workdir = Path(config["workdir"])
    experiment = config["tracking"]["experiment"]
    ingest_cohort(
        source=train_source,
        labels=train_labels,
        out_dir=str(workdir / "datasets" / "osic"),
        ingest_config=config["ingest"],
        cohort="osic",
        experiment=experiment,
        id="ingest_osic",
    )
    if external_source is not None and external_labels is not None:
        ingest_cohort(
            source=external_source,
            labels=external_labels,
            out_dir=str(workdir / "datasets" / "external"),
            ingest_config=config["ingest"],
            cohort="external",
            experiment=experiment,
            id="ingest_external",
        )


def run_training(
    cfg: ExperimentConfig,
    train_source: str,
    train_labels: str,
    external_source: str | None = None,
    external_labels: str | None = None,
) -> dict[str, Any]:
    """Run the training pipeline on the active ZenML stack and summarise its outputs."""
    run = training_pipeline(
        config=cfg.model_dump(mode="json"),
        train_source=str(train_source),
        train_labels=str(train_labels),
        external_source=None if external_source is None else str(external_source),
        external_labels=None if external_labels is None else str(external_labels),
    )
    summary: dict[str, Any] = {"pipeline_run": str(run.id), "status": str(run.status)}
    for name, step_run in run.steps.items():
        outs = {}
        for out_name, arts in step_run.outputs.items():
            value = arts[0].load() if isinstance(arts, list) else arts.load()
            if isinstance(value, dict) and out_name in ("dataset",):
                outs[out_name] = {k: value.get(k) for k in ("path", "hash", "patients_ok", "patients_quarantined")}
        if outs:
            summary[name] = outs
    return summary
