"""PSNR and SSIM of model images: the one place that computes them (MONAI's metrics).

Images are compared on the windowed image mapped to [0, 1]: a model image ``x ∈ [-1, 1]``
(the HU window, e.g. [-1000, 200] HU, mapped linearly) becomes ``(x + 1) / 2``, so PSNR uses
``max_val = 1`` and SSIM ``data_range = 1``, Gaussian window (σ = 1.5) of
:func:`ssim_window` pixels, per 2-D slice.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric

__all__ = ["to_unit_range", "ssim_window", "slice_quality", "image_quality"]


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map a model image in [-1, 1] to [0, 1] (``(x + 1) / 2``, clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def ssim_window(size: int) -> int:
    """SSIM window side for slices of side ``size``: 11, or the largest odd side <= ``size``."""
    return 11 if size >= 11 else (size if size % 2 else size - 1)


def _slices(x: np.ndarray | torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[...,H,W]`` -> ``[M,1,H,W]`` float32 in [0, 1]."""
    t = x.detach().float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, np.float32))
    return to_unit_range(t.reshape(-1, 1, h, w))


def slice_quality(
    reference: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """PSNR (dB) and SSIM of every slice of ``test`` against ``reference``.

    Args:
        reference: ``[..., H, W]`` in [-1, 1] (e.g. ``[N,4,H,W]`` stacks); not modified.
        test: same shape, in [-1, 1].

    Returns:
        float64 ``(psnr, ssim)``, each of shape ``[...]`` (one value per slice); PSNR is inf
        for identical slices.
    """
    if tuple(reference.shape) != tuple(test.shape):
        raise ValueError(f"reference {tuple(reference.shape)} and test {tuple(test.shape)} differ in shape")
    lead, (h, w) = tuple(reference.shape[:-2]), tuple(reference.shape[-2:])
    ref, tst = _slices(reference, h, w), _slices(test, h, w)
    psnr = cast(torch.Tensor, PSNRMetric(max_val=1.0, reduction="none")(tst, ref))
    ssim = cast(torch.Tensor, SSIMMetric(spatial_dims=2, data_range=1.0, win_size=ssim_window(min(h, w)),
                                         reduction="none")(tst, ref))
    return psnr.cpu().double().reshape(lead).numpy(), ssim.cpu().double().reshape(lead).numpy()


def image_quality(reference: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Mean PSNR (dB) and mean SSIM over all slices (see :func:`slice_quality`)."""
    psnr, ssim = slice_quality(reference, test)
    return float(psnr.mean()), float(ssim.mean())
