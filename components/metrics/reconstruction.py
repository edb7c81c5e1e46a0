"""Reconstruction quality of a DiffAE: the z-swap test.

PSNR / SSIM of DDIM-inversion reconstructions (and the black box's agreement on them) are in
:mod:`components.metrics.reconstruction_eval`; the image range all image metrics use (the
windowed image mapped to [0, 1]) and PSNR / SSIM themselves in
:mod:`components.metrics.image_quality`.
"""

from __future__ import annotations

import numpy as np
import torch

from components.metrics.image_quality import to_unit_range
from components.models.diffae import DiffAE

__all__ = ["zswap_rate"]


@torch.no_grad()
def zswap_rate(
    model: DiffAE, images: np.ndarray, steps: int, batch_size: int = 64, seed: int = 0
) -> float:
    """Share of slices whose decode follows the semantic code ``z`` rather than ``x_T``.

    Patients are paired by a seeded derangement (A, B); every slice of A is inverted with
    its own ``z_A`` to ``x_T^A`` and then decoded with B's code of the same slice level:
    ``render(x_T^A, z_B)``. A slice counts when the decode is closer (MSE on [0, 1] images)
    to B's original than to A's.

    Args:
        model: a trained :class:`DiffAE`.
        images: ``[N,4,H,W]`` float32 in [-1, 1], N >= 2.
        steps: DDIM steps for inversion and decoding.
        batch_size: patients per batch.
        seed: pairing seed.

    Returns:
        Fraction in [0, 1] over all ``N·4`` slices.
    """
    n, s, h, w = images.shape
    if n < 2:
        raise ValueError("zswap_rate needs at least 2 patients")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    donor = np.empty(n, dtype=np.int64)
    donor[perm] = np.roll(perm, 1)  # derangement: a cycle through the permutation
    model.eval()
    device = model.device
    hits, total = 0, 0
    for start in range(0, n, batch_size):
        a = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size], dtype=np.float32)).to(device)
        b = torch.from_numpy(np.ascontiguousarray(images[donor[start:start + batch_size]], dtype=np.float32)).to(device)
        fa, fb = a.reshape(-1, 1, h, w), b.reshape(-1, 1, h, w)
        z_a, z_b = model.encode(fa), model.encode(fb)
        swapped = model.render(model.invert(fa, z_a, steps), z_b, steps)
        d_a = ((to_unit_range(swapped) - to_unit_range(fa)) ** 2).mean(dim=(1, 2, 3))
        d_b = ((to_unit_range(swapped) - to_unit_range(fb)) ** 2).mean(dim=(1, 2, 3))
        hits += int((d_b < d_a).sum())
        total += fa.shape[0]
    return hits / total
