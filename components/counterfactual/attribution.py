"""Counterfactual attribution: the black box's own output change, attributed to pixels.

The difference map ``|counterfactual - reconstruction|`` shows everything the decoder
changed, including what correlates with the classifier's feature on the data manifold but
that the classifier never reads (DESIGN.md §5b). This map keeps only what the black box
uses: integrated gradients (Sundararajan et al. 2017, captum) of the black box's score along
the straight path from the counterfactual (the baseline) to the reconstruction. By IG's
completeness the attributions of a case sum to the score change the counterfactual caused,
``s(recon) - s(cf)``, in logit units, and a black box that ignores a pixel gives it 0.

Score and sign: for the direction toward class ``d`` the score is the evidence against
``d``, ``s_d(x) = logsumexp_{c != d} l_c(x) - l_d(x)`` (two classes: ``l_{1-d} - l_d``). So
for the direction toward the healthy class the map is positive where the reconstruction held
disease evidence that the counterfactual removed: the sign convention of the DiffExplainer
difference map toward the healthy class, restricted to what the classifier reads. Only
``forward`` and autograd are needed: TorchScript black boxes work as well.
"""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients
from torch import Tensor, nn

from components.counterfactual.baselines import teacher_module
from components.counterfactual.protocols import BlackBoxLike, module_device

__all__ = ["evidence_against", "score_change", "flip_counterfactual", "counterfactual_attribution", "attribution_stack"]


def evidence_against(logits: Tensor, cls: int) -> Tensor:
    """``logsumexp_{c != cls} logits_c - logits_cls``: ``[B,C]`` logits -> ``[B]``.

    Two classes: the logit margin of the other class over ``cls``.
    """
    others = torch.cat([logits[:, :cls], logits[:, cls + 1 :]], dim=1)
    return torch.logsumexp(others, dim=1) - logits[:, cls]


class _Score(nn.Module):
    """``x [B,4,H,W] -> s_d(x) [B]`` for a fixed direction ``d``."""

    def __init__(self, module: nn.Module, direction: int) -> None:
        super().__init__()
        self.module, self.direction = module, direction

    def forward(self, x: Tensor) -> Tensor:
        return evidence_against(self.module(x), self.direction)


def _as_alphas(counterfactual: np.ndarray | Tensor, recon: Tensor) -> Tensor:
    cf = torch.as_tensor(np.asarray(counterfactual, dtype=np.float32))
    if cf.ndim == recon.ndim:
        cf = cf[:, None]
    if cf.ndim != recon.ndim + 1 or cf.shape[0] != recon.shape[0] or cf.shape[2:] != recon.shape[1:]:
        raise ValueError(f"counterfactual {tuple(cf.shape)} does not match reconstruction {tuple(recon.shape)}")
    return cf


def score_change(
    bb: BlackBoxLike, recon: np.ndarray | Tensor, counterfactual: np.ndarray | Tensor, direction: int
) -> np.ndarray:
    """``s_d(recon) - mean_a s_d(cf_a)``: what :func:`counterfactual_attribution` sums to.

    Args:
        bb: black box ``[B,4,H,W] in [-1,1] -> logits [B,C]``.
        recon: ``[K,4,H,W]`` reconstructions in [-1,1].
        counterfactual: ``[K,4,H,W]`` or ``[K,A,4,H,W]`` counterfactuals toward class ``direction``.
        direction: the class the counterfactual moves toward.

    Returns:
        float64 ``[K]`` in logit units (positive when the counterfactual moved toward ``direction``).
    """
    module = teacher_module(bb)
    dev = module_device(module)
    r = torch.as_tensor(np.asarray(recon, dtype=np.float32))
    cf = _as_alphas(counterfactual, r)
    with torch.no_grad():
        s_r = evidence_against(module(r.to(dev)), direction)
        s_cf = evidence_against(module(cf.flatten(0, 1).to(dev)), direction).view(cf.shape[:2]).mean(dim=1)
    return (s_r - s_cf).double().cpu().numpy()


