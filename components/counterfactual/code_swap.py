"""How much of a black box's decision rides on the DiffAE's semantic code ``z``.

A linear agent sees only ``q`` (the 4 slices' ``z``), and a counterfactual moves only ``q``
while the stochastic codes ``x_T`` stay fixed. Whatever the black box decides on that lives
in ``x_T`` is therefore out of reach of both. The code-swap test measures that share: decode
patient i's ``q`` with patient j's ``x_T`` (j from a seeded derangement) and regress the black
box's logit margin on the hybrid,

    m(render(x_T^j, q^i)) ≈ a · m(recon_i) + b · m(recon_j) + c,    m = logit_1 − logit_0,

by least squares. ``a`` is the part of the decision that follows ``z``, ``b`` the part that
follows ``x_T``; ``z_share = a / (a + b)`` (1: all in ``z``, 0: all in ``x_T``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from components.counterfactual.decoding import decode_stacks
from components.counterfactual.protocols import DiffAELike

__all__ = ["decision_swap"]


def _margin(classifier: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> np.ndarray:
    with torch.no_grad():
        logits = torch.cat([classifier(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)])
    return (logits[:, 1] - logits[:, 0]).numpy()


def decision_swap(
    model: DiffAELike,
    classifier: Callable[[torch.Tensor], torch.Tensor],
    recon: np.ndarray,
    x_T: np.ndarray,
    q: np.ndarray,
    steps: int,
    rounds: int = 2,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, float]:
    """Code-swap test of a (DiffAE, black box) pair on a cohort's inversions.

    Args:
        model: the DiffAE (``render`` is used through :func:`decode_stacks`).
        classifier: two-class black box, ``[B,4,H,W] in [-1,1] -> logits [B,2]``.
        recon: ``[N,4,H,W]`` reconstructions in [-1,1] (e.g. the reconstruction gate's cache).
        x_T: ``[N,4,H,W]`` their stochastic codes; ``q``: ``[N,4Z]`` their latents.
        steps: DDIM steps for decoding the hybrids.
        rounds: how many derangements (each decodes N hybrid stacks).
        seed: derangement seed.
        batch_size: slices per render call and stacks per classifier call.

    Returns:
        ``{"coef_z", "coef_x_T", "intercept", "z_share", "sign_follows_z", "n"}``:
        ``sign_follows_z`` is the share of hybrids whose decision equals the z donor's.

    Raises:
        ValueError: fewer than 3 patients, or mismatched shapes.
    """
    n = len(recon)
    if n < 3 or len(x_T) != n or len(q) != n:
        raise ValueError(f"decision_swap needs >= 3 patients with recon, x_T and q of equal length, got {n}")
    rng = np.random.default_rng(seed)
    own = _margin(classifier, torch.as_tensor(np.asarray(recon, np.float32)), batch_size)
    ys, a_cols, b_cols = [], [], []
    for _ in range(rounds):
        perm = rng.permutation(n)
        donor = np.empty(n, dtype=np.int64)
        donor[perm] = np.roll(perm, 1)  # a derangement: no patient keeps its own x_T
        with torch.no_grad():
            hybrid = decode_stacks(model, torch.as_tensor(np.asarray(x_T, np.float32)[donor]),
                                   torch.as_tensor(np.asarray(q, np.float32)), steps, batch_size)
        ys.append(_margin(classifier, hybrid, batch_size))
        a_cols.append(own)
        b_cols.append(own[donor])
    y, a, b = np.concatenate(ys), np.concatenate(a_cols), np.concatenate(b_cols)
    coef, *_ = np.linalg.lstsq(np.stack([a, b, np.ones_like(a)], axis=1), y, rcond=None)
    total = coef[0] + coef[1]
    return {
        "coef_z": float(coef[0]),
        "coef_x_T": float(coef[1]),
        "intercept": float(coef[2]),
        "z_share": float(coef[0] / total) if abs(total) > 1e-12 else float("nan"),
        "sign_follows_z": float(np.mean(np.sign(y) == np.sign(a))),
        "n": float(len(y)),
    }
