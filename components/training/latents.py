"""Encode ingested stacks to DiffAE latents ``q`` (computed once per dataset version)."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from components.models.offload import AnyDiffAE

__all__ = ["AUGMENTATIONS", "augment_stacks", "encode_latents"]


#: Label-preserving stack augmentations for agent training pairs (DESIGN.md §5a: more pairs
#: made the linear agent more faithful): a left-right flip and one-pixel shifts.
AUGMENTATIONS = ("flip", "shift+x", "shift-x", "shift+y", "shift-y")


def augment_stacks(images: ArrayLike, name: str) -> np.ndarray:
    """One augmentation of ``[N,4,H,W]`` stacks (new array; the input is not modified).

    ``flip`` mirrors W; ``shift±x`` / ``shift±y`` roll W / H by one pixel (the border is
    air, so the wrap-around moves air into air).
    """
    x = np.asarray(images, dtype=np.float32)
    if name == "flip":
        return np.ascontiguousarray(x[..., ::-1])
    shifts = {"shift+x": (1, 3), "shift-x": (-1, 3), "shift+y": (1, 2), "shift-y": (-1, 2)}
    if name not in shifts:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
    shift, axis = shifts[name]
    return np.roll(x, shift, axis=axis)


@torch.no_grad()
def encode_latents(model: AnyDiffAE, images: ArrayLike, batch_size: int = 128) -> np.ndarray:
    """Latents of stacks.

    Args:
        model: the trained DiffAE (eval mode).
        images: ``[N,4,H,W]`` float32 in [-1,1].
        batch_size: stacks per encoder call.

    Returns:
        float32 ``[N, 4*Z]`` (Z = ``model.z_dim``), slices concatenated in slice order.
    """
    model.eval()
    x = np.asarray(images, dtype=np.float32)
    out = [
        model.encode_stack(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    if not out:
        return np.zeros((0, 4 * model.z_dim), np.float32)
    return torch.cat(out).numpy()
