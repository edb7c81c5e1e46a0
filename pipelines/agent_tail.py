"""The part both pipelines share: distil + gate the agent, gate the reconstructions, explain, register.

Composition only (called inside a ``@pipeline`` function); the work happens in the steps.
"""

from __future__ import annotations

from typing import Any

from steps.agent.distill_agent import distill_agent_step
from steps.evaluate.counterfactuals import evaluate_counterfactuals_step
from steps.evaluate.reconstruction_gate import reconstruction_gate_step
from steps.registry.register_models import register_models_step

__all__ = ["distil_explain_register"]


def distil_explain_register(
    config: dict, diffae: Any, teacher: Any, latents: Any, dataset: Any, external: Any, workdir: str, out_dir: str,
    auto_promote: bool, which: tuple[str, ...] = ("diffae", "teacher", "agent"),
) -> None:
    """Agent -> reconstruction gate -> counterfactual evaluation + gate -> registration.

    ``workdir`` holds the training run's caches (inversions); the agent, report and
    metrics go to ``out_dir`` (the workdir itself in the training pipeline).
    """
    experiment, tracking = config["tracking"]["experiment"], config["tracking"]
    agent, agent_gate = distill_agent_step(
        teacher=teacher, latents=latents, dataset=dataset, external=external, agent_config=config["agent"],
        gate_config=config["gates"], workdir=out_dir, experiment=experiment,
        holdout_fold=config["ingest"]["n_folds"] - 1, diffae=diffae, tracking_config=tracking)
    gate = reconstruction_gate_step(diffae=diffae, teacher=teacher, dataset=dataset, external=external,
                                    gate_config=config["gates"], ddim_steps=config["diffae"]["ddim_steps"],
                                    experiment=experiment, cache_dir=workdir,
                                    champion_model=tracking["diffae_model_name"])
    _, _, cf_gate = evaluate_counterfactuals_step(
        diffae=diffae, teacher=teacher, agent=agent, agent_gate=agent_gate, dataset=dataset, external=external,
        recon_gate=gate, counterfactual_config=config["counterfactual"], workdir=out_dir, experiment=experiment,
        gate_config=config["gates"], tracking_config=tracking)
    register_models_step(diffae=diffae, teacher=teacher, agent=agent, agent_gate=agent_gate, recon_gate=gate,
                         cf_gate=cf_gate, dataset_info=dataset, external_info=external, tracking_config=tracking,
                         preset=config["preset"], auto_promote=auto_promote, which=which)
