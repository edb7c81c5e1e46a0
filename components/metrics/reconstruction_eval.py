"""The reconstruction gate's measurements: image fidelity and the teacher's agreement.

Paper criterion 1: a reconstruction ``I'_q`` (encode → DDIM-invert → render) must look like the
original (PSNR / SSIM on the windowed image mapped to [0, 1], see
:mod:`components.metrics.reconstruction`) and must keep the black box's decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric

from components.metrics.classification import prob_kl
from components.metrics.reconstruction import _ssim_window, to_unit_range
from components.models.diffae import DiffAE

__all__ = ["evaluate_reconstruction"]


@torch.no_grad()
def evaluate_reconstruction(
    model: DiffAE,
    classifier: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    steps: int,
    batch_size: int = 32,
    keep_samples: int = 0,
) -> dict[str, Any]:
    """Reconstruct stacks and compare them with the originals.

    Args:
        model: trained DiffAE (eval mode).
        classifier: black box ``[B,4,H,W] in [-1,1] -> logits [B,C]``.
        images: ``[N,4,H,W]`` float32 in [-1,1], held-out patients.
        steps: DDIM steps for inversion and decoding.
        batch_size: patients per batch (4 slices each).
        keep_samples: also return the first ``k`` originals and reconstructions.

    Returns:
        ``{"psnr": dB, "ssim", "decision_kept": fraction of stacks whose black-box argmax is
        unchanged, "teacher_kl": mean KL(p_original ‖ p_reconstruction), "n": stacks}``.
    """
    model.eval()
    n, s, h, w = images.shape
    psnr_metric = PSNRMetric(max_val=1.0, reduction="none")
    ssim_metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=_ssim_window(min(h, w)), reduction="none")
    psnrs, ssims, p_orig, p_rec, kept = [], [], [], [], []
    for start in range(0, n, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], dtype=np.float32))
        recon, _, _ = model.reconstruct_stack(x.to(model.device), steps)
        recon = recon.float().cpu()
        if start < keep_samples:
            kept.append((x[: keep_samples - start].numpy(), recon[: keep_samples - start].numpy()))
        a, b = to_unit_range(recon).reshape(-1, 1, h, w), to_unit_range(x).reshape(-1, 1, h, w)
        psnrs.append(psnr_metric(a, b).flatten())
        ssims.append(ssim_metric(a, b).flatten())
        p_orig.append(torch.softmax(classifier(x).float(), dim=1))
        p_rec.append(torch.softmax(classifier(recon).float(), dim=1))
    po, pr = torch.cat(p_orig).numpy(), torch.cat(p_rec).numpy()
    out: dict[str, Any] = {
        "psnr": float(torch.cat(psnrs).mean()),
        "ssim": float(torch.cat(ssims).mean()),
        "decision_kept": float((po.argmax(1) == pr.argmax(1)).mean()),
        "teacher_kl": prob_kl(po, pr),
        "n": float(n),
    }
    if kept:
        out["samples"] = (np.concatenate([a for a, _ in kept]), np.concatenate([b for _, b in kept]))
    return out
