"""Training loop for the diffusion autoencoder (DiffAE, paper §2.1).

Objective: ``E_{x_0, t, ε} ‖ε − D_θ(x_t, t, E(x_0))‖₁`` (``‖·‖₂²`` as an option) with
``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε`` and ``t`` uniform on ``{0, …, T−1}``; the encoder
``E`` and the UNet ``D_θ`` are trained jointly. AdamW with linear warm-up (then constant or
cosine), gradient clipping, an EMA of the weights (the returned model carries the EMA
weights), seeded sampling, time/step budget, resumable checkpoints, and
``torch.distributed`` data parallelism when a process group is initialised.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from components.config import DiffAEConfig
from components.models.diffae import DiffAE, build_diffae, save_diffae

__all__ = ["train_diffae", "CHECKPOINT_NAME", "EARLY_CHECKPOINT"]

CHECKPOINT_NAME = "diffae_ckpt.pt"
#: the EMA weights at ``cfg.early_checkpoint_step`` (a deliberately under-trained DiffAE)
EARLY_CHECKPOINT = "diffae_early.pt"


class _DenoiseLoss(nn.Module):
    """Encoder + UNet wrapped as one module returning the batch loss (so DDP sees one forward)."""

    def __init__(self, model: DiffAE, loss: str) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.unet = model.unet
        self.loss = loss

    def forward(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_prod_t: torch.Tensor) -> torch.Tensor:
        a = alpha_prod_t.reshape(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = self.unet(x_t, t, self.encoder(x0)).float()
        if self.loss == "l1":
            return F.l1_loss(pred, noise)
        return F.mse_loss(pred, noise)


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(cfg: DiffAEConfig, rank: int) -> torch.device:
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        n = torch.cuda.device_count()
        return torch.device("cuda", rank % max(n, 1))
    return torch.device("cpu")


def _lr_at(cfg: DiffAEConfig, step: int, progress: float) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        p = min(max(progress, 0.0), 1.0)
        return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))
    return cfg.lr


def _batch_indices(n: int, step: int, local_bs: int, rank: int, world: int, seed: int) -> torch.Tensor:
    """Indices of ``step``'s local batch: a per-epoch seeded permutation, sharded by rank."""
    per_rank = n // world
    steps_per_epoch = max(1, per_rank // local_bs)
    epoch, pos = divmod(step, steps_per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    shard = perm[rank * per_rank:(rank + 1) * per_rank] if world > 1 else perm
    idx = shard[pos * local_bs:(pos + 1) * local_bs]
    if idx.numel() < local_bs:  # fewer slices than a batch: sample with wrap-around
        idx = shard[torch.arange(pos * local_bs, (pos + 1) * local_bs) % shard.numel()]
    return idx


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train_diffae(
    images: np.ndarray,
    cfg: DiffAEConfig,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
    log_metrics: Callable[[dict[str, float], int], object] | None = None,
    resume: bool = True,
) -> tuple[DiffAE, dict]:
    """Train a DiffAE on every slice of ``images``.

    Args:
        images: ``[N,4,H,W]`` float32 in [-1, 1]; all ``N·4`` slices are training samples.
        cfg: sizes and optimisation settings; training stops at ``cfg.max_steps`` or after
            ``cfg.max_minutes`` of training time (summed over resumed runs), whichever first.
        workdir: ``workdir/diffae_ckpt.pt`` is written every ``cfg.checkpoint_every`` steps
            and at the end (model, EMA, optimizer, step, RNG state, loss history, elapsed time);
            ``workdir/diffae_early.pt`` holds the EMA weights at ``cfg.early_checkpoint_step``.
        progress: receives a one-line status (step, loss, img/s, ETA) about every 5 %.
        log_metrics: receives ``({"loss", "lr", "img_per_s"}, step)`` at the same moments.
        resume: continue from an existing checkpoint in ``workdir`` (same loss curve).

    Returns:
        ``(model, metrics)``: the model with EMA weights in eval mode on the training
        device, and ``{"steps", "images_seen", "wall_s", "img_per_s", "final_loss",
        "loss_history", "resumed_from_step", "device", "world_size"}``. ``wall_s`` and
        ``img_per_s`` cover this call only; ``images_seen`` counts all ranks.

    Notes:
        If ``torch.distributed`` is initialised, each rank trains on its shard of a shared
        per-epoch permutation with ``batch_size // world_size`` samples, gradients are
        averaged by DDP, and only rank 0 writes checkpoints and reports progress.
        On CUDA the forward/backward runs under bf16 autocast in channels_last layout; on CPU
        under bf16 autocast only with ``cfg.cpu_bf16_autocast`` (the loss is taken in fp32).
    """
    if images.ndim != 4 or images.shape[2] != cfg.image_size or images.shape[3] != cfg.image_size:
        raise ValueError(f"images must be [N,4,{cfg.image_size},{cfg.image_size}], got {tuple(images.shape)}")
    rank, world = _dist()
    device = _device(cfg, rank)
    is_cuda = device.type == "cuda"
    use_bf16 = is_cuda or (device.type == "cpu" and cfg.cpu_bf16_autocast)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / CHECKPOINT_NAME
    say = progress if (progress is not None and rank == 0) else (lambda _m: None)

    slices = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    slices = slices.reshape(-1, 1, cfg.image_size, cfg.image_size).to(device)
    n = slices.shape[0]
    local_bs = max(1, cfg.batch_size // world)

    torch.manual_seed(cfg.seed)
    model = build_diffae(cfg).to(device)
    if is_cuda:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
    ema = copy.deepcopy(model).requires_grad_(False)
    loss_module = _DenoiseLoss(model, cfg.loss)
    if world > 1:
        train_module: nn.Module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if is_cuda else None
        )
    else:
        train_module = loss_module
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + 1 + rank)
    alphas = model.schedule.alphas_cumprod.to(device=device, dtype=torch.float32)

    step, elapsed_before, history = 0, 0.0, []
    resumed_from = 0
    if resume and ckpt_path.is_file():
        blob = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(blob["model"])
        ema.load_state_dict(blob["ema"])
        optimizer.load_state_dict(blob["optimizer"])
        step, elapsed_before, history = int(blob["step"]), float(blob["elapsed_s"]), list(blob["loss_history"])
        gens = blob["rng"]["generators"]
        gen.set_state(gens[rank] if rank < len(gens) else gens[0])
        torch.set_rng_state(blob["rng"]["torch"])
        resumed_from = step
        say(f"diffae: resumed from step {step} ({elapsed_before / 60:.1f} min trained)")

    max_s = cfg.max_minutes * 60.0
    report_every = max(1, cfg.max_steps // 20)
    t_start = time.perf_counter()
    last_report_t = t_start
    steps_this_call = 0
    model.train()

    def checkpoint() -> None:
        if world > 1:
            states: list[Any] = [None] * world
            dist.all_gather_object(states, gen.get_state())
        else:
            states = [gen.get_state()]
        if rank == 0:
            _save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "elapsed_s": elapsed_before + time.perf_counter() - t_start,
                "loss_history": history, "config": cfg.model_dump(mode="json"),
                "rng": {"generators": states, "torch": torch.get_rng_state()},
            })

    def save_early(weights: nn.Module, at_step: int) -> None:  # an under-trained DiffAE, kept as a control
        early = build_diffae(cfg)
        early.load_state_dict(weights.state_dict())
        save_diffae(early, ckpt_path.parent / EARLY_CHECKPOINT, extra={"step": at_step, "role": "early checkpoint"})

    while step < cfg.max_steps:
        elapsed = elapsed_before + time.perf_counter() - t_start
        stop = torch.tensor([float(elapsed >= max_s)])
        if world > 1:
            dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        if stop.item() > 0:
            break
        idx = _batch_indices(n, step, local_bs, rank, world, cfg.seed)
        x0 = slices[idx.to(device)]
        if cfg.augment_flip:
            flip = (torch.rand(local_bs, generator=gen) < 0.5).to(device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, cfg.timesteps, (local_bs,), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        if is_cuda:
            x0 = x0.contiguous(memory_format=torch.channels_last)
            noise = noise.contiguous(memory_format=torch.channels_last)
        lr = _lr_at(cfg, step, max(step / cfg.max_steps, elapsed / max_s))
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = train_module(x0, t, noise, alphas[t])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        _ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        loss_value = loss.detach()
        if world > 1:
            dist.all_reduce(loss_value, op=dist.ReduceOp.AVG if is_cuda else dist.ReduceOp.SUM)
            if not is_cuda:
                loss_value = loss_value / world
        history.append(float(loss_value))
        step += 1
        steps_this_call += 1
        now = time.perf_counter()
        if step % cfg.checkpoint_every == 0:
            checkpoint()
        if step == cfg.early_checkpoint_step and rank == 0:
            save_early(ema, step)
        if step % report_every == 0 or now - last_report_t >= 0.05 * max_s or step == cfg.max_steps:
            last_report_t = now
            run_s = now - t_start
            img_s = steps_this_call * local_bs * world / max(run_s, 1e-9)
            elapsed = elapsed_before + run_s
            eta = min((cfg.max_steps - step) * local_bs * world / max(img_s, 1e-9), max(max_s - elapsed, 0.0))
            recent = float(np.mean(history[-report_every:]))
            say(f"diffae: step {step}/{cfg.max_steps} loss {recent:.4f} lr {lr:.2e} "
                f"{img_s:.1f} img/s elapsed {elapsed / 60:.1f} min ETA {eta / 60:.1f} min")
            if log_metrics is not None and rank == 0:
                log_metrics({"loss": recent, "lr": lr, "img_per_s": img_s}, step)

    if steps_this_call and step % cfg.checkpoint_every != 0:
        checkpoint()
    wall = time.perf_counter() - t_start
    out = build_diffae(cfg).to(device)
    out.load_state_dict(ema.state_dict())
    out.eval()
    final = float(np.mean(history[-max(1, min(len(history), 50)):])) if history else float("nan")
    metrics = {
        "steps": step,
        "images_seen": step * local_bs * world,
        "wall_s": wall,
        "img_per_s": steps_this_call * local_bs * world / max(wall, 1e-9),
        "final_loss": final,
        "loss_history": history,
        "resumed_from_step": resumed_from,
        "device": str(device),
        "world_size": world,
    }
    say(f"diffae: done, {step} steps, final loss {final:.4f}, {metrics['img_per_s']:.1f} img/s, {wall / 60:.1f} min")
    return out, metrics