def flip_counterfactual(
    counterfactuals: np.ndarray, teacher_cf: np.ndarray, target: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per case the minimal counterfactual of a sweep: the first alpha whose decision is ``target``.

    Args:
        counterfactuals: ``[K,A,4,H,W]`` along the direction toward ``target`` (alphas ascending).
        teacher_cf: ``[K,A,C]`` the black box's probabilities on them.
        target: the class the direction moves toward.

    Returns:
        ``([K,4,H,W]`` the chosen counterfactuals, int64 ``[K]`` their alpha index); a case whose
        decision never reaches ``target`` gets the largest alpha.
    """
    cf, probs = np.asarray(counterfactuals), np.asarray(teacher_cf)
    if cf.shape[:2] != probs.shape[:2]:
        raise ValueError(f"counterfactuals {cf.shape[:2]} and probabilities {probs.shape[:2]} differ in [K,A]")
    reached = probs.argmax(axis=2) == target  # [K,A]
    idx = np.where(reached.any(axis=1), reached.argmax(axis=1), cf.shape[1] - 1).astype(np.int64)
    return cf[np.arange(cf.shape[0]), idx], idx


def counterfactual_attribution(
    bb: BlackBoxLike,
    recon: np.ndarray | Tensor,
    counterfactual: np.ndarray | Tensor,
    direction: int,
    n_steps: int = 32,
    batch_size: int = 64,
) -> np.ndarray:
    """Integrated gradients of ``s_direction`` from the counterfactual to the reconstruction.

    Args:
        bb: black box ``[B,4,H,W] in [-1,1] -> logits [B,C]``; its ``nn.Module`` (``bb.module``
            or ``bb``, TorchScript included) must be in eval mode.
        recon: ``[K,4,H,W]`` reconstructions in [-1,1] (the IG input); not modified.
        counterfactual: ``[K,4,H,W]``, or ``[K,A,4,H,W]`` over an alpha sweep (the IG baselines;
            the maps of the alphas are averaged), toward class ``direction``; not modified.
        direction: the class the counterfactual moves toward.
        n_steps: IG integration steps (captum's Gauss-Legendre rule).
        batch_size: interpolated stacks per forward pass.

    Returns:
        float32 ``[K,4,H,W]`` signed relevance in logit units; per case the map sums to
        :func:`score_change` up to the integration error.
    """
    module = teacher_module(bb)
    dev = module_device(module)
    r = torch.as_tensor(np.asarray(recon, dtype=np.float32)).to(dev)
    cf = _as_alphas(counterfactual, r.cpu()).to(dev)
    ig = IntegratedGradients(_Score(module, direction))
    per_call = max(1, batch_size // n_steps)
    out = torch.zeros_like(r)
    for a in range(cf.shape[1]):
        for i in range(0, r.shape[0], per_call):
            out[i : i + per_call] += ig.attribute(
                r[i : i + per_call], baselines=cf[i : i + per_call, a], n_steps=n_steps,
                internal_batch_size=max(batch_size, 1),
            ).detach()
    return (out / cf.shape[1]).float().cpu().numpy()


def attribution_stack(
    bb: BlackBoxLike, recon: np.ndarray, counterfactuals: np.ndarray, n_steps: int = 32, batch_size: int = 64,
    teacher_cf: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`counterfactual_attribution` for every direction of a sweep.

    Args:
        bb: black box.
        recon: ``[K,4,H,W]``.
        counterfactuals: ``[K,D,A,4,H,W]`` (``SweepResult.counterfactuals``): direction ``d``
            moves toward class ``d``.
        n_steps, batch_size: as in :func:`counterfactual_attribution`.
        teacher_cf: ``[K,D,A,C]`` (``SweepResult.teacher_cf``): attribute each case's minimal
            counterfactual (:func:`flip_counterfactual`); None averages the maps of every alpha.

    Returns:
        float32 ``[K,D,4,H,W]``, index ``d`` = direction as in the sweep (and in ``counterfactuals.npy``),
        and the counterfactuals attributed, ``[K,D,4,H,W]`` (one alpha) or ``[K,D,A,4,H,W]``.
    """
    cfs = np.asarray(counterfactuals)
    if teacher_cf is not None:
        cfs = np.stack([flip_counterfactual(cfs[:, d], np.asarray(teacher_cf)[:, d], d)[0]
                        for d in range(cfs.shape[1])], axis=1)
    maps = np.stack([counterfactual_attribution(bb, recon, cfs[:, d], d, n_steps, batch_size)
                     for d in range(cfs.shape[1])], axis=1)
    return maps, cfs
