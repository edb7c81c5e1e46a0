"""Counterfactual cost: UNet evaluations per patient against validity (issue 13).

On a finished demo's workdir (``WORKDIR/models``, ``WORKDIR/datasets/external``, optionally the
reconstruction gate's cached 50-step inversions) it re-runs the counterfactual sweep of the
demo's evaluation on the same cases (the ``max_cases`` most borderline external patients, as
``evaluate_cohort`` selects them) under several settings of the knobs that set its cost:

* ``steps``: DDIM steps of inversion and decoding;
* ``depth``: fraction of the DDIM path inverted and decoded (partial inversion to ``t0 < T``,
  the latent changed, decoded from ``t0``);
* ``random``: the random-direction control at every alpha (``all``) or the largest only;
* ``search``: evaluation budget of the alpha search on indeterminate cases (0 = no search).

Per setting: mean encoder + UNet evaluations per patient (the count ``nfe_per_patient`` of the
pipeline), wall time, and with a 95 % bootstrap interval over the cases (BCa, seeded): flip
rate, direction agreement, the random control's flip rate, the paired flip gain over it,
reconstruction PSNR, and localisation AUROC of the difference map, the attribution map, the
random direction and the attribution along it (``random_attribution``) against the planted disease
mask (inside the lungs, each map by its magnitude), with the paired differences
``auroc_<map>_minus_<control>`` (the form of issue 10's localisation target). ``within_reference``
says whether each validity figure's point lies inside the reference setting's interval (the
first setting, today's 50-step evaluation) and ``minus_reference`` gives the setting's flip rate, random
flip rate and flip gain minus the reference's on the indeterminate cases both share, paired, with intervals
(compare random flip rates only between settings with the same ``random`` knob: see :func:`paired_with_reference`);
``pareto`` marks the settings no other setting
beats on cost and all of flip rate, agreement, random flip rate and PSNR at once.

Usage: ``python benchmarks/cf_cost.py --workdir .diffexplainer/demo`` (``make bench-cf``); the
last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.blackbox import load_blackbox  # noqa: E402
from components.caches import stored_inversions  # noqa: E402
from components.config import CounterfactualConfig, ExperimentConfig, load_config  # noqa: E402
from components.counterfactual.criteria import (  # noqa: E402
    image_quality,
    manipulation_criterion,
    per_case_manipulation,
)
from components.counterfactual.decoding import teacher_probabilities  # noqa: E402
from components.counterfactual.evaluate import localization_maps, select_cases  # noqa: E402
from components.counterfactual.localization import case_aurocs  # noqa: E402
from components.counterfactual.sweep import SweepResult, inversion_rows, run_sweep  # noqa: E402
from components.data.dataset import load_dataset  # noqa: E402
from components.errors import UserError  # noqa: E402
from components.models.agent import load_agent  # noqa: E402
from components.models.diffae import load_diffae  # noqa: E402
from components.stats.bootstrap import BootstrapSettings, mean_interval  # noqa: E402

__all__ = ["DEFAULT_SETTINGS", "parse_setting", "case_metrics", "pareto_front", "run_benchmark", "main"]

#: name -> knobs; the first is the reference (today's evaluation)
DEFAULT_SETTINGS = (
    "steps=50,depth=1,random=all,search=12",
    "steps=50,depth=1,random=largest,search=0",
    "steps=20,depth=1,random=all,search=12",
    "steps=20,depth=1,random=largest,search=0",
    "steps=20,depth=0.6,random=largest,search=3",
    "steps=30,depth=0.5,random=largest,search=2",
    "steps=50,depth=0.3,random=largest,search=2",
    "steps=50,depth=0.5,random=largest,search=0",
    "steps=10,depth=1,random=largest,search=3",
)
VALIDITY = ("flip_rate", "direction_agreement", "random_flip_rate")


def _say(msg: str) -> None:
    print(f"[cf-cost] {msg}", file=sys.stderr, flush=True)


def parse_setting(text: str) -> dict[str, Any]:
    """``"steps=10,depth=0.6,random=largest,search=3"`` -> knobs (missing keys: steps 50,
    depth 1, random all, search 12)."""
    knobs: dict[str, Any] = {"steps": 50, "depth": 1.0, "random": "all", "search": 12}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if key not in knobs or not value:
            raise UserError(f"setting {text!r}: unknown or empty knob {key!r} (steps, depth, random, search)")
        try:
            knobs[key] = value if key == "random" else (float(value) if key == "depth" else int(value))
        except ValueError as exc:
            raise UserError(f"setting {text!r}: {key}={value!r} is not a number") from exc
    if knobs["random"] not in ("all", "largest"):
        raise UserError(f"setting {text!r}: random must be 'all' or 'largest'")
    return knobs


def _config(base: CounterfactualConfig, knobs: dict[str, Any]) -> CounterfactualConfig:
    return base.model_copy(update={
        "ddim_steps": knobs["steps"], "ddim_depth": knobs["depth"], "random_control_alphas": knobs["random"],
        "search_max_evals": knobs["search"], "random_control": True, "attribution_map": True})


def case_metrics(sweep: SweepResult, maps: dict[str, np.ndarray], disease: np.ndarray, lungs: np.ndarray,
                 mask_threshold: float) -> dict[str, np.ndarray]:
    """Per-case evidence of one setting.

    Args:
        sweep: the sweep over K cases.
        maps: name -> ``[K,4,H,W]`` relevance (``diffexplainer``, ``attribution``, ``random_direction``,
            ``random_attribution``: step-matched to the attribution only in ``random=all`` settings).
        disease: ``[K,4,H,W]`` planted disease fraction; ``lungs``: ``[K,4,H,W]`` lung masks.
        mask_threshold: disease fraction above which a pixel is lesion.

    Returns:
        float64 arrays: ``direction_agreement [K]``, ``flips`` / ``random_flips [M]`` (indeterminate
        cases, paired; ``flip_cases [M]`` their indices among the K), ``psnr [K]`` (dB, reconstruction
        vs original), ``auroc_<map> [K]`` (of the map's magnitude, as the product's localisation table
        scores it).
    """
    pc = per_case_manipulation(sweep)
    out = {"direction_agreement": pc["direction_agreement"], "flips": pc["flips"],
           "random_flips": pc["random_flips"] if pc["random_flips"] is not None else np.full_like(pc["flips"], np.nan),
           "flip_cases": np.asarray(pc["flip_cases"], dtype=np.int64)}
    out["psnr"] = np.array([image_quality(sweep.original[i:i + 1], sweep.recon[i:i + 1])[0]
                            for i in range(len(sweep.recon))])
    lesion, region = disease > mask_threshold, lungs > 0
    for name, m in maps.items():
        out[f"auroc_{name}"] = case_aurocs(m, lesion, region)
    return out


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[bool]:
    """For each row: no other row has lower-or-equal NFE and better-or-equal flip rate, agreement,
    PSNR and (lower) random flip rate, strictly better in one."""
    def key(r: dict[str, Any]) -> np.ndarray:
        def v(name: str) -> float:
            x = r[name] if name == "nfe_per_patient" else r[name][0]
            return float("nan") if x is None else float(x)
        return np.array([-v("nfe_per_patient"), v("flip_rate"), v("direction_agreement"),
                         -v("random_flip_rate"), v("psnr")], dtype=float)

    keys = [np.nan_to_num(key(r), nan=-np.inf) for r in rows]
    return [not any(np.all(o >= k) and np.any(o > k) for j, o in enumerate(keys) if j != i)
            for i, k in enumerate(keys)]


def paired_with_reference(per: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                          boot: BootstrapSettings) -> dict[str, Any]:
    """Setting minus reference on the indeterminate cases the two share, paired over those cases.

    Each setting's reconstruction decides which cases are indeterminate, so the two sets differ;
    ``n_only_setting`` / ``n_only_reference`` count the cases left out. A random control evaluated at
    fewer alphas than the reference's (``random=largest`` against ``all``) can flip only less, so compare
    random flip rates (and flip gains) between settings with the same ``random`` knob.

    Returns:
        ``flip_rate``, ``random_flip_rate``, ``flip_gain``: ``[point, low, high]`` of the mean paired
        difference (None entries without a random control or without shared cases); ``n_common``,
        ``n_only_setting``, ``n_only_reference``.
    """
    common, mine, theirs = np.intersect1d(per["flip_cases"], ref["flip_cases"], return_indices=True)
    f, r = per["flips"][mine], per["random_flips"][mine]
    f0, r0 = ref["flips"][theirs], ref["random_flips"][theirs]
    return {"n_common": int(len(common)), "n_only_setting": int(len(per["flip_cases"]) - len(common)),
            "n_only_reference": int(len(ref["flip_cases"]) - len(common)),
            "flip_rate": _triple(mean_interval(f, boot, paired_with=f0)),
            "random_flip_rate": _triple(mean_interval(r, boot, paired_with=r0)),
            "flip_gain": _triple(mean_interval(f - r, boot, paired_with=f0 - r0))}


def _triple(t: tuple[float, float, float]) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in t]


def _inside(value: float | None, interval: list[float | None]) -> bool | None:
    if value is None or interval[1] is None or interval[2] is None:
        return None
    return bool(interval[1] - 1e-9 <= value <= interval[2] + 1e-9)


def run_benchmark(workdir: str | Path, cfg: ExperimentConfig, settings: Sequence[str] = DEFAULT_SETTINGS,
                  max_cases: int | None = None, n_resamples: int = 2000) -> dict[str, Any]:
    """Run every setting on the same cases; returns the JSON-ready result (module docstring)."""
    workdir = Path(workdir)
    for p in ("models/diffae.pt", "models/teacher.pt", "models/agent.pt", "datasets/external"):
        if not (workdir / p).exists():
            raise UserError(f"{workdir / p} not found: run `make demo` (WORKDIR={workdir}) first")
    ext = load_dataset(workdir / "datasets" / "external")
    if ext.masks is None:
        raise UserError(f"{workdir}/datasets/external has no masks.npy: the benchmark needs a synthetic cohort")
    diffae = load_diffae(workdir / "models" / "diffae.pt").eval()
    bb = load_blackbox(str(workdir / "models" / "teacher.pt"))
    agent, _ = load_agent(workdir / "models" / "agent.pt")
    base = cfg.counterfactual if max_cases is None else cfg.counterfactual.model_copy(update={"max_cases": max_cases})
    x_all = torch.as_tensor(np.asarray(ext.images, dtype=np.float32))
    idx = select_cases(teacher_probabilities(bb, x_all, base.batch_size).numpy(), base)
    x = x_all[idx]
    disease, lungs = np.asarray(ext.masks)[idx], np.asarray(ext.lung_masks)[idx]
    boot = BootstrapSettings(n_resamples=n_resamples)
    _say(f"{len(idx)} {base.case_selection} external cases; {len(settings)} settings")

    rows: list[dict[str, Any]] = []
    reference: dict[str, np.ndarray] | None = None
    for text in settings:
        knobs = parse_setting(text)
        ccfg = _config(base, knobs)
        pre = None
        stored = stored_inversions(workdir, diffae, ext.hash, knobs["steps"]) if knobs["depth"] == 1.0 else None
        if stored is not None:  # the gate's cached inversions (their cost is still counted)
            pre = inversion_rows(stored, idx)

        def progress(m: str, t: str = text) -> None:
            _say(f"{t}: {m}")

        start = time.monotonic()
        sweep = run_sweep(diffae, agent, bb, x, ccfg, precomputed=pre, progress=progress)
        maps = localization_maps(sweep, bb, ccfg, baselines=False)
        wall = time.monotonic() - start
        per = case_metrics(sweep, maps, disease, lungs, ccfg.mask_threshold)
        manip = manipulation_criterion(sweep)
        row: dict[str, Any] = {
            "setting": text, **knobs, "wall_s": round(wall, 1),
            "nfe_per_patient": float(np.mean([c.diffae for c in sweep.nfe])),
            "flip_rate": _triple(mean_interval(per["flips"], boot)),
            "direction_agreement": _triple(mean_interval(per["direction_agreement"], boot)),
            "random_flip_rate": _triple(mean_interval(per["random_flips"], boot)),
            "flip_gain": _triple(mean_interval(per["flips"], boot, paired_with=per["random_flips"])),
            "psnr": _triple(mean_interval(per["psnr"], boot)),
            "n_indeterminate": int(len(per["flips"])),
            "search_mean_evals": manip["search"]["mean_evals"],
            "search_reached_rate": manip["search"]["reached_rate"],
        }
        for name in maps:
            row[f"auroc_{name}"] = _triple(mean_interval(per[f"auroc_{name}"], boot))
        for name, control in (("diffexplainer", "random_direction"), ("attribution", "random_direction"),
                              ("attribution", "random_attribution")):
            if name in maps and control in maps:  # paired over the cases: the localisation target's form
                row[f"auroc_{name}_minus_{control}"] = _triple(mean_interval(
                    per[f"auroc_{name}"], boot, paired_with=per[f"auroc_{control}"]))
        reference = per if reference is None else reference
        # paired on the cases both call indeterminate: "inside the reference's interval" compares a point with
        # an interval of other cases' noise; this is the same cases under both settings
        row["minus_reference"] = paired_with_reference(per, reference, boot)
        rows.append(row)
        _say(f"{text}: NFE {row['nfe_per_patient']:.0f}/patient, {wall:.0f} s, flip {row['flip_rate'][0]}, "
             f"agreement {row['direction_agreement'][0]}, random flip {row['random_flip_rate'][0]}, "
             f"PSNR {row['psnr'][0]}")

    ref = rows[0]
    for row, front in zip(rows, pareto_front(rows)):
        row["within_reference"] = {m: _inside(row[m][0], ref[m]) for m in VALIDITY}
        row["pareto"] = front
    valid = [r for r in rows if all(r["within_reference"].values())]
    cheapest = min(valid, key=lambda r: r["nfe_per_patient"]) if valid else None
    return {"n_cases": int(len(idx)), "reference": ref["setting"], "confidence": boot.confidence,
            "settings": rows, "cheapest_valid": None if cheapest is None else cheapest["setting"],
            "cheapest_valid_nfe": None if cheapest is None else cheapest["nfe_per_patient"]}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=".diffexplainer/demo")
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--config", default=None)
    ap.add_argument("--setting", action="append", default=None,
                    help="knobs, e.g. steps=10,depth=1,random=largest,search=3 (repeatable; the first is the reference)")
    ap.add_argument("--cases", type=int, default=None, help="cases (default: counterfactual.max_cases)")
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    try:
        cfg = load_config(args.config, preset=args.preset)
        result = run_benchmark(args.workdir, cfg, args.setting or DEFAULT_SETTINGS, args.cases, args.resamples)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(result, allow_nan=False))


if __name__ == "__main__":
    main()
