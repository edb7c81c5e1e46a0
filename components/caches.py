"""The on-disk caches of a run's workdir and the keys that decide whether they are reused.

Two arrays sets depend only on the DiffAE weights and the cohorts, not on the black box, so a
swapped-in classifier (and a re-run) reuses them:

* ``latents/``: ``q`` ``[N,4Z]`` float32 of the training cohort, the external cohort and each
  training augmentation; key in ``latents/meta.json``.
* ``reconstructions/external.npz``: ``recon`` / ``x_T`` ``[N,4,H,W]`` and ``q`` of the external
  cohort's DDIM inversion; key in ``reconstructions/external.json``.

A key is a JSON object; a cache is reused only when its stored key equals the wanted one and
every file exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.blackbox import state_hash
from components.metrics.reconstruction_eval import reconstruct_cohort
from components.models.offload import AnyDiffAE
from components.training.latents import AUGMENTATIONS, augment_stacks, encode_latents

__all__ = ["Latents", "latents_key", "cached_latents", "reconstructions_key", "cached_reconstructions",
           "stored_inversions", "reusable_inversions"]

Progress = Callable[[str], None]


def _stored_key_is(meta: Path, key: Mapping[str, Any]) -> bool:
    return meta.is_file() and json.loads(meta.read_text()) == dict(key)


@dataclass(frozen=True)
class Latents:
    """Where a run's latents are (the artifact the latents step passes to agent distillation).

    Attributes:
        train, external: ``.npy`` paths of ``q`` ``[N,4Z]`` float32, training / external cohort.
        train_augmented: augmentation name -> ``.npy`` path of the augmented training stacks' ``q``.
        dataset_hash, external_hash, diffae_sha256: the cache key it was made (or reused) for.
        reused: True when read from the cache instead of encoded.
    """

    train: str
    external: str
    train_augmented: dict[str, str]
    dataset_hash: str
    external_hash: str
    diffae_sha256: str
    reused: bool

    def load(self, which: str) -> np.ndarray:
        """``q`` ``[N,4Z]`` of ``"train"``, ``"external"`` or an augmentation name (KeyError otherwise)."""
        return np.load({"train": self.train, "external": self.external, **self.train_augmented}[which])


def latents_key(model: AnyDiffAE, dataset_hash: str, external_hash: str) -> dict[str, Any]:
    """Key of the latents cache: both cohorts' content hashes, the DiffAE weights, the augmentations."""
    return {"dataset_hash": dataset_hash, "external_hash": external_hash, "diffae_sha256": state_hash(model),
            "augmentations": list(AUGMENTATIONS)}


def cached_latents(
    model: AnyDiffAE, train_images: np.ndarray, external_images: np.ndarray, dataset_hash: str, external_hash: str,
    out: Path, progress: Progress | None = None,
) -> Latents:
    """Latents of both cohorts (and the training augmentations), encoded once per key.

    Args:
        model: the trained DiffAE (eval mode).
        train_images, external_images: ``[N,4,H,W]`` float32 in [-1,1].
        dataset_hash, external_hash: the cohorts' content hashes (part of the key).
        out: the cache folder (``workdir/latents``), created if missing.
        progress: called with one line per encoded array, or on reuse.

    Returns:
        The :class:`Latents` (files ``train.npy``, ``external.npy``, ``train_<augmentation>.npy``
        and the key ``meta.json`` under ``out``).
    """
    say = progress or (lambda _m: None)
    out.mkdir(parents=True, exist_ok=True)
    key = latents_key(model, dataset_hash, external_hash)
    names = ["train", "external", *[f"train_{a}" for a in AUGMENTATIONS]]
    paths = {name: str(out / f"{name}.npy") for name in names}
    meta = out / "meta.json"

    def result(reused: bool) -> Latents:
        return Latents(train=paths["train"], external=paths["external"],
                       train_augmented={a: paths[f"train_{a}"] for a in AUGMENTATIONS},
                       dataset_hash=dataset_hash, external_hash=external_hash, diffae_sha256=key["diffae_sha256"],
                       reused=reused)

    if _stored_key_is(meta, key) and all(Path(p).is_file() for p in paths.values()):
        say(f"[latents] reusing cached latents in {out}")
        return result(True)
    jobs = [("train", train_images), ("external", external_images),
            *[(f"train_{a}", augment_stacks(train_images, a)) for a in AUGMENTATIONS]]
    for name, images in jobs:
        q = encode_latents(model, images)
        np.save(paths[name], q)
        say(f"[latents] {name}: {q.shape}")
    meta.write_text(json.dumps(key))
    return result(False)


