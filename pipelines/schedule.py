"""Scheduled retraining: the training pipeline on a cron schedule (Kubernetes or Kubeflow orchestrator)."""

from __future__ import annotations

from typing import Any

from components.config import ExperimentConfig
from components.errors import UserError

__all__ = ["ORCHESTRATOR_FLAVORS", "check_cron", "submit_scheduled", "schedule_training"]

#: ``--orchestrator`` -> the ZenML orchestrator flavor it needs on the active stack.
ORCHESTRATOR_FLAVORS = {"kubernetes": "kubernetes", "kubeflow": "diffexplainer_kubeflow"}


def check_cron(cron: str) -> None:
    """Raises UserError unless ``cron`` has the 5 fields of a cron expression."""
    if len(cron.split()) != 5:
        raise UserError(f"--cron {cron!r}: expected 5 fields (minute hour day month weekday)")


def submit_scheduled(pipeline: Any, cron: str, config: dict, inputs: dict[str, str]) -> Any:
    """Run ``pipeline`` with a ZenML ``Schedule(cron_expression=cron)`` on the active stack.

    The Kubernetes orchestrator turns it into a CronJob, the Kubeflow orchestrator into a KFP
    recurring run (``create_recurring_run``). No source fingerprint: a scheduled run always
    re-ingests (its source may change between runs); unchanged data is still served from the
    cache downstream.
    """
    from zenml.config.schedule import Schedule

    return pipeline.with_options(schedule=Schedule(cron_expression=cron))(config=config, **inputs)


def schedule_training(
    cfg: ExperimentConfig, cron: str, source: str, labels: str, external_source: str, external_labels: str,
    orchestrator: str | None = None,
) -> str:
    """Register the training pipeline with a cron schedule on the active ZenML stack.

    ``orchestrator`` (``kubernetes`` / ``kubeflow``), when given, must match the active stack's
    orchestrator. The per-step pod settings come from ``$DIFFEXPLAINER_K8S_SETTINGS``.

    Raises:
        UserError: bad cron expression, an orchestrator without schedule support, or not the
            requested one.
    """
    check_cron(cron)
    from zenml.client import Client

    active = Client().active_stack.orchestrator
    if active.flavor == "local":
        raise UserError(
            f"the active stack's orchestrator '{active.name}' (local) does not support schedules; "
            "activate a Kubernetes or Kubeflow stack (see infra/README.md) and run schedule again"
        )
    if orchestrator is not None and active.flavor != ORCHESTRATOR_FLAVORS[orchestrator]:
        raise UserError(f"--orchestrator {orchestrator} needs a stack with the {ORCHESTRATOR_FLAVORS[orchestrator]!r} "
                        f"orchestrator flavor; the active one is '{active.name}' ({active.flavor}): "
                        "`zenml stack set ...` first (infra/README.md)")
    from pipelines.k8s import with_k8s_settings
    from pipelines.training import training_pipeline

    submit_scheduled(with_k8s_settings(training_pipeline), cron, cfg.model_dump(mode="json"), {
        "train_source": source, "train_labels": labels, "external_source": external_source,
        "external_labels": external_labels})
    return f"scheduled training pipeline '{cron}' on orchestrator {active.name} ({active.flavor})"
