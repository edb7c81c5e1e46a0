"""A DiffAE whose networks run on another device (a GPU) for callers that keep tensors on the CPU.

The counterfactual, latent and reconstruction code moves its inputs to the device of each model's
first parameter (:func:`components.counterfactual.protocols.module_device`). Putting the DiffAE on a
GPU and leaving the black boxes and agents on the CPU (small networks, and code paths written for the
CPU) then needs every DiffAE call to take CPU tensors in and give CPU tensors back: that is what
:class:`OffloadedDiffAE` does. It has no ``parameters()``, so those callers see a CPU model, and
``state_dict()`` is the source model's, so cache keys (:func:`components.blackbox.state_hash`) stay the
same as for the model itself.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from components.models.diffae import DiffAE

__all__ = ["OffloadedDiffAE", "AnyDiffAE"]


class OffloadedDiffAE:
    """``model``'s encoder / DDIM inversion / decoding computed on ``device``, CPU tensors in and out.

    Args:
        model: the trained DiffAE (any device; left untouched, a copy is moved).
        device: where the copy runs, e.g. ``"cuda"``.

    Attributes:
        source: ``model`` itself (hashing, saving).
        target: the device the copy runs on.
        config, z_dim: the source model's.
    """

    def __init__(self, model: DiffAE, device: str | torch.device) -> None:
        self.source = model
        self.target = torch.device(device)
        self._model = copy.deepcopy(model).to(self.target).eval()
        self.config = model.config
        self.z_dim = model.z_dim

    @property
    def device(self) -> torch.device:
        """Where callers' tensors live: always the CPU."""
        return torch.device("cpu")

    def eval(self) -> OffloadedDiffAE:
        """No-op (the copy is always in eval mode); returns self, as ``nn.Module.eval`` does."""
        return self

    def state_dict(self) -> dict[str, Any]:
        """The source model's state (for cache keys)."""
        return self.source.state_dict()

    def _run(self, fn: Any, tensors: tuple[Tensor, ...], *args: Any, **kwargs: Any) -> Any:
        moved = [t.to(self.target, torch.float32) for t in tensors]
        with torch.no_grad():  # fp32 on the device too: the same numbers as the CPU model up to kernel order
            out = fn(*moved, *args, **kwargs)
        if isinstance(out, tuple):
            return tuple(o.float().cpu() for o in out)
        return out.float().cpu()

    def encode(self, x: Tensor) -> Tensor:
        """``x: [B,1,H,W] in [-1,1]`` -> ``z: [B,Z]`` (CPU)."""
        return self._run(self._model.encode, (x,))

    def encode_stack(self, x: Tensor) -> Tensor:
        """``x: [B,4,H,W] in [-1,1]`` -> ``q: [B,4Z]`` (CPU)."""
        return self._run(self._model.encode_stack, (x,))

    def invert(self, x0: Tensor, z: Tensor, steps: int, fixed_point_iters: int | None = None,
               depth: float = 1.0) -> Tensor:
        """DDIM inversion ``x0: [B,1,H,W], z: [B,Z] -> x_T: [B,1,H,W]`` (CPU)."""
        return self._run(self._model.invert, (x0, z), steps, fixed_point_iters=fixed_point_iters, depth=depth)

    def render(self, x_T: Tensor, z: Tensor, steps: int, depth: float = 1.0) -> Tensor:
        """DDIM decoding ``x_T: [B,1,H,W], z: [B,Z] -> x0: [B,1,H,W]`` in [-1,1] (CPU)."""
        return self._run(self._model.render, (x_T, z), steps, depth=depth)

    def reconstruct_stack(self, x: Tensor, steps: int, depth: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """``x: [B,4,H,W]`` -> ``(recon [B,4,H,W], x_T [B,4,H,W], q [B,4Z])``, all on the CPU."""
        return self._run(self._model.reconstruct_stack, (x,), steps, depth=depth)


#: What the latent, reconstruction and cache code accepts: the model itself or its offloaded form.
AnyDiffAE = DiffAE | OffloadedDiffAE
