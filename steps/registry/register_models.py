"""ZenML step: register DiffAE, teacher and agent in MLflow with lineage and gate tags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
from zenml import get_step_context, log_metadata, step

from components.artifacts import AgentRef, DatasetRef, DiffAERef, RegisteredVersion, Registration, TeacherRef
from components.errors import UserError
from components.gates import GateResult
from components.models.agent import load_agent
from components.models.diffae import load_diffae
from registry.gate_decision import decision_record
from registry.mlflow_registry import current_champion, gate_tags, promote, record_decision, register_model
from steps.logs import progress_logger
from steps.tracking import ensure_experiment, git_commit

__all__ = ["register_models_step"]

logger = progress_logger(__name__)


def _training_run(teacher: TeacherRef) -> str:
    """The MLflow run a teacher is registered under: the run that trained it."""
    if teacher.run_id is None:
        raise UserError(f"{teacher.path}: a swapped-in classifier has no training run to register the teacher under")
    return teacher.run_id


@step(enable_cache=False)
def register_models_step(
    diffae: DiffAERef,
    teacher: TeacherRef,
    agent: AgentRef,
    agent_gate: dict,
    recon_gate: dict,
    cf_gate: dict | None,
    dataset_info: DatasetRef,
    tracking_config: dict,
    preset: str,
    auto_promote: bool = True,
    which: tuple[str, ...] = ("diffae", "teacher", "agent"),
    external_info: DatasetRef | None = None,
) -> Annotated[Registration, "registration"]:
    """Register the models; promote them to champion only if every gate passed.

    Every version carries: dataset_hash, external_dataset_hash, git_commit, preset, the ZenML
    pipeline run and model version ids, and one ``gate.*`` tag per gate (reconstruction, agent,
    counterfactual). The decision record (bounds, thresholds, champion compared against,
    cohort hashes, library versions, verdict, failing metrics) is logged as an artifact of each
    version, mirrored in the ZenML model version's metadata and appended to the audit log. A
    refusal is audited like a promotion (see :mod:`registry.mlflow_registry`).

    Returns:
        The :class:`~components.artifacts.Registration`: per model name its new version, whether
        it was promoted and why, the verdict and the failing metrics.
    """
    ensure_experiment(tracking_config["experiment"])
    external_hash = external_info.hash if external_info is not None else ""
    gates = [GateResult.from_dict(recon_gate), GateResult.from_dict(agent_gate)]
    if cf_gate is not None:
        gates.append(GateResult.from_dict(cf_gate))
    ctx = get_step_context()
    base_tags = {
        "dataset_hash": dataset_info.hash,
        "external_dataset_hash": external_hash,
        "git_commit": git_commit(),
        "preset": preset,
        "zenml_pipeline_run": str(ctx.pipeline_run.id),
        "workdir": str(Path(dataset_info.path).resolve().parents[1])[:250],  # WORKDIR/datasets/osic
        **gate_tags(gates),
    }
    if ctx.model_version is not None:
        base_tags["zenml_model_version_id"] = str(ctx.model_version.id)
    loaders = {
        "diffae": lambda: (tracking_config["diffae_model_name"], load_diffae(diffae.path), diffae.run_id, {}),
        "teacher": lambda: (tracking_config["teacher_model_name"], torch.load(teacher.path, weights_only=False),
                            _training_run(teacher), {}),
        "agent": lambda: (tracking_config["agent_model_name"], load_agent(agent.path)[0], agent.run_id,
                          {"blackbox_hash": agent.blackbox_hash, "agent_objective": agent.objective,
                           "blackbox_mode": agent.blackbox_mode, "blackbox_head": agent.blackbox_head,
                           "agent_threshold": f"{agent.threshold:.6g}",
                           "blackbox_source": teacher.path[:250], "diffae_run_id": diffae.run_id}),
    }
    # A DiffAE reused from the registry (drift action agent_only) is not registered again.
    entries = [loaders[k]() for k in which if not (k == "diffae" and diffae.registered_version)]
    champions = {name: current_champion(name) for name, *_ in entries}
    record = decision_record(gates, {"dataset": dataset_info.hash, "external": external_hash}, champions)
    if ctx.model_version is not None:
        log_metadata(metadata={"gate_decision": record}, model_version_id=ctx.model_version.id)
    out: dict[str, RegisteredVersion] = {}
    for name, model, run_id, extra in entries:
        version = register_model(model, name, run_id, {**base_tags, **extra})
        record_decision(name, version, run_id, record, actor="pipeline")
        promoted, message = False, "auto-promotion disabled"
        if auto_promote:
            try:
                promote(name, version, "automatic promotion after the gate decision", actor="pipeline")
                promoted, message = True, "promoted to champion"
            except UserError as exc:
                message = str(exc)
        out[name] = RegisteredVersion(version=version, promoted=promoted, message=message, verdict=record["verdict"],
                                      failing=list(record["failing"]))
        logger.info(f"[register] {name} v{version}: {message}")
    registration = Registration(models=out)
    log_metadata({"registration": registration.to_dict()})
    return registration
