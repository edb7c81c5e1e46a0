"""Interventional reliance: how much a black box's output moves when a component is removed.

Ground truth for faithfulness (FunnyBirds, Hesse et al. 2023; DESIGN.md §5b): render the
same synthetic patients with and without each component (:mod:`components.data.interventions`),
score both with the black box and take the change of the target class's logit margin
``m_t(x) = l_t(x) - logsumexp_{c != t} l_c(x)`` (two classes: ``l_t - l_{1-t}``). The
reliance of a component is the mean ``|delta m_t|`` over the cases that carry it. An
explanation is then scored by how well its evidence shares on the components rank like
the reliances (:mod:`.evidence`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

__all__ = ["logit_margin", "reliance_deltas", "component_reliance"]


def logit_margin(bb: Callable[[Tensor], Tensor], x: np.ndarray | Tensor, target: int = 1,
                 batch_size: int = 64) -> np.ndarray:
    """``l_t - logsumexp_{c != t} l_c`` of the black box on ``x``.

    Args:
        bb: black box ``[B,4,H,W] in [-1,1] -> logits [B,C]``.
        x: ``[N,4,H,W]`` in [-1,1]; not modified.
        target: class ``t``.
        batch_size: stacks per call.

    Returns:
        float64 ``[N]`` in logit units.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    out = []
    with torch.no_grad():
        for i in range(0, xt.shape[0], batch_size):
            logits = bb(xt[i : i + batch_size]).detach().double().cpu()
            others = torch.cat([logits[:, :target], logits[:, target + 1 :]], dim=1)
            out.append(logits[:, target] - torch.logsumexp(others, dim=1))
    return torch.cat(out).numpy() if out else np.zeros(0)


def reliance_deltas(
    bb: Callable[[Tensor], Tensor],
    images: np.ndarray,
    removed: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray] | None = None,
    target: int = 1,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-case margin change ``m_t(without component) - m_t(with every component)``.

    Args:
        bb: black box.
        images: ``[N,4,H,W]`` in [-1,1], every component present.
        removed: component -> ``[N,4,H,W]`` the same cases without it.
        present: component -> bool ``[N]``; cases without the component get NaN (default: all).
        target: class whose margin is measured.
        batch_size: stacks per call.

    Returns:
        component -> float64 ``[N]`` (NaN where the component is absent).
    """
    base = logit_margin(bb, images, target, batch_size)
    out: dict[str, np.ndarray] = {}
    for name, x in removed.items():
        if np.shape(x) != np.shape(images):
            raise ValueError(f"{name}: shape {np.shape(x)} differs from the images' {np.shape(images)}")
        delta = logit_margin(bb, x, target, batch_size) - base
        mask = np.ones(len(base), dtype=bool) if present is None or name not in present else np.asarray(present[name], bool)
        out[name] = np.where(mask, delta, np.nan)
    return out


def component_reliance(
    bb: Callable[[Tensor], Tensor],
    images: np.ndarray,
    removed: Mapping[str, np.ndarray],
    present: Mapping[str, np.ndarray] | None = None,
    target: int = 1,
    batch_size: int = 64,
) -> dict[str, dict[str, float | int | None]]:
    """Mean ``|delta m_t|`` per component over the cases that carry it.

    Args: as :func:`reliance_deltas`.

    Returns:
        component -> ``reliance`` (mean |delta|, logit units; None without cases),
        ``mean_delta`` (signed mean: negative = removing it lowers the target margin) and
        ``n_cases``.
    """
    deltas = reliance_deltas(bb, images, removed, present, target, batch_size)
    table: dict[str, dict[str, float | int | None]] = {}
    for name, d in deltas.items():
        d = d[np.isfinite(d)]
        table[name] = {
            "reliance": float(np.abs(d).mean()) if d.size else None,
            "mean_delta": float(d.mean()) if d.size else None,
            "n_cases": int(d.size),
        }
    return table
