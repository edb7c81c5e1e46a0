"""``diffexplainer explain``: counterfactuals for one patient folder with registered models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.blackbox import check_contract
from components.config import ExperimentConfig
from components.data.single_patient import read_patient_stack
from components.models.diffae import load_diffae
from components.report.explain import explain_patient
from registry.loaders import (
    fetch_registered_diffae,
    find_agent_for_blackbox,
    load_classifier,
    load_registered,
    registered_version,
)

__all__ = ["run_explain"]


def run_explain(
    cfg: ExperimentConfig, patient_dir: str, out_dir: str, classifier: str | None = None, alias: str = "champion"
) -> dict[str, Any]:
    """Explain one patient.

    With ``classifier`` the named black box is explained with the agent ``swap-classifier``
    distilled for it (found by its content hash); otherwise the registered teacher and agent at
    ``alias``. The DiffAE is always the registered one at ``alias`` (or ``latest``).
    """
    stack, row = read_patient_stack(patient_dir, cfg.ingest)
    out = Path(out_dir)
    diffae_ref = fetch_registered_diffae(cfg.tracking.diffae_model_name, alias, out / "diffae.pt")
    model = load_diffae(diffae_ref["path"])
    if classifier is not None:
        bb = load_classifier(classifier)
        agent, agent_version = find_agent_for_blackbox(cfg.tracking.agent_model_name, bb.content_hash)
    else:
        teacher_mv = registered_version(cfg.tracking.teacher_model_name, alias)
        bb = load_classifier(f"models:/{cfg.tracking.teacher_model_name}/{teacher_mv.version}")
        agent, agent_mv = load_registered(cfg.tracking.agent_model_name, alias)
        agent_version = str(agent_mv.version)
    check_contract(bb, channels=stack.shape[0], image_size=stack.shape[-1])
    scores = explain_patient(stack, model, agent, bb, cfg.counterfactual, out, patient_id=Path(patient_dir).name)
    (out / "diffae.pt").unlink(missing_ok=True)
    return {"out": str(out), "patient": Path(patient_dir).name, "diffae_version": diffae_ref["version"],
            "agent_version": agent_version, "slices": row.get("slice_indices"), "scores": scores}
