"""The ``training`` pipeline: composition only; the work happens in steps and components."""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path
from typing import Any

from zenml import Model, pipeline

from components.artifacts import as_record
from components.config import ExperimentConfig
from components.data.fingerprint import source_fingerprint
from components.errors import UserError
from pipelines.agent_tail import distil_explain_register
from pipelines.k8s import with_k8s_settings
from pipelines.step_errors import step_user_errors
from steps.agent.encode_latents import encode_latents_step
from steps.diffae.train_diffae import train_diffae_step
from steps.drift.drift_check import drift_alert_since, drift_check_step, drift_report_step
from steps.ingest.ingest_cohort import ingest_cohort
from steps.teacher.train_teacher import train_teacher_step

__all__ = ["training_pipeline", "run_training", "step_windows", "preflight_inputs"]


# The ZenML model whose versions mirror each run's gate decision and audit records.
ZENML_MODEL = "diffexplainer"


@pipeline(name="training", enable_cache=True, model=Model(name=ZENML_MODEL))
def training_pipeline(
    config: dict,
    train_source: str,
    train_labels: str,
    external_source: str,
    external_labels: str,
    train_fingerprint: str = "",
    external_fingerprint: str = "",
) -> None:
    """Ingest both cohorts -> drift check -> DiffAE -> teacher -> latents -> agent -> gate -> explain -> register."""
    workdir = str(Path(config["workdir"]))
    experiment = config["tracking"]["experiment"]
    dataset, validation = ingest_cohort(
        source=train_source, labels=train_labels, out_dir=str(Path(workdir) / "datasets" / "osic"),
        ingest_config=config["ingest"], cohort="osic", experiment=experiment, source_fingerprint=train_fingerprint, id="ingest_osic",
    )
    external, _ = ingest_cohort(
        source=external_source, labels=external_labels, out_dir=str(Path(workdir) / "datasets" / "external"),
        ingest_config=config["ingest"], cohort="external", experiment=experiment, source_fingerprint=external_fingerprint,
        id="ingest_external",
    )
    # Drift of the new training cohort against the champion's, before anything is trained.
    drift, drift_action = drift_check_step(dataset=dataset, validation=validation, drift_config=config["drift"],
                                           diffae_model_name=config["tracking"]["diffae_model_name"],
                                           workdir=workdir, experiment=experiment, id="drift_check")
    diffae = train_diffae_step(dataset=dataset, diffae_config=config["diffae"], workdir=workdir,
                               experiment=experiment, holdout_fold=config["ingest"]["n_folds"] - 1,
                               drift_action=drift_action, champion_model=config["tracking"]["diffae_model_name"])
    teacher = train_teacher_step(dataset=dataset, external=external, teacher_config=config["teacher"],
                                 workdir=workdir, experiment=experiment, after="drift_check")
    latents = encode_latents_step(diffae=diffae, dataset=dataset, external=external, workdir=workdir)
    distil_explain_register(config, diffae, teacher, latents, dataset, external, workdir, workdir,
                            auto_promote=config["tracking"]["auto_promote"])
    drift_report_step(drift=drift, workdir=workdir, after="evaluate_counterfactuals_step")


def _run_pipeline(pipe: Any, cfg: ExperimentConfig, train_source: str, train_labels: str, external_source: str,
                  external_labels: str) -> Any:
    return pipe(
        config=cfg.model_dump(mode="json"),
        train_source=str(train_source),
        train_labels=str(train_labels),
        external_source=str(external_source),
        external_labels=str(external_labels),
        train_fingerprint=source_fingerprint(str(train_source), str(train_labels)),
        external_fingerprint=source_fingerprint(str(external_source), str(external_labels)),
    )


def _epoch(moment: Any) -> float | None:
    """A ZenML timestamp (naive datetimes are UTC) as epoch seconds."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def step_windows(run: Any) -> dict[str, tuple[float, float]]:
    """Step name -> ``(start, end)`` epoch seconds of a finished pipeline run, as ZenML recorded them."""
    out: dict[str, tuple[float, float]] = {}
    for name, step_run in run.steps.items():
        start, end = _epoch(getattr(step_run, "start_time", None)), _epoch(getattr(step_run, "end_time", None))
        if start is not None and end is not None:
            out[name] = (start, end)
    return out


def preflight_inputs(cfg: ExperimentConfig, sources: dict[str, str], labels: dict[str, str]) -> None:
    """Check what the ingest steps will read, before a pipeline starts: each source is a
    folder or reachable ``s3://`` prefix holding files, each labels file a readable CSV with
    the required columns, and the blocking expectations are known names.

    Args:
        sources: option name (for the message) -> folder or ``s3://bucket/prefix``.
        labels: option name -> labels CSV.

    Raises:
        UserError: the first input that fails, named by its option.
    """
    from components.data.labels import read_labels
    from components.data.sources import open_source
    from components.data.validation import check_blocking_names

    check_blocking_names(cfg.ingest.blocking_expectations)
    for option, source in sources.items():
        try:
            if not open_source(str(source), cfg.ingest.s3_endpoint_url).list_files():
                raise UserError(f"source {source}: holds no files")
        except UserError as exc:
            raise UserError(f"{option}: {exc}") from None
    for option, path in labels.items():
        try:
            read_labels(Path(path))
        except UserError as exc:
            raise UserError(f"{option}: {exc}") from None


def run_training(
    cfg: ExperimentConfig,
    train_source: str,
    train_labels: str,
    external_source: str,
    external_labels: str,
    k8s_settings: str | None = None,
) -> dict[str, Any]:
    """Run the training pipeline on the active ZenML stack and summarise its outputs.

    ``k8s_settings`` (default ``$DIFFEXPLAINER_K8S_SETTINGS``) names a ``configs/k8s-*.yaml``
    whose per-step pod settings (GPU pool for the DiffAE step, ...) are applied.

    Raises:
        UserError: a source or labels file that fails :func:`preflight_inputs` (before anything
            runs), a step's UserError (:func:`pipelines.step_errors.step_user_errors`), or the
            drift check stopped the run (``drift.on_drift: alert``), with its reason.
    """
    preflight_inputs(cfg, {"--source": train_source, "--external-source": external_source},
                     {"--labels": train_labels, "--external-labels": external_labels})
    pipe = with_k8s_settings(training_pipeline, k8s_settings)
    started = time.time() - 1.0  # file mtimes may be coarser than the clock
    try:
        with step_user_errors(pipe):
            run = _run_pipeline(pipe, cfg, train_source, train_labels, external_source, external_labels)
    except RuntimeError:
        alert = drift_alert_since(cfg.workdir, started)
        if alert:
            raise UserError(alert) from None
        raise
    summary: dict[str, Any] = {"pipeline_run": str(run.id), "status": str(run.status)}
    summary["step_windows"] = step_windows(run)
    wanted = {"dataset", "drift", "reconstruction_gate", "registration", "metrics"}
    for step_name, step_run in run.steps.items():
        for out_name, arts in step_run.outputs.items():
            if out_name in wanted:
                art = arts[0] if isinstance(arts, list) else arts
                summary[f"{step_name}.{out_name}"] = as_record(art.load())
    return summary
