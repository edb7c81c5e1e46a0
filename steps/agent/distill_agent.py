"""ZenML step: distil the agent(s) for a black box and gate their alignment."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import mlflow
import numpy as np
from zenml import log_metadata, step

from components.artifacts import AgentRef, DatasetRef, DiffAERef, TeacherRef
from components.blackbox import check_contract
from components.caches import Latents
from components.config import AgentConfig, GateConfig
from components.data.dataset import load_dataset
from components.gates import agent_evidence
from components.models.agent import save_agent
from components.models.diffae import load_diffae
from components.training.agent_suite import cohort_scores, distill_suite
from registry.champion import champion_agent
from registry.gate_decision import decide
from registry.loaders import load_teacher
from steps.logs import progress_logger
from steps.tracking import log_dict_artifact, step_run

__all__ = ["distill_agent_step"]

logger = progress_logger(__name__)


# not cached: the decision depends on the registry's current champion, not only on the inputs
@step(enable_cache=False)
def distill_agent_step(
    teacher: TeacherRef,
    latents: Latents,
    dataset: DatasetRef,
    external: DatasetRef,
    agent_config: dict,
    gate_config: dict,
    workdir: str,
    experiment: str,
    holdout_fold: int = -1,
    diffae: DiffAERef | None = None,
    tracking_config: dict | None = None,
) -> tuple[Annotated[AgentRef, "agent"], Annotated[dict, "agent_gate"]]:
    """One agent per objective (paper Table 1); the configured one is saved and gated.

    With ``gates.agent_holdout_fold`` the training cohort's ``holdout_fold`` (the DiffAE's
    held-out fold) is left out of distillation and scored with the external cohort; with
    ``gates.agent_crossfit`` every other training row is also scored out of fold. With
    ``tracking_config`` and ``diffae`` the champion agent is re-scored on the same cases for
    non-inferiority.

    Returns:
        ``agent``: the :class:`~components.artifacts.AgentRef` (checkpoint, black box hash and
        mode, alignment per objective, threshold); ``agent_gate``: the agent gate's
        :meth:`~components.gates.GateResult.to_dict` (free-form evidence).
    """
    cfg = AgentConfig.model_validate(agent_config)
    gcfg = GateConfig.model_validate(gate_config)
    t0 = time.time()
    bb = load_teacher(teacher)
    ds, ext = load_dataset(dataset.path), load_dataset(external.path)
    check_contract(bb, channels=ds.images.shape[1], image_size=ds.images.shape[-1])
    held = (np.asarray(ds.folds) == holdout_fold) if gcfg.agent_holdout_fold and holdout_fold >= 0 \
        else np.zeros(len(ds.folds), bool)
    fit = ~held
    q_train = latents.load("train")
    blackbox = {"blackbox_hash": bb.content_hash, "blackbox_mode": bb.mode, "blackbox_head": bb.head_name or ""}
    with step_run(experiment, "distill-agent", tags={"stage": "agent", "dataset_hash": ds.hash, **blackbox},
                  params={"agent": agent_config}) as run:
        suite = distill_suite(
            bb, np.asarray(ds.images)[fit], q_train[fit], ext.images, latents.load("external"), cfg,
            q_train_aug={a: latents.load(a)[fit] for a in latents.train_augmented},
            progress=lambda frac, msg: logger.info(f"[agent {100 * frac:5.1f}%] {msg}"),
            holdout=(np.asarray(ds.images)[held], q_train[held]) if held.any() else None,
            crossfit_folds=np.asarray(ds.folds)[fit] if gcfg.agent_crossfit else None,
        )
        for objective, m in suite.alignment.items():
            mlflow.log_metrics({f"{objective}_{k}": float(v) for k, v in m.items()})
        cases = suite.gate_cases
        threshold = float(cases["threshold"])
        champ = None
        if tracking_config is not None and diffae is not None:
            gate_images = np.concatenate([np.asarray(ext.images), np.asarray(ds.images)[held]])
            q_gate = np.concatenate([latents.load("external"), q_train[held]])
            champ = champion_agent(tracking_config["agent_model_name"], tracking_config["teacher_model_name"],
                                   tracking_config["diffae_model_name"], load_diffae(diffae.path), q_gate,
                                   gate_images, current_blackbox=bb)
        evidence = agent_evidence(
            cases["teacher_decision"], cases["agent_score"], threshold, cases["kl"], gcfg,
            champion=None if champ is None else champ.per_case,
            champion_version=None if champ is None else champ.version,
            champion_reason=None if champ is None else champ.reason,
            same_blackbox=None if champ is None else champ.same_blackbox,
            champion_cases=cases["cohort"] != "crossfit", agent_decision=cases["agent_decision"],
            disjoint_cases=cases["cohort"] != "crossfit",
            context={"cohorts": {c: int((cases["cohort"] == c).sum()) for c in ("external", "holdout", "crossfit")},
                     # per-cohort point F1: most out-of-fold training rows are patients the teacher and
                     # the DiffAE were trained on (not patient-disjoint from them, only from the agent)
                     "f1_by_cohort": cohort_scores(cases)["f1"],
                     "holdout_fold": int(holdout_fold) if held.any() else None,
                     "external_dataset_hash": ext.hash, "dataset_hash": ds.hash,
                     "threshold_rule": suite.training[suite.primary]["decision_threshold_rule"], "objective": suite.primary})
        gate = decide(evidence)
        mlflow.log_metrics({f"gate_{m}_lower": float(ev.lower) for m, ev in evidence.metrics.items()
                            if ev.lower is not None})
        mlflow.log_metric("gate_agent_passed", float(gate.passed))
        mlflow.log_metric("agent_threshold", threshold)
        log_dict_artifact({"alignment": suite.alignment, "training": suite.training, "gate": gate.to_dict()},
                          "agent_alignment.json")
        path = Path(workdir) / "models" / "agent.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_agent(suite.agent, path, extra={"objective": suite.primary, **blackbox, "dataset_hash": ds.hash,
                                             "alignment": suite.alignment[suite.primary], "threshold": threshold})
    logger.info(f"[agent] gate: {gate.message}")
    log_metadata({"agent_alignment": suite.alignment})
    agent = AgentRef(path=str(path), run_id=run.info.run_id, objective=suite.primary, threshold=threshold,
                     blackbox_hash=bb.content_hash, blackbox_mode=bb.mode, blackbox_head=bb.head_name or "",
                     alignment=suite.alignment, wall_s=time.time() - t0)
    return agent, gate.to_dict()
