"""Smoke benchmark of the ``paper`` preset (256 px) on a GPU: prints one JSON line.

Builds the paper-preset DiffAE and DenseNet121 teacher, trains each for a short budget on
phantom slices rendered at 256 px (bf16 autocast + channels_last on CUDA), and reports
training images/s, the teacher's feature width F, and batched DDIM inversion+decoding NFE/s.
It checks that the GPU paths run and sizes the paper preset; the models are far from trained.

Usage: ``python benchmarks/paper_gpu.py [--seconds 60] [--patients 64]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from components.config import load_config
from components.data.phantom import phantom_volume
from components.data.slices import render_images, select_levels
from components.models.diffae import DiffAE
from components.training.train_diffae import train_diffae
from components.training.train_teacher import train_teacher


def phantom_stacks(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``[n,4,size,size]`` windowed phantom stacks in [-1,1] and labels (extent > 0.3)."""
    rng = np.random.default_rng(seed)
    stacks, labels = [], []
    for i in range(n):
        extent = float(rng.uniform(0.0, 0.6))
        ph = phantom_volume(matrix=size, n_slices=12, extent=extent, seed=seed + i)
        idx = select_levels(1, 10, [0.2, 0.4, 0.6, 0.8])
        stacks.append(render_images(ph.hu[idx], (-1000.0, 200.0), size))
        labels.append(int(extent > 0.3))
    return np.stack(stacks).astype(np.float32), np.asarray(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget per model")
    parser.add_argument("--patients", type=int, default=64)
    args = parser.parse_args()
    cfg = load_config(preset="paper")
    size = cfg.ingest.image_size
    t0 = time.perf_counter()
    images, labels = phantom_stacks(args.patients, size)
    folds = np.arange(len(labels)) % 5
    data_s = time.perf_counter() - t0
    out: dict[str, object] = {"benchmark": "paper_gpu", "image_size": size, "patients": args.patients,
                              "cuda": torch.cuda.is_available(),
                              "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                              "torch": torch.__version__, "phantom_s": round(data_s, 1)}
    dcfg = cfg.diffae.model_copy(update={"max_minutes": args.seconds / 60, "max_steps": 100000,
                                         "checkpoint_every": 100000})
    with tempfile.TemporaryDirectory() as tmp:
        model, m = train_diffae(images, dcfg, Path(tmp))
    out["diffae"] = {"steps": m["steps"], "img_per_s": round(m["img_per_s"], 1), "final_loss": round(m["final_loss"], 4),
                     "device": m["device"], "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    assert isinstance(model, DiffAE)
    x = torch.from_numpy(images[:8]).to(model.device)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=model.device.type == "cuda"):
        recon, _, _ = model.reconstruct_stack(x, 20)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    nfe = 32 * 20 * (2 + dcfg.inversion_fixed_point_iters)  # 32 slices x 20 steps x (invert + refine + decode)
    out["ddim"] = {"slices": 32, "steps": 20, "nfe_per_s": round(nfe / dt, 1),
                   "recon_finite": bool(torch.isfinite(recon).all())}
    tcfg = cfg.teacher.model_copy(update={"max_minutes": args.seconds / 60, "folds_to_train": 1})
    teacher, tm = train_teacher(images, labels, folds, tcfg)
    feats = teacher.features(torch.from_numpy(images[:2]))
    out["teacher"] = {"arch": tcfg.arch, "feature_dim": int(feats.shape[1]), "seconds": round(tm["seconds"], 1),
                      "epochs_run": tm["folds"][0].get("epochs_run"),
                      "img_per_s": round(tm["folds"][0]["n_train"] * tm["folds"][0]["epochs_run"] / tm["seconds"], 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
