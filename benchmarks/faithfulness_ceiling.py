"""Ceiling of the model-contrast scores with a perfect counterfactual, per image size (issue 10).

``benchmarks/faithfulness.py`` scores the product's counterfactual attribution map by model
contrast (Yang & Kim 2019): ``mcs_disease`` = disease share of the mortality black box F's map
minus that of the marker black box M, ``mcs_marker`` likewise. Its 32 px DiffAE may be what keeps
``mcs_disease`` low, or the 32 px images themselves may (the disease is a 1-2 px subpleural band
there). This benchmark separates the two without any DiffAE: per image size it re-renders the
workdir's synthetic cohorts (:mod:`components.data.interventions`, the ingest settings with
``image_size`` changed), trains F (mortality) and M (marker present) with the project's teacher
trainer on the training cohort and takes R (random weights), as ``faithfulness.py`` does, and
explains the external cases with the **oracle** attribution map: integrated gradients
(:func:`components.counterfactual.attribution.counterfactual_attribution`) of each black box's
disease-class evidence ``l_1 - l_0`` along the straight path from the patient's stack with every
planted component removed (disease, distractor, marker: the anatomy alone) to the real stack.
It is what the product's map would be with a counterfactual that removes exactly the planted
components and nothing else, so its scores bound what a better generative model could reach on
these images with these black boxes.

Per size (the cases drawn as ``faithfulness.py`` draws them: >= 30 external cases with a disease
mask, evenly from the strata F-positive x marked):

* ``mcs``: ``marker`` / ``marker_positive`` (M - F marker share, marked cases), ``disease`` /
  ``disease_positive`` (F - M disease share, all cases) and ``disease_f_positive`` /
  ``disease_positive_f_positive`` (cases F calls positive); ``|map|`` or its positive part
  (:func:`components.counterfactual.evidence.component_masses`), each ``[point, low, high]`` with a
  95 % paired bootstrap interval (:func:`components.counterfactual.evidence.model_contrast`);
  also over the marked and the unmarked cases separately (``disease_marked``, ``disease_positive_unmarked``, ...):
  with this oracle every map is 0 wherever the real and the bare stack agree (IG multiplies by
  ``x - baseline``), so on an unmarked case any black box's map lies on the disease and the distractor only;
* ``positive_shares``: per black box, the mean share of its positive map on each component and its
  positive mass, over the marked and the unmarked cases;
* ``randomisation_evidence_ratio``: R's total ``|map|`` over F's;
* ``black_boxes``: F's and M's CV AUC, external AUC, training seconds;
* ``f_positive_map_shares``: where the positive part of F's map lies (disease mask weighted by its
  area fraction as ``component_masses`` weights it, every pixel with any disease weighted 1, the mask
  dilated by one pixel in the slice plane, lungs, outside the lungs), over all cases and over F's
  positive cases;
* ``disease_mask``: its area in pixels per slice (fraction-weighted, and above the mask
  threshold) and the fraction of it outside the lung mask (partial volume), on the cases;
* ``f_localisation_auroc``: F's map against the disease mask inside the lungs (mean per-case AUROC, all
  cases and ``_f_positive``), by magnitude (as the product's localisation table scores maps) and by sign:
  a textured lesion's own attribution carries both signs, so even this map ranks poorly by sign;
* ``ig_completeness_rel_error``: per black box, ``|sum(map) - (s(x) - s(bare))| / |s(x) - s(bare)|``
  pooled over the cases (integration error), and ``score_change``: mean ``s(x) - s(bare)`` in logits;
* ``seconds``: rendering, training, attribution, total.

The last stdout line is one JSON object ``{"benchmark": "faithfulness_ceiling", "sizes": {"32": ...},
"seconds": ...}``; ``--out`` (default ``WORKDIR/faithfulness_ceiling``) also gets
``faithfulness_ceiling.json`` and, with ``--save-arrays``, ``size_<S>.npz`` (maps, stacks, masks).

Usage: ``python benchmarks/faithfulness_ceiling.py --workdir .diffexplainer/demo [--image-sizes 32,64]``
(``make bench-faithfulness-ceiling WORKDIR=... SIZES=32,64``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import binary_dilation

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.faithfulness import black_boxes, select_cases, synthetic_cohort, triple  # noqa: E402
from components.blackbox import BlackBox  # noqa: E402
from components.config import ExperimentConfig, SynthConfig, load_config  # noqa: E402
from components.counterfactual.attribution import counterfactual_attribution, score_change  # noqa: E402
from components.counterfactual.evidence import (  # noqa: E402
    component_masses,
    model_contrast,
    pooled_model_contrast,
    total_evidence,
)
from components.counterfactual.localization import case_aurocs  # noqa: E402
from components.data.dataset import Dataset, load_dataset  # noqa: E402
from components.data.interventions import InterventionStacks, cohort_interventions  # noqa: E402
from components.data.phantom import COMPONENTS  # noqa: E402
from components.data.synth import draw_patients  # noqa: E402
from components.errors import UserError  # noqa: E402
from components.report.metrics_json import json_ready  # noqa: E402
from components.training.agent_suite import blackbox_targets  # noqa: E402
from components.training.train_teacher import evaluate_teacher  # noqa: E402

__all__ = ["cohort_arguments", "dilate_mask", "mask_geometry", "oracle_maps", "contrast_scores", "box_shares",
           "run_size", "run_benchmark", "localisation_aurocs", "main"]

Say = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"[faithfulness-ceiling] {msg}", file=sys.stderr, flush=True)


def cohort_arguments(workdir: Path, cohort: str) -> tuple[int, int, SynthConfig]:
    """``(n_patients, seed, SynthConfig)`` that ``WORKDIR/cohorts/<cohort>`` was written with.

    Raises:
        UserError: no ``cohort.json`` (not a synthetic cohort written by this project).
    """
    found = synthetic_cohort(workdir, cohort)
    if found is None:
        raise UserError(f"{workdir / 'cohorts' / cohort / 'cohort.json'}: missing; the ceiling needs the synthetic "
                        "cohorts of a finished `make demo`")
    return found


def _render(workdir: Path, cohort: str, ds: Dataset, cfg: ExperimentConfig, size: int,
            components: Sequence[str], bare: bool) -> tuple[InterventionStacks, np.ndarray]:
    """The dataset's patients (same order) rendered at ``size`` px, and their marker labels int64 ``[N]``."""
    n, seed, synth = cohort_arguments(workdir, cohort)
    ids = [str(p) for p in np.asarray(ds.patients["patient"])]
    marker = {r.patient_id: r.marker for r in draw_patients(cohort, n, seed, synth)}  # type: ignore[arg-type]
    stacks = cohort_interventions(cohort, n, seed, synth, cfg.ingest.model_copy(update={"image_size": size}),
                                  patient_ids=ids, components=components, bare=bare)
    return stacks, np.asarray([marker[p] for p in ids], dtype=np.int64)


