"""ZenML step: distil the agent(s) for a black box and gate their alignment."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
from zenml import log_metadata, step

from steps.registry.loaders import load_classifier
from components.blackbox import check_contract
from components.config import AgentConfig, GateConfig
from components.data.dataset import load_dataset
from components.gates import agent_gate
from components.models.agent import save_agent
from components.training.agent_suite import distill_suite
from steps.tracking import log_dict_artifact, step_run

__all__ = ["distill_agent_step"]


@step
def distill_agent_step(
    teacher: dict,
    latents: dict,
    dataset: dict,
    external: dict,
    agent_config: dict,
    gate_config: dict,
    workdir: str,
    experiment: str,
) -> Annotated[dict, "agent"]:
    """One agent per objective (paper Table 1); the configured one is saved and gated.

    Returns:
        {path, run_id, objective, blackbox_hash, alignment {objective: metrics}, gate {...}}.
    """
    cfg = AgentConfig.model_validate(agent_config)
    t0 = time.time()
    bb = load_classifier(teacher["path"])
    ds, ext = load_dataset(dataset["path"]), load_dataset(external["path"])
    check_contract(bb, channels=ds.images.shape[1], image_size=ds.images.shape[-1])
    with step_run(experiment, "distill-agent", tags={"stage": "agent", "dataset_hash": ds.hash,
                  "blackbox_hash": bb.content_hash}, params={"agent": agent_config}) as run:
        suite = distill_suite(
            bb, ds.images, np.load(latents["train"]), ext.images, np.load(latents["external"]), cfg,
            q_train_aug={a: np.load(latents[f"train_{a}"]) for a in latents["augmentations"]},
            progress=lambda frac, msg: print(f"[agent {100 * frac:5.1f}%] {msg}", flush=True),
        )
        for objective, m in suite.alignment.items():
            mlflow.log_metrics({f"{objective}_{k}": float(v) for k, v in m.items()})
        gate = agent_gate(suite.alignment[suite.primary], GateConfig.model_validate(gate_config))
        mlflow.log_metric("gate_agent_passed", float(gate.passed))
        log_dict_artifact({"alignment": suite.alignment, "training": suite.training, "gate": gate.to_dict()},
                          "agent_alignment.json")
        path = Path(workdir) / "models" / "agent.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_agent(suite.agent, path, extra={"objective": suite.primary, "blackbox_hash": bb.content_hash,
                                             "dataset_hash": ds.hash, "alignment": suite.alignment[suite.primary]})
    print(f"[agent] gate: {gate.message}", flush=True)
    log_metadata({"agent_alignment": suite.alignment})
    return {"path": str(path), "run_id": run.info.run_id, "objective": suite.primary,
            "blackbox_hash": bb.content_hash, "alignment": suite.alignment, "gate": gate.to_dict(), "wall_s": time.time() - t0}
