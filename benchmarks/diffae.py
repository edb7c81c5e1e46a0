"""DiffAE throughput benchmark; prints one JSON line.

Measured side by side in one process (interleaved rounds, median of rounds, so that load
from other processes on a shared machine hits every candidate alike):

* training step (forward + backward + AdamW) images/s and achieved GFLOP/s of our
  conditional UNet in fp32 and under CPU bf16 autocast (``ours_bf16``: the opt-in
  ``diffae.cpu_bf16_autocast``, issue #13), and of our
  UNet vs MONAI's ``DiffusionModelUNet`` configured to similar FLOPs per image
  (target: ours ≥ 1.0× MONAI), and vs this machine's measured fp32 matmul GFLOP/s
  (target: ≥ 25 %);
* DDIM inversion (with the preset's fixed-point iterations) + decoding of a batch of slices
  as one batch vs an unbatched per-image loop, in network evaluations (NFE, one image
  through the UNet) per second (target ≥ 2×).

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv/attention FLOPs;
elementwise ops are not counted).

Usage: ``python benchmarks/diffae.py [--preset cpu-small] [--rounds 5] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from components.config import load_config
from components.models.diffae import build_diffae
from components.models.unet import ConditionalUNet


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


class _MonaiEps(nn.Module):
    """MONAI DiffusionModelUNet with the same call signature (z ignored: MONAI has no AdaGN-z)."""

    def __init__(self, channels: tuple[int, ...], attention: tuple[bool, ...]) -> None:
        super().__init__()
        from monai.networks.nets import DiffusionModelUNet

        self.net = DiffusionModelUNet(
            spatial_dims=2, in_channels=1, out_channels=1, num_res_blocks=1, channels=channels,
            attention_levels=attention, norm_num_groups=8, num_head_channels=channels[-1] // 2,
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(x, t)


def _train_step_fn(net: nn.Module, size: int, batch: int, z_dim: int,
                   bf16: bool = False) -> tuple[Callable[[], None], float]:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    z = torch.randn(batch, z_dim, generator=g)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as diffae.cpu_bf16_autocast trains
            out = net(x, t, z)
        loss = (out.float() - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        loss = (net(x, t, z) - x).abs().mean()
        loss.backward()
    opt.zero_grad(set_to_none=True)
    return step, fc.get_total_flops() / batch


def _time(fn: Callable[[], None], reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ddim-steps", type=int, default=10)
    ap.add_argument("--ddim-slices", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(preset=args.preset).diffae
    size = cfg.image_size

    ours = ConditionalUNet(size, cfg.base_channels, cfg.channel_mults, cfg.num_res_blocks,
                           cfg.attention_resolutions, cfg.z_dim)
    ours_step, ours_flops = _train_step_fn(ours, size, args.batch, cfg.z_dim)
    # the same network trained under CPU bf16 autocast (diffae.cpu_bf16_autocast), a copy so the two do not interact
    ours_bf16 = ConditionalUNet(size, cfg.base_channels, cfg.channel_mults, cfg.num_res_blocks,
                                cfg.attention_resolutions, cfg.z_dim)
    ours_bf16.load_state_dict(ours.state_dict())
    bf16_step, _ = _train_step_fn(ours_bf16, size, args.batch, cfg.z_dim, bf16=True)
    # MONAI configured to similar FLOPs: among a few widths with the same depth and attention
    # placement, the one closest to our FLOPs per image.
    levels = len(cfg.channel_mults)
    attn = tuple(size // 2**i in cfg.attention_resolutions for i in range(levels))
    best: tuple[tuple[int, ...], Callable[[], None], float] | None = None
    for base in (8, 16, 24, 32):
        chans = tuple(base * m for m in cfg.channel_mults)
        cand = _MonaiEps(chans, attn)
        step, flops = _train_step_fn(cand, size, args.batch, cfg.z_dim)
        if best is None or abs(flops - ours_flops) < abs(best[2] - ours_flops):
            best = (chans, step, flops)
    assert best is not None  # the loop above always runs
    monai_chans, monai_step, monai_flops = best

    for fn in (ours_step, monai_step, bf16_step):
        fn()
    t_ours, t_monai, t_bf16, mm = [], [], [], []
    for _ in range(args.rounds):
        mm.append(matmul_gflops())
        t_ours.append(_time(ours_step, 2))
        t_monai.append(_time(monai_step, 2))
        t_bf16.append(_time(bf16_step, 2))
    t_o, t_m, peak = statistics.median(t_ours), statistics.median(t_monai), statistics.median(mm)
    t_b = statistics.median(t_bf16)
    ours_gflops = ours_flops * args.batch / t_o / 1e9
    monai_gflops = monai_flops * args.batch / t_m / 1e9

    # DDIM: one batch of slices vs a per-image loop (same total work)
    model = build_diffae(cfg).eval()
    x = torch.rand(args.ddim_slices, 1, size, size) * 2 - 1
    s = args.ddim_steps

    def batched() -> None:
        z = model.encode(x)
        model.render(model.invert(x, z, s), z, s)

    def looped() -> None:
        for i in range(x.shape[0]):
            xi = x[i:i + 1]
            z = model.encode(xi)
            model.render(model.invert(xi, z, s), z, s)

    batched()
    tb, tl = [], []
    for _ in range(max(2, args.rounds // 2)):
        tb.append(_time(batched, 1))
        tl.append(_time(looped, 1))
    fp = cfg.inversion_fixed_point_iters  # inversion: s·(1 + fp) evaluations, decoding: s
    nfe = (s * (1 + fp) + s) * args.ddim_slices
    nfe_b, nfe_l = nfe / statistics.median(tb), nfe / statistics.median(tl)

    print(json.dumps({
        "benchmark": "diffae",
        "preset": args.preset,
        "image_size": size,
        "threads": args.threads,
        "batch": args.batch,
        "matmul_fp32_gflops": round(peak, 1),
        "ours": {"img_per_s": round(args.batch / t_o, 1), "gflop_per_img": round(ours_flops / 1e9, 3),
                 "gflops": round(ours_gflops, 1), "params_m": round(sum(p.numel() for p in ours.parameters()) / 1e6, 3)},
        "monai": {"channels": list(monai_chans), "img_per_s": round(args.batch / t_m, 1),
                  "gflop_per_img": round(monai_flops / 1e9, 3), "gflops": round(monai_gflops, 1)},
        "ours_bf16": {"img_per_s": round(args.batch / t_b, 1), "speedup_vs_fp32": round(t_o / t_b, 2),
                      "rounds_speedup": [round(a / b, 2) for a, b in zip(t_ours, t_bf16, strict=True)]},
        "ours_vs_monai_img_per_s": round(t_m / t_o, 2),
        "ours_vs_monai_gflops": round(ours_gflops / monai_gflops, 2),
        "ours_vs_matmul": round(ours_gflops / peak, 3),
        "ddim": {"steps": s, "inversion_fixed_point_iters": fp, "slices": args.ddim_slices, "batched_nfe_per_s": round(nfe_b, 1),
                 "looped_nfe_per_s": round(nfe_l, 1), "speedup": round(nfe_b / nfe_l, 2)},
        "targets": {"ours_vs_monai_img_per_s": ">= 1.0", "ours_vs_matmul": ">= 0.25", "ddim_speedup": ">= 2"},
    }))


if __name__ == "__main__":
    main()
