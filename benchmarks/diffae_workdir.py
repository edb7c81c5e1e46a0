"""Train a preset's DiffAE on one device and write the DiffAE half of a workdir: prints one JSON line.

For a GPU lease where the pipeline's services (ZenML, MLflow) are not installed: from the ingested
cohorts ``WORKDIR/datasets/{osic,external}`` (as ``diffexplainer ingest --out`` writes them) it trains
the DiffAE with the project's trainer (:func:`components.training.train_diffae.train_diffae`, the
held-out fold left out as the pipeline does), saves ``WORKDIR/models/diffae.pt``, encodes the latents
(``WORKDIR/latents``, :func:`components.caches.cached_latents`) and inverts the external cohort
(``WORKDIR/reconstructions``, :func:`components.caches.cached_reconstructions`) with the DiffAE on
``--device`` (:class:`components.models.offload.OffloadedDiffAE`). ``benchmarks/faithfulness.py
--workdir WORKDIR --device cuda`` then runs on it (its cohorts' ``cohort.json`` under
``WORKDIR/cohorts/<cohort>/`` for the interventions).

JSON keys: ``image_size``, ``diffae_params``, ``device``, ``device_name``, ``torch``, ``train`` (steps,
images seen, img/s, wall seconds, final loss), ``ddim_steps``, ``reconstruction`` (external cohort
through its DDIM inversion: mean PSNR / SSIM over patients with a 95 % bootstrap interval),
``semantic`` (the first ``--semantic-cases`` external patients decoded from ``z`` and a prior ``x_T``:
what ``z`` alone carries, the gate's semantic PSNR),
``latents_s`` / ``invert_s`` (encoding both cohorts and the augmentations / inverting the external
cohort), ``seconds``. ``--device`` is ``cpu``, ``cuda`` or ``cuda:N`` (training then runs on GPU N too).

Usage: ``python benchmarks/diffae_workdir.py --workdir W --config configs/gpu-64.yaml [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.caches import cached_latents, cached_reconstructions  # noqa: E402
from components.config import load_config  # noqa: E402
from components.data.dataset import load_dataset  # noqa: E402
from components.metrics.image_quality import slice_quality  # noqa: E402
from components.metrics.reconstruction_eval import semantic_reconstruction  # noqa: E402
from components.models.diffae import save_diffae  # noqa: E402
from components.models.offload import AnyDiffAE, OffloadedDiffAE  # noqa: E402
from components.stats.bootstrap import mean_interval  # noqa: E402
from components.training.train_diffae import train_diffae  # noqa: E402


def _say(msg: str) -> None:
    print(f"[diffae-workdir] {msg}", file=sys.stderr, flush=True)


def _interval(values: np.ndarray) -> list[float]:
    point, low, high = mean_interval(np.asarray(values, np.float64))
    return [round(float(point), 3), round(float(low), 3), round(float(high), 3)]


def build(workdir: Path, config: str | None, preset: str, device: str, minutes: float | None,
          semantic_cases: int) -> dict[str, Any]:
    """Train, save, encode and invert as the module docstring says; returns the JSON-ready result."""
    start = time.monotonic()
    target = torch.device(device)
    if target.type == "cuda" and target.index is not None:
        torch.cuda.set_device(target)  # the trainer takes "cuda": the current device
    update: dict[str, Any] = {"diffae": {"device": target.type if target.type in ("cpu", "cuda") else "cpu"}}
    if minutes is not None:
        update["diffae"]["max_minutes"] = minutes
    cfg = load_config(config, preset, update)
    ds, ext = load_dataset(workdir / "datasets" / "osic"), load_dataset(workdir / "datasets" / "external")
    keep = np.asarray(ds.folds) != cfg.ingest.n_folds - 1  # the held-out fold, as the pipeline leaves it out
    _say(f"training the DiffAE on {int(keep.sum())} patients x 4 slices at {ds.images.shape[-1]} px on {device} "
         f"(<= {cfg.diffae.max_minutes} min)")
    model, metrics = train_diffae(np.asarray(ds.images)[keep], cfg.diffae, workdir / "checkpoints", progress=_say)
    model = model.cpu().eval()
    scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    save_diffae(model, workdir / "models" / "diffae.pt",
                extra={"dataset_hash": ds.hash, "metrics": scalars, "config": cfg.diffae.model_dump()})
    engine: AnyDiffAE = model if device == "cpu" else OffloadedDiffAE(model, device)
    t0 = time.monotonic()
    cached_latents(engine, ds.images, ext.images, ds.hash, ext.hash, workdir / "latents", progress=_say)
    latents_s = time.monotonic() - t0
    steps = cfg.diffae.ddim_steps
    t0 = time.monotonic()
    arrays, _ = cached_reconstructions(engine, np.asarray(ext.images, np.float32), ext.hash, steps, workdir)
    invert_s = time.monotonic() - t0
    psnr, ssim = slice_quality(torch.as_tensor(np.asarray(ext.images, np.float32)), torch.as_tensor(arrays["recon"]))
    k = min(semantic_cases, len(ext))
    sem = semantic_reconstruction(engine, np.asarray(ext.images, np.float32)[:k], arrays["q"][:k], steps, seed=0)
    return {
        "benchmark": "diffae_workdir",
        "image_size": int(ds.images.shape[-1]),
        "diffae_params": int(sum(p.numel() for p in model.parameters())),
        "device": device,
        "device_name": torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "train": {k: scalars.get(k) for k in ("steps", "images_seen", "img_per_s", "wall_s", "final_loss")},
        "ddim_steps": steps,
        "reconstruction": {"psnr": _interval(np.asarray(psnr).mean(axis=1)),
                           "ssim": _interval(np.asarray(ssim).mean(axis=1)), "n": int(len(ext))},
        "semantic": {"psnr": _interval(sem["semantic_psnr"]), "ssim": _interval(sem["semantic_ssim"]), "n": k},
        "latents_s": round(latents_s, 1), "invert_s": round(invert_s, 1),
        "seconds": round(time.monotonic() - start, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--config", default=None)
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--minutes", type=float, default=None, help="override diffae.max_minutes")
    ap.add_argument("--semantic-cases", type=int, default=60)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(build(Path(args.workdir), args.config, args.preset, args.device, args.minutes,
                           args.semantic_cases)))


if __name__ == "__main__":
    main()
