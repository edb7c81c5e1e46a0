"""Drift check on a finished ``make demo`` (issue 14's targets), one JSON line.

1. The demo's external (scanner-shifted) cohort against its training cohort: drift expected.
2. A fresh synthetic training-kind cohort (``--patients``, another ``--seed``), written and
   ingested under ``--scratch``, against the training cohort: no drift expected; its wall time
   (encode + test, latents of the training cohort from the demo's cache) is the cost of one check.
3. A controlled shift: the training cohort's first ``--patients`` stacks with a scanner
   calibration offset of ``--offset-hu`` HU (``2 * offset / window width`` in [-1,1]), and with
   Gaussian noise of ``--noise-hu`` HU, each against the remaining training patients.
4. ``--splits`` random splits of the training cohort's latents (``--patients`` vs the rest):
   the false-alarm rate at ``drift.alpha``.

Items 1, 2 and 4 also run the acquisition test (:mod:`components.drift.acquisition`: what
ingestion measured per scan, ``patients.csv``), reported beside the latent one.

The DiffAE is the demo's ``models/diffae.pt`` (the one the cached latents were encoded with).

Usage: ``python benchmarks/drift.py [--workdir .diffexplainer/demo] [--patients 120] [--seed 7]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.config import load_config  # noqa: E402
from components.data.ingest import ingest  # noqa: E402
from components.data.synth import write_cohort  # noqa: E402
from components.drift.acquisition import acquisition_drift  # noqa: E402
from components.drift.cohort import cohort_latents, dataset_acquisition  # noqa: E402
from components.drift.latent import latent_drift  # noqa: E402
from components.models.diffae import load_diffae  # noqa: E402


def _summary(rep: dict) -> dict:
    keep = ("statistic", "p_value", "drift", "n_reference", "n_current", "seconds")
    return {**{k: rep[k] for k in keep}, "per_slice_p": [round(s["p_value"], 4) for s in rep["per_slice"]]}


def _acq(reference: pd.DataFrame, current: pd.DataFrame, alpha: float) -> dict:
    res = acquisition_drift(reference, current, alpha=alpha)
    return {"p_value": res.p_value, "drift": res.drift, "changed": res.changed(),
            "fields": {f["field"]: [round(f["p_value"], 6), f["reference_median"], f["current_median"]]
                       for f in res.fields}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=".diffexplainer/demo")
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--patients", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--acq-splits", type=int, default=500, help="random splits for the acquisition test's "
                    "false-alarm rate (cheap: no encoding)")
    ap.add_argument("--offset-hu", type=float, default=30.0)
    ap.add_argument("--noise-hu", type=float, default=30.0)
    ap.add_argument("--scratch", default=".diffexplainer/bench-drift")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(preset=args.preset)
    d = cfg.drift
    work = Path(args.workdir)
    model = load_diffae(work / "models" / "diffae.pt")
    q_train, cached = cohort_latents(model, work / "datasets" / "osic")
    q_ext, _ = cohort_latents(model, work / "datasets" / "external")
    out: dict = {"workdir": str(work), "alpha": d.alpha, "n_permutations": d.n_permutations,
                 "train_latents_cached": cached}
    out["external_vs_train"] = _summary(latent_drift(q_train, q_ext, alpha=d.alpha, n_permutations=d.n_permutations,
                                                     seed=d.seed).to_dict())
    acq_train = dataset_acquisition(work / "datasets" / "osic")
    out["external_vs_train"]["acquisition"] = _acq(acq_train, dataset_acquisition(work / "datasets" / "external"),
                                                   d.alpha)

    scratch = Path(args.scratch)
    fresh_src, fresh_ds = scratch / "cohort", scratch / "dataset"
    t0 = time.perf_counter()
    if not (fresh_ds / "dataset.json").is_file():
        write_cohort(fresh_src, "osic", args.patients, args.seed, cfg.synth, overwrite=True)
        ingest(str(fresh_src), fresh_src / "labels.csv", fresh_ds, cfg.ingest)
    out["fresh_cohort_prepare_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    q_fresh, _ = cohort_latents(model, fresh_ds)
    rep = latent_drift(q_train, q_fresh, alpha=d.alpha, n_permutations=d.n_permutations, seed=d.seed)
    out["fresh_same_kind_vs_train"] = {**_summary(rep.to_dict()), "check_wall_s": round(time.perf_counter() - t0, 2),
                                       "acquisition": _acq(acq_train, dataset_acquisition(fresh_ds), d.alpha)}

    from components.data.dataset import load_dataset
    from components.training.latents import encode_latents

    images = np.asarray(load_dataset(work / "datasets" / "osic").images)
    lo, hi = cfg.ingest.window_hu
    scale = 2.0 / (hi - lo)
    rng = np.random.default_rng(0)
    shifts = {"offset": images[: args.patients] + args.offset_hu * scale,
              "noise": images[: args.patients] + rng.normal(0, args.noise_hu * scale, images[: args.patients].shape)}
    for name, shifted in shifts.items():
        q = encode_latents(model, np.clip(shifted, -1, 1).astype(np.float32))
        r = latent_drift(q_train[args.patients:], q, alpha=d.alpha, n_permutations=d.n_permutations, seed=d.seed)
        out[f"train_{name}_vs_rest"] = _summary(r.to_dict())
    out["offset_hu"], out["noise_hu"] = args.offset_hu, args.noise_hu

    alarms, pvals, acq_alarms = 0, [], 0
    usable = acq_train[acq_train["status"] == "ok"].reset_index(drop=True)
    for k in range(args.splits):
        perm = np.random.default_rng(1000 + k).permutation(len(q_train))
        cur, ref = q_train[perm[: args.patients]], q_train[perm[args.patients:]]
        r = latent_drift(ref, cur, alpha=d.alpha, n_permutations=d.n_permutations, seed=k)
        alarms += r.drift
        pvals.append(round(r.p_value, 3))
        rows = np.random.default_rng(1000 + k).permutation(len(usable))
        acq_alarms += acquisition_drift(usable.iloc[rows[args.patients:]], usable.iloc[rows[: args.patients]],
                                        alpha=d.alpha).drift
    out["random_splits"] = {"n": args.splits, "false_alarms": alarms, "rate": alarms / args.splits, "p_values": pvals,
                            "acquisition_false_alarms": acq_alarms}
    acq_more = sum(acquisition_drift(usable.iloc[r[args.patients:]], usable.iloc[r[: args.patients]], alpha=d.alpha).drift
                   for r in (np.random.default_rng(5000 + k).permutation(len(usable)) for k in range(args.acq_splits)))
    out["acquisition_random_splits"] = {"n": args.acq_splits, "false_alarms": int(acq_more),
                                        "rate": acq_more / max(args.acq_splits, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
