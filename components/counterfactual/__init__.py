"""Counterfactual generation and evaluation (paper §2.3-2.4, §3.4-3.5).

Entry points: :func:`run_sweep` (generate and score), :func:`evaluate_cohort` (the three
criteria + localisation vs baselines + where the evidence lies). Faithfulness:
:func:`counterfactual_attribution` (the black box's own output change attributed to pixels),
:func:`component_reliance` (interventional ground truth), :func:`model_contrast`. Models are passed in; any objects matching
:mod:`.protocols` work.
"""

from components.counterfactual.attribution import attribution_stack, counterfactual_attribution, score_change
from components.counterfactual.baselines import BASELINES, attribution_maps, last_spatial_layer
from components.counterfactual.criteria import (
    manipulation_criterion,
    observable_criterion,
    reconstruction_criterion,
)
from components.counterfactual.decoding import (
    NFECount,
    StackLatents,
    agent_probabilities,
    decode_stacks,
    encode_stacks,
    teacher_probabilities,
)
from components.counterfactual.evaluate import CohortEvaluation, evaluate_cohort, localization_maps, select_cases
from components.counterfactual.evidence import component_masses, evidence_shares, model_contrast, total_evidence
from components.counterfactual.heatmap import difference, difference_rgba, overlay_difference, symmetric_limit
from components.counterfactual.localization import (
    difference_relevance,
    localization_table,
    pointing_game,
    region_auroc,
    relevance_mass,
)
from components.counterfactual.manipulation import agent_gradient, random_directions, shift_latents
from components.counterfactual.protocols import AgentLike, BlackBoxLike, DiffAELike
from components.counterfactual.reliance import component_reliance, logit_margin, reliance_deltas
from components.counterfactual.search import AlphaSearch, AlphaSearchResult, run_searches
from components.counterfactual.sweep import SweepResult, is_indeterminate, run_sweep

__all__ = [
    "AgentLike", "BlackBoxLike", "DiffAELike",
    "NFECount", "StackLatents", "encode_stacks", "decode_stacks", "teacher_probabilities", "agent_probabilities",
    "agent_gradient", "random_directions", "shift_latents",
    "AlphaSearch", "AlphaSearchResult", "run_searches",
    "SweepResult", "run_sweep", "is_indeterminate",
    "reconstruction_criterion", "observable_criterion", "manipulation_criterion",
    "region_auroc", "pointing_game", "relevance_mass", "difference_relevance", "localization_table",
    "BASELINES", "attribution_maps", "last_spatial_layer",
    "difference", "difference_rgba", "overlay_difference", "symmetric_limit",
    "CohortEvaluation", "evaluate_cohort", "localization_maps", "select_cases",
    "counterfactual_attribution", "attribution_stack", "score_change",
    "component_masses", "evidence_shares", "model_contrast", "total_evidence",
    "component_reliance", "logit_margin", "reliance_deltas",
]