def dilate_mask(mask: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """``mask > threshold`` grown by one pixel (3x3 neighbourhood) within each slice.

    Args:
        mask: ``[K,4,H,W]`` area fraction in [0,1].
        threshold: fraction above which a pixel belongs to the mask.

    Returns:
        float64 ``[K,4,H,W]`` in {0,1}.
    """
    m = np.asarray(mask) > threshold
    grown = binary_dilation(m, structure=np.ones((1, 1, 3, 3), dtype=bool))
    return grown.astype(np.float64)


def mask_geometry(disease: np.ndarray, lungs: np.ndarray, threshold: float) -> dict[str, float]:
    """Size of the disease mask and how much of it the lung mask misses.

    Args:
        disease: ``[K,4,H,W]`` area fraction in [0,1].
        lungs: ``[K,4,H,W]``, nonzero inside the lungs.
        threshold: fraction above which a pixel is lesion.

    Returns:
        ``area_px_per_slice`` (sum of fractions), ``area_px_per_slice_above_threshold``,
        ``lung_px_per_slice`` (means over the K x 4 slices) and ``fraction_outside_lungs`` (share of
        the summed fractions on pixels outside the lung mask, pooled over the cases).
    """
    d = np.clip(np.nan_to_num(np.asarray(disease, dtype=np.float64)), 0.0, 1.0)
    inside = np.asarray(lungs) > 0
    slices = d.shape[0] * d.shape[1]
    total = float(d.sum())
    return {
        "area_px_per_slice": total / slices,
        "area_px_per_slice_above_threshold": float((d > threshold).sum()) / slices,
        "lung_px_per_slice": float(inside.sum()) / slices,
        "fraction_outside_lungs": float(d[~inside].sum()) / total if total > 0 else float("nan"),
    }


def oracle_maps(boxes: dict[str, BlackBox], images: np.ndarray, bare: np.ndarray, healthy: int, n_steps: int,
                batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each black box's attribution of its evidence against ``healthy`` from the bare stacks to the real ones.

    Args:
        boxes: name -> black box ``[B,4,H,W] -> logits [B,2]``.
        images: float32 ``[K,4,H,W]`` in [-1,1], every component present (the IG input).
        bare: float32 ``[K,4,H,W]`` in [-1,1], every component removed (the IG baseline: the perfect
            counterfactual toward ``healthy``).
        healthy: the class the counterfactual moves toward.
        n_steps, batch_size: integration steps and stacks per forward pass.

    Returns:
        ``(name -> float32 [K,4,H,W] signed map in logits, name -> float64 [K] s(images) - s(bare))``.
    """
    maps = {b: counterfactual_attribution(bb, images, bare, healthy, n_steps, batch_size) for b, bb in boxes.items()}
    change = {b: score_change(bb, images, bare, healthy) for b, bb in boxes.items()}
    return maps, change


def contrast_scores(maps: dict[str, np.ndarray], lungs: np.ndarray, comps: dict[str, np.ndarray],
                    marked: np.ndarray, f_pos: np.ndarray, seed: int) -> dict[str, list[float | None]]:
    """Model-contrast scores of F's and M's maps on the same cases, as ``faithfulness.py`` defines them.

    Args:
        maps: ``"F"`` / ``"M"`` -> ``[K,4,H,W]`` signed maps.
        lungs: ``[K,4,H,W]`` lung masks; comps: component -> ``[K,4,H,W]`` fraction in [0,1].
        marked: bool ``[K]`` cases with the marker; f_pos: bool ``[K]`` cases F calls positive.
        seed: bootstrap seed.

    Returns:
        name -> ``[point, low, high]`` (None where fewer than 2 cases): ``marker``, ``disease``,
        ``disease_f_positive`` on ``|map|`` and the same with ``_positive`` on the positive part; also
        ``disease{,_positive}_{marked,unmarked}``, the disease contrast over the marked / unmarked cases;
        ``marker_pooled``, ``disease_pooled{,_f_positive}``: the evidence-weighted contrast of the positive
        maps (:func:`components.counterfactual.evidence.pooled_model_contrast`).
    """
    out: dict[str, list[float | None]] = {}
    for suffix, positive in (("", False), ("_positive", True)):
        f, m = (component_masses(maps[b], lungs, comps, positive_only=positive) for b in ("F", "M"))
        out[f"marker{suffix}"] = triple(model_contrast(m["marker"][marked], f["marker"][marked], seed=seed))
        for rows, tail in ((np.ones_like(marked), ""), (f_pos, "_f_positive"), (marked, "_marked"), (~marked, "_unmarked")):
            out[f"disease{suffix}{tail}"] = triple(model_contrast(f["disease"][rows], m["disease"][rows], seed=seed))
    # evidence-weighted (pooled over cases, positive part): a case counts by how much evidence the box has there
    out["marker_pooled"] = triple(pooled_model_contrast(maps["M"][marked], maps["F"][marked], comps["marker"][marked],
                                                         seed=seed))
    for rows, tail in ((np.ones_like(marked), ""), (f_pos, "_f_positive")):
        out[f"disease_pooled{tail}"] = triple(pooled_model_contrast(maps["F"][rows], maps["M"][rows],
                                                                     comps["disease"][rows], seed=seed))
    return out


def box_shares(maps: dict[str, np.ndarray], lungs: np.ndarray, comps: dict[str, np.ndarray],
               marked: np.ndarray) -> dict[str, dict[str, dict[str, float | None]]]:
    """Mean share of each black box's positive map on each component, over the marked and the unmarked cases.

    Args:
        maps: name -> ``[K,4,H,W]`` signed maps; lungs, comps: as in :func:`contrast_scores`.
        marked: bool ``[K]`` cases with the marker.

    Returns:
        name -> ``"marked"`` / ``"unmarked"`` -> component (and ``positive_mass``: mean sum of the
        positive part, logits) -> mean, None without cases.
    """
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for b, rel in maps.items():
        shares = component_masses(rel, lungs, comps, positive_only=True)
        row = {c: shares[c] for c in comps} | {"positive_mass": np.clip(rel, 0, None).reshape(len(rel), -1).sum(axis=1)}
        out[b] = {group: _means(row, rows) for group, rows in (("marked", marked), ("unmarked", ~marked))}
    return out


def _positive_shares(pos_map: np.ndarray, lungs: np.ndarray, disease: np.ndarray,
                     dilated: np.ndarray) -> dict[str, np.ndarray]:
    """Per-case shares ``[K]`` of a map's positive part on the disease mask (fraction-weighted, and every pixel
    with any disease weighted 1), its 1-pixel dilation, the lungs, outside the lungs."""
    on = component_masses(pos_map, lungs, {"disease": disease}, positive_only=True)
    binary = component_masses(pos_map, lungs, {"disease": (disease > 0).astype(np.float64)}, positive_only=True)["disease"]
    grown = component_masses(pos_map, lungs, {"disease": dilated}, positive_only=True)["disease"]
    return {"disease": on["disease"], "disease_any_fraction": binary, "disease_dilated_1px": grown,
            "lungs": on["lungs"], "outside_lungs": on["outside_lungs"]}


def localisation_aurocs(rel: np.ndarray, lesion: np.ndarray, region: np.ndarray,
                        f_pos: np.ndarray) -> dict[str, float | None]:
    """Mean per-case AUROC of a signed map against the disease mask inside the lungs, by magnitude
    (as the product's localisation table scores it) and by sign, over all cases and F's positive ones.

    Args:
        rel: ``[K,4,H,W]`` signed map; lesion, region: bool, same shape; f_pos: bool ``[K]``.
    """
    out: dict[str, float | None] = {}
    for name, magnitude in (("magnitude", True), ("signed", False)):
        a = case_aurocs(rel, lesion, region, magnitude)
        for tail, rows in (("", np.ones(len(rel), bool)), ("_f_positive", f_pos)):
            vals = a[rows][np.isfinite(a[rows])]
            out[f"{name}{tail}"] = float(vals.mean()) if vals.size else None
    return out


def _means(shares: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float | None]:
    return {k: float(np.nanmean(v[rows])) if np.isfinite(v[rows]).any() else None for k, v in shares.items()}


def run_size(workdir: Path, cfg: ExperimentConfig, size: int, n_cases: int, seed: int, say: Say = _stderr,
             save_to: Path | None = None) -> dict[str, Any]:
    """The ceiling at one image size (see the module docstring); JSON-ready except NaN."""
    t0 = time.monotonic()
    ds, ext = load_dataset(workdir / "datasets" / "osic"), load_dataset(workdir / "datasets" / "external")
    say(f"{size} px: rendering {len(ds)} training and {len(ext)} external patients")
    train, y_marker = _render(workdir, "osic", ds, cfg, size, components=(), bare=False)
    test, y_marker_ext = _render(workdir, "external", ext, cfg, size, components=COMPONENTS, bare=True)
    assert test.bare is not None
    same_grid = size == int(np.asarray(ds.images).shape[-1])
    drift = float(np.abs(train.images - np.asarray(ds.images)).max()) if same_grid else None
    t_render = time.monotonic() - t0

    t1 = time.monotonic()
    boxes, info = black_boxes(train.images, {"F": np.asarray(ds.labels), "M": y_marker}, np.asarray(ds.folds), cfg, say)
    for name, truth in (("F", np.asarray(ext.labels)), ("M", y_marker_ext)):
        info[name]["external_auc"] = evaluate_teacher(boxes[name].module, test.images, truth)["auc"]
    t_train = time.monotonic() - t1

    cf = cfg.counterfactual
    has_disease = test.masks["disease"].reshape(len(ext), -1).max(axis=1) > cf.mask_threshold
    f_pos_all = blackbox_targets(boxes["F"], test.images)["logits"].argmax(axis=1) == 1
    idx = select_cases(y_marker_ext, has_disease, n_cases, seed, f_pos_all)
    marked, f_pos = y_marker_ext[idx] == 1, f_pos_all[idx]
    lungs = test.lung_masks[idx]
    comps = {c: test.masks[c][idx] for c in COMPONENTS}
    say(f"{size} px: {len(idx)} cases ({int(marked.sum())} marked, {int(f_pos.sum())} F-positive); "
        f"integrated gradients from the bare stacks ({cf.attribution_steps} steps)")
    t2 = time.monotonic()
    maps, change = oracle_maps(boxes, test.images[idx], test.bare[idx], cf.healthy_class, cf.attribution_steps,
                               cf.attribution_batch_size)
    t_attr = time.monotonic() - t2

    total_f = total_evidence(maps["F"]).sum()
    dilated = dilate_mask(comps["disease"])
    shares = _positive_shares(maps["F"], lungs, comps["disease"], dilated)
    sums = {b: maps[b].reshape(len(idx), -1).sum(axis=1) for b in maps}
    result: dict[str, Any] = {
        "image_size": size,
        "n_training": int(len(ds)),
        "n_cases": int(len(idx)),
        "n_marked_cases": int(marked.sum()),
        "n_f_positive_cases": int(f_pos.sum()),
        "black_boxes": info,
        "mcs": contrast_scores(maps, lungs, comps, marked, f_pos, seed),
        "positive_shares": box_shares(maps, lungs, comps, marked),
        "randomisation_evidence_ratio": float(total_evidence(maps["R"]).sum() / total_f) if total_f > 0 else None,
        "f_positive_map_shares": {"all_cases": _means(shares, np.ones(len(idx), bool)),
                                  "f_positive_cases": _means(shares, f_pos)},
        "disease_mask": mask_geometry(comps["disease"], lungs, cf.mask_threshold),
        "f_localisation_auroc": localisation_aurocs(maps["F"], comps["disease"] > cf.mask_threshold, lungs > 0, f_pos),
        "score_change": {b: float(np.mean(v)) for b, v in change.items()},
        "score_change_f_positive": {b: float(np.mean(v[f_pos])) if f_pos.any() else None for b, v in change.items()},
        "ig_completeness_rel_error": {b: float(np.abs(sums[b] - change[b]).sum() / max(np.abs(change[b]).sum(), 1e-12))
                                      for b in maps},
        "render_max_abs_diff_vs_dataset": drift,
        "seconds": {"render": round(t_render, 1), "train": round(t_train, 1), "attribution": round(t_attr, 1),
                    "total": round(time.monotonic() - t0, 1)},
    }
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"idx": idx, "images": test.images[idx], "bare": test.bare[idx],
                                         "lungs": lungs, "marked": marked, "f_positive": f_pos, **comps,
                                         **{f"map_{b}": m for b, m in maps.items()}}
        np.savez_compressed(save_to / f"size_{size}.npz", **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    mcs = result["mcs"]
    say(f"{size} px: mcs_disease_positive {mcs['disease_positive']}, on F-positive "
        f"{mcs['disease_positive_f_positive']}, mcs_marker_positive {mcs['marker_positive']} "
        f"({result['seconds']['total']} s)")
    return result


def run_benchmark(workdir: str | Path, cfg: ExperimentConfig, sizes: Sequence[int] = (32, 64), n_cases: int = 30,
                  seed: int = 0, out_dir: str | Path | None = None, say: Say = _stderr,
                  save_arrays: bool = False) -> dict[str, Any]:
    """:func:`run_size` for each size; writes ``OUT/faithfulness_ceiling.json`` and returns the result."""
    start = time.monotonic()
    workdir = Path(workdir)
    out = Path(out_dir) if out_dir is not None else workdir / "faithfulness_ceiling"
    out.mkdir(parents=True, exist_ok=True)
    per_size = {str(s): run_size(workdir, cfg, int(s), n_cases, seed, say, out if save_arrays else None)
                for s in sizes}
    result = json_ready({"benchmark": "faithfulness_ceiling", "workdir": str(workdir), "sizes": per_size,
                         "seconds": round(time.monotonic() - start, 1)})
    (out / "faithfulness_ceiling.json").write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--workdir", default=".diffexplainer/demo")
    ap.add_argument("--config", default=None, help="the demo's config YAML (default: the preset)")
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--image-sizes", default="32,64", help="comma-separated image sizes (px) to render and train at")
    ap.add_argument("--cases", type=int, default=30, help="external cases explained (>= 30 for the issue's targets)")
    ap.add_argument("--out", default=None, help="output folder (default WORKDIR/faithfulness_ceiling)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-arrays", action="store_true", help="also write OUT/size_<S>.npz (maps, stacks, masks)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.image_sizes.split(",") if s.strip()]
    if not sizes:
        raise UserError("--image-sizes: give at least one size")
    result = run_benchmark(args.workdir, load_config(args.config, args.preset), sizes, args.cases, args.seed,
                           args.out, save_arrays=args.save_arrays)
    print(json.dumps(result, allow_nan=False))


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        sys.exit(f"error: {exc}")
