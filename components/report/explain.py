"""Single-patient explanation for ``diffexplainer explain``.

Writes into ``out_dir``: ``counterfactuals.npy`` (float32 ``[C, A, 4, H, W]`` in [-1,1]:
direction d = toward class d, alpha, slice), ``reconstruction.npy`` (``[4,H,W]``),
``attribution.npy`` (float32 ``[C, 4, H, W]``, index d = direction as in
``counterfactuals.npy``: integrated gradients of the black box from the counterfactuals
toward class d to the reconstruction, logit units: at the smallest alpha whose decision
reaches class d (the largest when none does; the first alpha when the reconstruction is
already class d) with ``cfg.attribution_alpha = "flip"``, else the mean over alphas; see
:mod:`components.counterfactual.attribution`; only with ``cfg.attribution_map``),
``scores.json`` (alphas, teacher and agent probabilities per direction and alpha, the random
control, the alpha search when the case is indeterminate, network evaluations) and PNG panels:
``panel.png``, ``heatmaps.png``, ``scores.png``, ``attribution.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.config import CounterfactualConfig
from components.counterfactual.attribution import attribution_stack, flip_counterfactual, score_change
from components.counterfactual.protocols import AgentLike, BlackBoxLike, DiffAELike
from components.counterfactual.sweep import run_sweep
from components.report.attribution_panel import plot_attribution
from components.report.cohort import case_figures
from components.report.metrics_json import json_ready

__all__ = ["explain_patient"]


def explain_patient(
    stack: np.ndarray | torch.Tensor,
    model: DiffAELike,
    agent: AgentLike,
    bb: BlackBoxLike,
    cfg: CounterfactualConfig,
    out_dir: str | Path,
    patient_id: str = "patient",
) -> dict[str, Any]:
    """Counterfactual sweep, heatmaps and scores for one patient.

    Args:
        stack: ``[4,H,W]`` in [-1,1], the patient's selected slices; not modified.
        model: DiffAE (eval mode).
        agent: agent ``[B,4Z] -> [B,C]``.
        bb: teacher ``[B,4,H,W] -> [B,C]`` (eval mode).
        cfg: counterfactual config (alphas, steps, search, random control).
        out_dir: output folder (created).
        patient_id: written into ``scores.json`` and figure titles.

    Returns:
        The ``scores.json`` content.
    """
    x = torch.as_tensor(np.asarray(stack, dtype=np.float32))
    if x.ndim != 3 or x.shape[0] != 4:
        raise ValueError(f"expected a [4,H,W] stack, got {tuple(x.shape)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep = run_sweep(model, agent, bb, x[None], cfg)
    np.save(out / "counterfactuals.npy", sweep.counterfactuals[0].astype(np.float32))
    np.save(out / "reconstruction.npy", sweep.recon[0].astype(np.float32))
    pngs = case_figures(sweep, 0, out, patient_id, cfg.target_confidence, prefix="")
    files = ["counterfactuals.npy", "reconstruction.npy"]
    attribution = None
    if cfg.attribution_map:
        flip = cfg.attribution_alpha == "flip"
        attr, baselines = attribution_stack(
            bb, sweep.recon, sweep.counterfactuals, cfg.attribution_steps, cfg.attribution_batch_size,
            teacher_cf=sweep.teacher_cf if flip else None)
        attr = attr[0]
        np.save(out / "attribution.npy", attr.astype(np.float32))
        files.append("attribution.npy")
        pngs.append(plot_attribution(sweep.recon[0], attr, out / "attribution.png",
                                     f"{patient_id}: counterfactual attribution (red = evidence removed)"))
        attribution = [
            {"direction": d, "sum": float(attr[d].sum()),
             "score_change": float(score_change(bb, sweep.recon, baselines[:, d], d)[0]),
             "attribution_alpha": cfg.attribution_alpha,  # which counterfactual was attributed
             "alpha": float(sweep.alphas[flip_counterfactual(sweep.counterfactuals[:, d], sweep.teacher_cf[:, d], d)[1][0]])
             if flip else None}
            for d in range(attr.shape[0])
        ]

    def directions(teacher: np.ndarray | None, agent_p: np.ndarray | None) -> list[dict[str, Any]] | None:
        if teacher is None:
            return None
        return [
            {"target_class": d, "teacher": teacher[0, d], "agent": None if agent_p is None else agent_p[0, d]}
            for d in range(teacher.shape[1])
        ]

    scores = {
        "patient_id": patient_id,
        "alphas": sweep.alphas,
        "normalized_direction": cfg.normalized_direction,
        "direction_axis": "index d of counterfactuals.npy = shift toward class d (q + alpha * dy'_d/dq)",
        "original": {"teacher": sweep.teacher_original[0]},
        "reconstruction": {"teacher": sweep.teacher_recon[0], "agent": sweep.agent_q[0]},
        "directions": directions(sweep.teacher_cf, sweep.agent_cf),
        "random_control": directions(sweep.teacher_random, sweep.agent_random),
        "random_alphas": sweep.random_alphas,
        "indeterminate": bool(sweep.indeterminate[0]),
        "search": {str(d): r.as_dict() for d, r in sweep.searches[0].items()} or None,
        "nfe": sweep.nfe[0].as_dict(),
        "attribution": attribution,
        "files": [*files, *(p.name for p in pngs)],
    }
    scores = json_ready(scores)
    (out / "scores.json").write_text(json.dumps(scores, indent=2, allow_nan=False) + "\n")
    return scores
