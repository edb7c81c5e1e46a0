"""Structural types of the models the counterfactual code calls.

Any object with these call signatures works (the real DiffAE, agent and black box, or the
tiny stand-ins of the tests); nothing here imports the model implementations.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["DiffAELike", "AgentLike", "BlackBoxLike", "module_device"]


@runtime_checkable
class DiffAELike(Protocol):
    """Diffusion autoencoder: semantic encoder + DDIM decoder (DESIGN.md §1 step 2)."""

    def encode_stack(self, x: Tensor) -> Tensor:
        """``x: [B,4,H,W] in [-1,1]`` -> ``q: [B,4*Z]``, slice latents concatenated in order."""
        ...

    def invert(self, x0: Tensor, z: Tensor, steps: int, *, depth: float = 1.0) -> Tensor:
        """``x0: [B,1,H,W]``, ``z: [B,Z]`` -> stochastic code ``x_T: [B,1,H,W]`` (DDIM inversion;
        ``depth < 1``: partial, to ``x_{t0}``)."""
        ...

    def render(self, x_T: Tensor, z: Tensor, steps: int, depth: float = 1.0) -> Tensor:
        """``x_T: [B,1,H,W]``, ``z: [B,Z]`` -> ``x0: [B,1,H,W] in [-1,1]`` (deterministic DDIM)."""
        ...

    def reconstruct_stack(self, x: Tensor, steps: int, depth: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """``x: [B,4,H,W]`` -> ``(recon [B,4,H,W], x_T [B,4,H,W], q [B,4*Z])``."""
        ...


@runtime_checkable
class AgentLike(Protocol):
    """Linear agent on DiffAE latents: ``q: [B,4*Z] -> logits [B,C]``, differentiable in q."""

    def __call__(self, q: Tensor) -> Tensor: ...


@runtime_checkable
class BlackBoxLike(Protocol):
    """Teacher classifier: ``x: [B,4,H,W] in [-1,1] -> logits [B,C]``.

    The underlying ``torch.nn.Module`` may be exposed as ``.module`` (needed by Grad-CAM).
    """

    def __call__(self, x: Tensor) -> Tensor: ...


def module_device(obj: object) -> torch.device:
    """Device of the first parameter of ``obj`` (or of ``obj.module``); CPU when it has none."""
    for candidate in (obj, getattr(obj, "module", None)):
        params = getattr(candidate, "parameters", None)
        if callable(params):
            try:
                return next(iter(params())).device
            except (StopIteration, TypeError):
                continue
    return torch.device("cpu")