def reconstructions_key(model: AnyDiffAE, dataset_hash: str, steps: int) -> dict[str, Any]:
    """Key of the external cohort's DDIM inversions: DiffAE weights, cohort hash, DDIM steps and
    fixed-point iterations."""
    fp_iters = model.config.inversion_fixed_point_iters if model.config is not None else 0
    return {"diffae_sha256": state_hash(model), "dataset_hash": dataset_hash, "ddim_steps": int(steps),
            "inversion_fixed_point_iters": int(fp_iters)}


def cached_reconstructions(
    model: AnyDiffAE, images: np.ndarray, dataset_hash: str, steps: int, cache_dir: str | Path | None,
    progress: Callable[[float, str], None] | None = None, say: Progress | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reconstructions ``{recon, x_T, q}`` of a cohort (see :func:`reconstruct_cohort`), computed
    once per key under ``cache_dir/reconstructions/external.{npz,json}``.

    Args:
        model: the trained DiffAE (eval mode).
        images: ``[N,4,H,W]`` float32 in [-1,1] (the external cohort).
        dataset_hash: the cohort's content hash.
        steps: DDIM steps.
        cache_dir: the workdir; None computes without caching.
        progress: ``(fraction, message)`` while reconstructing.
        say: called once when the cache is reused.

    Returns:
        The arrays and the record ``{path (None without cache), reused, **key}``.
    """
    key = reconstructions_key(model, dataset_hash, steps)
    if cache_dir is None:
        return reconstruct_cohort(model, images, steps), {"path": None, "reused": False, **key}
    folder = Path(cache_dir) / "reconstructions"
    path, meta = folder / "external.npz", folder / "external.json"
    stored = stored_inversions(cache_dir, model, dataset_hash, steps)
    if stored is not None:
        if say is not None:
            say(f"[gate] reusing cached reconstructions in {path}")
        return dict(zip(("recon", "x_T", "q"), stored)), {"path": str(path), "reused": True, **key}
    arrays = reconstruct_cohort(model, images, steps, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    meta.write_text(json.dumps(key))
    return arrays, {"path": str(path), "reused": False, **key}


def stored_inversions(
    cache_dir: str | Path, model: AnyDiffAE, dataset_hash: str, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The external cohort's cached ``(recon [N,4,H,W], x_T [N,4,H,W], q [N,4Z])`` under
    ``cache_dir/reconstructions/`` when their stored key equals this model's, cohort's and step
    count's (:func:`reconstructions_key`); None otherwise. Computes nothing."""
    folder = Path(cache_dir) / "reconstructions"
    path, meta = folder / "external.npz", folder / "external.json"
    if not (path.is_file() and _stored_key_is(meta, reconstructions_key(model, dataset_hash, steps))):
        return None
    with np.load(path) as z:
        return z["recon"], z["x_T"], z["q"]


def reusable_inversions(
    record: Mapping[str, Any] | None, model: AnyDiffAE, dataset_hash: str, steps: int, depth: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The cached ``(recon, x_T, q)`` a :func:`cached_reconstructions` record points to, when
    its key equals this model's, cohort's and step count's and the evaluation inverts the
    full DDIM path (``depth`` 1; the cache holds full-depth codes only); None otherwise."""
    if depth != 1.0:
        return None
    record = record or {}
    key = reconstructions_key(model, dataset_hash, steps)
    if not record.get("path") or any(record.get(k) != v for k, v in key.items()) or not Path(record["path"]).is_file():
        return None
    with np.load(record["path"]) as z:
        return z["recon"], z["x_T"], z["q"]
