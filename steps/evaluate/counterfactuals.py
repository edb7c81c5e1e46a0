"""ZenML step: counterfactual evaluation on the external cohort and the HTML report."""

from __future__ import annotations

import json
import time
from typing import Annotated

import mlflow
import numpy as np
from zenml import log_metadata, step
from zenml.types import HTMLString

from components.artifacts import AgentRef, DatasetRef, DiffAERef, TeacherRef
from components.caches import reusable_inversions
from components.config import CounterfactualConfig, GateConfig
from components.counterfactual.criteria import per_case_manipulation
from components.counterfactual.evaluate import evaluate_cohort
from components.counterfactual.sweep import inversion_rows
from components.data.dataset import load_dataset
from components.gates import counterfactual_evidence, gates_section
from components.models.agent import load_agent
from components.models.diffae import DiffAE, load_diffae
from components.report.cohort import write_cohort_report
from registry.champion import champion_counterfactual
from registry.gate_decision import decide
from registry.loaders import load_teacher
from steps.logs import progress_logger
from steps.tracking import numeric_metrics, step_run

__all__ = ["evaluate_counterfactuals_step"]

logger = progress_logger(__name__)


def _gate_inversions(recon_gate: dict, model: DiffAE, dataset_hash: str, steps: int, depth: float = 1.0) -> tuple | None:
    """The reconstruction gate's cached ``(recon, x_T, q)`` when they fit this evaluation
    (:func:`components.caches.reusable_inversions` decides)."""
    arrays = reusable_inversions(recon_gate.get("inversions"), model, dataset_hash, steps, depth)
    if arrays is not None:
        logger.info(f"[counterfactual] reusing the gate's DDIM inversions ({recon_gate['inversions']['path']})")
    return arrays


@step(enable_cache=False)  # with a champion registered, the decision depends on the registry, not only on inputs
def evaluate_counterfactuals_step(
    diffae: DiffAERef,
    teacher: TeacherRef,
    agent: AgentRef,
    agent_gate: dict,
    dataset: DatasetRef,
    external: DatasetRef,
    recon_gate: dict,
    counterfactual_config: dict,
    workdir: str,
    experiment: str,
    gate_config: dict | None = None,
    tracking_config: dict | None = None,
) -> tuple[Annotated[dict, "metrics"], Annotated[HTMLString, "report"], Annotated[dict, "counterfactual_gate"]]:
    """Run the counterfactual sweep on the external cohort, decide the counterfactual gate and
    write ``workdir/report`` (its ``gates`` section holds all three gates).

    With ``tracking_config`` (registered model names) and a champion agent, the champion's
    DiffAE, agent and black box sweep the same explained cases for the non-inferiority check
    (:func:`registry.champion.champion_counterfactual`; reused when all three weights equal).

    Returns:
        the report's metrics.json dict, the HTML page (a ZenML HTML artifact) and the
        counterfactual gate (GateResult dict); both dicts free-form (:mod:`components.artifacts`).
    """
    cfg = CounterfactualConfig.model_validate(counterfactual_config)
    gcfg = GateConfig.model_validate(gate_config or {})
    model = load_diffae(diffae.path)
    bb = load_teacher(teacher)
    agent_model, _ = load_agent(agent.path)
    ext = load_dataset(external.path)
    t0 = time.time()
    dataset_info = {"hash": dataset.hash, "patients_ok": dataset.patients_ok,
                    "patients_quarantined": dataset.patients_quarantined, "external_hash": external.hash,
                    "external_patients_ok": external.patients_ok}
    timings_s = {"ingest": dataset.wall_s + external.wall_s, "diffae": diffae.stage_wall_s, "teacher": teacher.seconds,
                 "agent": agent.wall_s, "reconstruction_gate": recon_gate.get("wall_s")}
    with step_run(experiment, "counterfactuals", tags={"stage": "counterfactual", "dataset_hash": dataset.hash,
                  "external_dataset_hash": ext.hash}, params={"counterfactual": counterfactual_config}) as run:
        inversions = _gate_inversions(recon_gate, model, ext.hash, cfg.ddim_step_count, cfg.ddim_depth)
        evaluation = evaluate_cohort(model, agent_model, bb, np.asarray(ext.images), np.asarray(ext.lung_masks), cfg,
                                     masks=None if ext.masks is None else np.asarray(ext.masks),
                                     distractor=None if ext.distractor is None else np.asarray(ext.distractor),
                                     marker=None if ext.marker is None else np.asarray(ext.marker),
                                     inversions=inversions,
                                     progress=lambda msg: logger.info(f"[counterfactual {time.time() - t0:6.0f} s] {msg}"))
        per_case = per_case_manipulation(evaluation.sweep)
        champ = None
        if tracking_config is not None:
            idx = evaluation.case_index
            champ = champion_counterfactual(
                tracking_config["agent_model_name"], tracking_config["teacher_model_name"],
                tracking_config["diffae_model_name"], (model, agent_model, bb), np.asarray(ext.images)[idx], cfg,
                dict(per_case), precomputed=None if inversions is None else inversion_rows(inversions, idx))
        cf_gate = decide(counterfactual_evidence(
            per_case["direction_agreement"], per_case["flips"], per_case["random_flips"], gcfg,
            champion_version=None if champ is None else champ.version,
            champion_reason=None if champ is None else champ.reason,
            flip_cases=per_case["flip_cases"], champion=None if champ is None else champ.per_case,
            same_blackbox=None if champ is None else champ.same_blackbox))
        logger.info(f"[counterfactual] {cf_gate.message}")
        mlflow.log_metric("gate_counterfactual_passed", float(cf_gate.passed))
        timings = {**timings_s, "counterfactual": time.time() - t0}
        timings["total"] = sum(v for v in timings.values() if v is not None)
        paths = write_cohort_report(
            workdir, evaluation, cfg,
            dataset=dataset_info,
            reconstruction_gate={**recon_gate["values"]["external"], "passed": recon_gate["passed"],
                                 "message": recon_gate["message"], "ddim_steps": recon_gate["ddim_steps"],
                                 "osic_holdout": recon_gate["values"].get("osic_holdout")},
            agent_alignment=agent.alignment,
            timings_s=timings,
            run_ids={"diffae": diffae.run_id, "teacher": teacher.run_id or teacher.path, "agent": agent.run_id,
                     "counterfactuals": run.info.run_id},
            case_ids=list(ext.patients["patient"]),
            gates=gates_section([recon_gate, agent_gate, cf_gate]),
            blackbox={"mode": bb.mode, "head": bb.head_name, "hash": bb.content_hash, "source": bb.source},
        )
        metrics = json.loads(paths.metrics_json.read_text())
        mlflow.log_metrics(numeric_metrics({k: metrics.get(k) or {} for k in ("counterfactual", "localization")}))
        mlflow.log_artifacts(str(paths.index_html.parent), artifact_path="report")
    log_metadata({"counterfactual": metrics.get("counterfactual") or {}})
    return metrics, HTMLString(paths.index_html.read_text()), cf_gate.to_dict()
