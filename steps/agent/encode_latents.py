"""ZenML step: DiffAE latents of both cohorts, cached per (dataset hashes, DiffAE weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
from zenml import step

from components.data.dataset import load_dataset
from components.models.diffae import load_diffae
from components.training.latents import AUGMENTATIONS, augment_stacks, encode_latents
from registry.loaders import weights_sha256

__all__ = ["encode_latents_step"]


@step
def encode_latents_step(diffae: dict, dataset: dict, external: dict, workdir: str) -> Annotated[dict, "latents"]:
    """Write ``q`` arrays ``[N,4Z]`` float32 (train, external, and each training-set augmentation
    ``train_<name>``) under workdir/latents.

    The arrays are reused (not re-encoded) when ``latents/meta.json`` records the same DiffAE
    weights and dataset hashes, e.g. when ``swap-classifier`` runs against a registered DiffAE.

    Returns:
        {train, external, train_<augmentation>: paths; dataset_hash, external_hash, diffae_sha256,
        augmentations, reused}.
    """
    model = load_diffae(diffae["path"])
    ds, ext = load_dataset(dataset["path"]), load_dataset(external["path"])
    out = Path(workdir) / "latents"
    out.mkdir(parents=True, exist_ok=True)
    key = {"dataset_hash": ds.hash, "external_hash": ext.hash, "diffae_sha256": weights_sha256(model),
           "augmentations": list(AUGMENTATIONS)}
    names = ["train", "external", *[f"train_{a}" for a in AUGMENTATIONS]]
    paths = {name: str(out / f"{name}.npy") for name in names}
    meta = out / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()) == key and all(Path(p).is_file() for p in paths.values()):
        print(f"[latents] reusing cached latents in {out}", flush=True)
        return {**paths, **key, "reused": True}
    jobs = [("train", ds.images), ("external", ext.images),
            *[(f"train_{a}", augment_stacks(ds.images, a)) for a in AUGMENTATIONS]]
    for name, images in jobs:
        q = encode_latents(model, images)
        np.save(paths[name], q)
        print(f"[latents] {name}: {q.shape}", flush=True)
    meta.write_text(json.dumps(key))
    return {**paths, **key, "reused": False}
