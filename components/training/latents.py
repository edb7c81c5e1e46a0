"""Encode ingested stacks to DiffAE latents ``q`` (computed once per dataset version)."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from components.models.diffae import DiffAE

__all__ = ["encode_latents"]


@torch.no_grad()
def encode_latents(model: DiffAE, images: ArrayLike, flip: bool = False, batch_size: int = 128) -> np.ndarray:
    """Latents of stacks.

    Args:
        model: the trained DiffAE (eval mode).
        images: ``[N,4,H,W]`` float32 in [-1,1].
        flip: encode the horizontally flipped stacks instead (training-pair augmentation).
        batch_size: stacks per encoder call.

    Returns:
        float32 ``[N, 4*Z]`` (Z = ``model.z_dim``), slices concatenated in slice order.
    """
    model.eval()
    x = np.asarray(images, dtype=np.float32)
    if flip:
        x = x[..., ::-1]
    out = [
        model.encode_stack(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    if not out:
        return np.zeros((0, 4 * model.z_dim), np.float32)
    return torch.cat(out).numpy()
