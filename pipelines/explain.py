"""``diffexplainer explain``: counterfactuals for one patient folder with registered models."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.blackbox import BlackBox, check_contract, mode_description
from components.config import ExperimentConfig
from components.data.single_patient import read_patient_stack
from components.errors import UserError
from components.models.diffae import load_diffae
from components.report.explain import explain_patient
from registry.loaders import (
    fetch_registered_diffae,
    find_agent_for_blackbox,
    load_classifier,
    load_registered,
    registered_version,
)

__all__ = ["run_explain", "recorded_mode"]


def run_explain(
    cfg: ExperimentConfig, patient_dir: str, out_dir: str, classifier: str | None = None, alias: str = "champion",
    head_name: str | None = None,
) -> dict[str, Any]:
    """Explain one patient.

    With ``classifier`` the named black box is explained with the agent ``swap-classifier``
    distilled for it (found by its content hash); otherwise the registered teacher and agent at
    ``alias``. The DiffAE is always the registered one at ``alias`` (or ``latest``).
    ``head_name`` names the classifier's final Linear layer (``--head-name``, with
    ``classifier`` only); a wrong name is refused before the patient is read.

    Returns:
        ``{out, patient, diffae_version, agent_version, blackbox_mode, blackbox_head, blackbox
        (:func:`components.blackbox.mode_description`), slices, scores}``.

    Raises:
        UserError: ``head_name`` without ``classifier``, an unloadable classifier or a head it
            does not have, an unreadable patient, no registered model or agent.
    """
    if head_name is not None and classifier is None:
        raise UserError("--head-name names the head of --classifier; give both (the registered teacher names its own)")
    bb = load_classifier(classifier, head_name) if classifier is not None else None
    stack, row = read_patient_stack(patient_dir, cfg.ingest)
    out = Path(out_dir)
    diffae_ref = fetch_registered_diffae(cfg.tracking.diffae_model_name, alias, out / "diffae.pt")
    model = load_diffae(diffae_ref.path)
    if bb is not None:
        agent, agent_mv = find_agent_for_blackbox(cfg.tracking.agent_model_name, bb.content_hash)
    else:
        teacher_mv = registered_version(cfg.tracking.teacher_model_name, alias)
        bb = load_classifier(f"models:/{cfg.tracking.teacher_model_name}/{teacher_mv.version}")
        agent, agent_mv = load_registered(cfg.tracking.agent_model_name, alias)
    check_contract(bb, channels=stack.shape[0], image_size=stack.shape[-1])
    mode, head = recorded_mode(agent_mv.tags, bb)
    scores = explain_patient(stack, model, agent, bb, cfg.counterfactual, out, patient_id=Path(patient_dir).name)
    (out / "diffae.pt").unlink(missing_ok=True)
    return {"out": str(out), "patient": Path(patient_dir).name, "diffae_version": diffae_ref.registered_version,
            "agent_version": str(agent_mv.version), "blackbox_mode": mode, "blackbox_head": head,
            "blackbox": mode_description(mode, head), "slices": row.get("slice_indices"), "scores": scores}


def recorded_mode(agent_tags: Mapping[str, str], bb: BlackBox) -> tuple[str, str]:
    """``(mode, head)`` the agent was distilled in: its registry tags ``blackbox_mode`` /
    ``blackbox_head`` (as ``swap-classifier`` and training record them), else the loaded black
    box's own (an agent registered before the tags)."""
    if agent_tags.get("blackbox_mode"):
        return agent_tags["blackbox_mode"], agent_tags.get("blackbox_head", "")
    return bb.mode, bb.head_name or ""
