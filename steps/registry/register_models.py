"""ZenML step: register DiffAE, teacher and agent in MLflow with lineage and gate tags."""

from __future__ import annotations

from typing import Annotated

import torch
from zenml import get_step_context, log_metadata, step

from components.errors import UserError
from components.gates import GateResult
from components.models.agent import load_agent
from components.models.diffae import load_diffae
from steps.registry.mlflow_registry import gate_tags, promote, register_model
from steps.tracking import ensure_experiment, git_commit

__all__ = ["register_models_step"]


def _gate(d: dict) -> GateResult:
    return GateResult(name=d["name"], passed=bool(d["passed"]), checks=list(d["checks"]), message=d["message"])


@step(enable_cache=False)
def register_models_step(
    diffae: dict,
    teacher: dict,
    agent: dict,
    recon_gate: dict,
    dataset_info: dict,
    tracking_config: dict,
    preset: str,
    auto_promote: bool = True,
    which: tuple[str, ...] = ("diffae", "teacher", "agent"),
) -> Annotated[dict, "registration"]:
    """Register the three models; promote them to champion only if every gate passed.

    Every version carries: dataset_hash, external_dataset_hash, git_commit, preset, the ZenML
    pipeline run and model version ids, and one ``gate.*`` tag per gate. A refusal is audited
    like a promotion (see :mod:`steps.registry.mlflow_registry`).

    Returns:
        {model name: {version, promoted, message}}.
    """
    ensure_experiment(tracking_config["experiment"])
    gates = [_gate(recon_gate), _gate(agent["gate"])]
    ctx = get_step_context()
    base_tags = {
        "dataset_hash": dataset_info["hash"],
        "external_dataset_hash": dataset_info.get("external_hash", ""),
        "git_commit": git_commit(),
        "preset": preset,
        "zenml_pipeline_run": str(ctx.pipeline_run.id),
        **gate_tags(gates),
    }
    if ctx.model_version is not None:
        base_tags["zenml_model_version_id"] = str(ctx.model_version.id)
    loaders = {
        "diffae": lambda: (tracking_config["diffae_model_name"], load_diffae(diffae["path"]), diffae["run_id"], {}),
        "teacher": lambda: (tracking_config["teacher_model_name"], torch.load(teacher["path"], weights_only=False),
                            teacher["run_id"], {}),
        "agent": lambda: (tracking_config["agent_model_name"], load_agent(agent["path"])[0], agent["run_id"],
                          {"blackbox_hash": agent["blackbox_hash"], "agent_objective": agent["objective"],
                           "blackbox_source": str(teacher["path"])[:250], "diffae_run_id": str(diffae["run_id"])}),
    }
    entries = [loaders[k]() for k in which]
    out: dict[str, dict] = {}
    for name, model, run_id, extra in entries:
        version = register_model(model, name, run_id, {**base_tags, **extra})
        promoted, message = False, "auto-promotion disabled"
        if auto_promote:
            try:
                promote(name, version, "training pipeline: all gates passed", actor="pipeline")
                promoted, message = True, "promoted to champion"
            except UserError as exc:
                message = str(exc)
        out[name] = {"version": version, "promoted": promoted, "message": message}
        print(f"[register] {name} v{version}: {message}", flush=True)
    log_metadata({"registration": out})
    return out
