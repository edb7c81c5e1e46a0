"""Scheduled retraining: the training pipeline on a cron schedule (Kubernetes orchestrator)."""

from __future__ import annotations

from components.config import ExperimentConfig
from components.errors import UserError

__all__ = ["schedule_training"]


def schedule_training(
    cfg: ExperimentConfig, cron: str, source: str, labels: str, external_source: str, external_labels: str
) -> str:
    """Register the training pipeline with a cron schedule on the active ZenML stack.

    The local orchestrator of the embedded default has no schedules; the Kubernetes
    orchestrator turns this into a CronJob. Data and config unchanged between runs means the
    DiffAE step is served from ZenML's cache.

    Raises:
        UserError: bad cron expression or an orchestrator without schedule support.
    """
    if len(cron.split()) != 5:
        raise UserError(f"--cron {cron!r}: expected 5 fields (minute hour day month weekday)")
    from zenml.client import Client
    from zenml.config.schedule import Schedule

    orchestrator = Client().active_stack.orchestrator
    if orchestrator.flavor == "local":
        raise UserError(
            f"the active stack's orchestrator '{orchestrator.name}' (local) does not support schedules; "
            "activate a Kubernetes stack (see infra/) and run schedule again"
        )
    from pipelines.k8s import with_k8s_settings
    from pipelines.training import training_pipeline

    # No source fingerprint: a scheduled run always re-ingests (its source may change between runs).
    with_k8s_settings(training_pipeline).with_options(schedule=Schedule(cron_expression=cron))(
        config=cfg.model_dump(mode="json"), train_source=source, train_labels=labels,
        external_source=external_source, external_labels=external_labels,
    )
    return f"scheduled training pipeline '{cron}' on orchestrator {orchestrator.name} ({orchestrator.flavor})"
