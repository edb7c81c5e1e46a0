"""The reconstruction gate's measurements: image fidelity and the teacher's agreement.

Paper criterion 1: a reconstruction ``I'_q`` (encode → DDIM-invert → render) must look like the
original (PSNR / SSIM on the windowed image mapped to [0, 1], see
:mod:`components.metrics.image_quality`) and must keep the black box's decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from components.metrics.classification import prob_kl, prob_kl_per_case
from components.metrics.image_quality import slice_quality
from components.models.offload import AnyDiffAE

__all__ = ["evaluate_reconstruction", "reconstruct_cohort", "score_reconstruction", "semantic_reconstruction",
           "gate_semantic_cases"]

ProgressFn = Callable[[float, str], None]


@torch.no_grad()
def reconstruct_cohort(
    model: AnyDiffAE, images: np.ndarray, steps: int, batch_size: int = 32, progress: ProgressFn | None = None
) -> dict[str, np.ndarray]:
    """Encode, DDIM-invert and decode every stack of a cohort.

    Args:
        model: trained DiffAE (eval mode).
        images: ``[N,4,H,W]`` float32 in [-1,1].
        steps: DDIM steps for inversion and decoding.
        batch_size: patients per batch (4 slices each).
        progress: optional ``progress(fraction in [0,1], message)`` after each batch.

    Returns:
        float32 arrays ``recon [N,4,H,W]`` in [-1,1], ``x_T [N,4,H,W]`` (stochastic codes) and
        ``q [N,4Z]`` (semantic latents).
    """
    model.eval()
    n = images.shape[0]
    parts: dict[str, list[np.ndarray]] = {"recon": [], "x_T": [], "q": []}
    for start in range(0, n, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], dtype=np.float32))
        recon, x_t, q = model.reconstruct_stack(x.to(model.device), steps)
        for key, t in zip(("recon", "x_T", "q"), (recon, x_t, q)):
            parts[key].append(t.float().cpu().numpy())
        if progress is not None:
            done = min(start + batch_size, n)
            progress(done / n, f"reconstructed {done}/{n} stacks ({steps} DDIM steps)")
    h, w = images.shape[-2:]
    empty = {"recon": (0, 4, h, w), "x_T": (0, 4, h, w), "q": (0, 4 * model.z_dim)}
    return {k: np.concatenate(v) if v else np.zeros(empty[k], np.float32) for k, v in parts.items()}


@torch.no_grad()
def score_reconstruction(
    classifier: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    recon: np.ndarray,
    batch_size: int = 64,
    keep_samples: int = 0,
) -> dict[str, Any]:
    """PSNR / SSIM of reconstructions and the black box's agreement on them.

    Args:
        classifier: black box ``[B,4,H,W] in [-1,1] -> logits [B,C]``.
        images: ``[N,4,H,W]`` float32 in [-1,1], the originals.
        recon: ``[N,4,H,W]`` in [-1,1], their reconstructions.
        batch_size: stacks per classifier call.
        keep_samples: also return the first ``k`` originals and reconstructions.

    Returns:
        ``{"psnr": dB, "ssim", "decision_kept": fraction of stacks whose black-box argmax is
        unchanged, "teacher_kl": mean KL(p_original ‖ p_reconstruction), "n": stacks}`` (images
        mapped to [0, 1] for PSNR / SSIM), ``per_case``: the same four per stack as float64
        ``[N]`` arrays (PSNR and SSIM averaged over the stack's slices; what the gate's
        bootstrap resamples), plus ``samples`` when ``keep_samples`` > 0.
    """
    if images.shape != recon.shape:
        raise ValueError(f"images {images.shape} and reconstructions {recon.shape} differ in shape")
    n = images.shape[0]
    psnrs, ssims, p_orig, p_rec = [], [], [], []
    for start in range(0, n, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], dtype=np.float32))
        r = torch.from_numpy(np.ascontiguousarray(recon[start : start + batch_size], dtype=np.float32))
        psnr, ssim = slice_quality(x, r)  # [B,4] each
        psnrs.append(psnr)
        ssims.append(ssim)
        p_orig.append(torch.softmax(classifier(x).float(), dim=1))
        p_rec.append(torch.softmax(classifier(r).float(), dim=1))
    po, pr = torch.cat(p_orig).numpy(), torch.cat(p_rec).numpy()
    psnr_slices, ssim_slices = np.concatenate(psnrs), np.concatenate(ssims)  # [N,4]
    out: dict[str, Any] = {
        "psnr": float(psnr_slices.mean()),
        "ssim": float(ssim_slices.mean()),
        "decision_kept": float((po.argmax(1) == pr.argmax(1)).mean()),
        "teacher_kl": prob_kl(po, pr),
        "n": float(n),
        "per_case": {
            "psnr": psnr_slices.mean(axis=1),
            "ssim": ssim_slices.mean(axis=1),
            "decision_kept": (po.argmax(1) == pr.argmax(1)).astype(np.float64),
            "teacher_kl": prob_kl_per_case(po, pr),
        },
    }
    if keep_samples > 0:
        out["samples"] = (np.asarray(images[:keep_samples], np.float32), np.asarray(recon[:keep_samples], np.float32))
    return out


@torch.no_grad()
def semantic_reconstruction(
    model: AnyDiffAE, images: np.ndarray, q: np.ndarray, steps: int, seed: int = 0, batch_size: int = 32
) -> dict[str, np.ndarray]:
    """How much of each image the semantic code ``z`` alone carries.

    Decodes every slice's ``z`` from a stochastic code drawn from the prior, ``x_T ~ N(0, I)``
    (seeded), instead of the slice's own DDIM inversion, and scores the result against the
    original as the reconstruction gate does (:func:`~components.metrics.image_quality.slice_quality`).
    A reconstruction through the inverted ``x_T`` can look perfect even when ``z`` carries
    little (an under-trained DiffAE's inversion absorbs the image into ``x_T``); this
    measurement cannot be rescued by the inversion (DiffAE, Preechakul et al. 2022, report
    autoencoding with a random ``x_T`` for the same reason).

    Args:
        model: trained DiffAE (eval mode).
        images: ``[N,4,H,W]`` float32 in [-1,1], the originals.
        q: ``[N,4Z]`` their semantic latents (e.g. the reconstruction cache's).
        steps: DDIM decoding steps.
        seed: seed of the prior draws (the same for every model compared).
        batch_size: slices per ``render`` call.

    Returns:
        float64 ``[N]`` arrays ``semantic_psnr`` (dB) and ``semantic_ssim`` (mean over the 4 slices).
    """
    n, s, h, w = images.shape
    if q.shape[0] != n or q.shape[1] != s * model.z_dim:
        raise ValueError(f"q {q.shape} does not match images {images.shape} (z_dim {model.z_dim})")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x_t = torch.randn((n * s, 1, h, w), generator=gen)
    z = torch.as_tensor(np.asarray(q, np.float32)).reshape(n * s, model.z_dim)
    parts = [model.render(x_t[i : i + batch_size].to(model.device), z[i : i + batch_size].to(model.device), steps)
             .float().cpu() for i in range(0, n * s, batch_size)]
    decoded = torch.cat(parts).reshape(n, s, h, w) if parts else torch.zeros((0, s, h, w))
    psnr, ssim = slice_quality(torch.as_tensor(np.asarray(images, np.float32)), decoded)
    return {"semantic_psnr": psnr.mean(axis=1).astype(np.float64), "semantic_ssim": ssim.mean(axis=1).astype(np.float64)}


def gate_semantic_cases(
    model: AnyDiffAE, images: np.ndarray, q: np.ndarray, steps: int, n_cases: int, seed: int
) -> dict[str, np.ndarray]:
    """:func:`semantic_reconstruction` of the first ``n_cases`` patients (the gate's subset).

    Args:
        model, steps, seed: as in :func:`semantic_reconstruction`.
        images: ``[N,4,H,W]`` in [-1,1]; q: ``[N,4Z]`` their latents.
        n_cases: ``gates.semantic_cases``; 0 turns the measurement off.

    Returns:
        ``{semantic_psnr, semantic_ssim}`` float64 ``[min(n_cases, N)]``, or ``{}`` when off.
    """
    k = min(n_cases, len(images))
    if k <= 0:
        return {}
    return semantic_reconstruction(model, np.asarray(images)[:k], np.asarray(q)[:k], steps, seed=seed)


def evaluate_reconstruction(
    model: AnyDiffAE,
    classifier: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    steps: int,
    batch_size: int = 32,
    keep_samples: int = 0,
) -> dict[str, Any]:
    """:func:`reconstruct_cohort` then :func:`score_reconstruction` (same return value).

    Args:
        model: trained DiffAE (eval mode).
        classifier: black box ``[B,4,H,W] in [-1,1] -> logits [B,C]``.
        images: ``[N,4,H,W]`` float32 in [-1,1], held-out patients.
        steps: DDIM steps for inversion and decoding.
        batch_size: patients per batch (4 slices each).
        keep_samples: also return the first ``k`` originals and reconstructions.
    """
    rec = reconstruct_cohort(model, images, steps, batch_size)
    return score_reconstruction(classifier, images, rec["recon"], keep_samples=keep_samples)
