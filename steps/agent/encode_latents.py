"""ZenML step: DiffAE latents of both cohorts, cached per (dataset hash, DiffAE checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from zenml import step

from components.data.dataset import load_dataset
from components.models.diffae import load_diffae
from components.training.latents import encode_latents

__all__ = ["encode_latents_step"]


@step
def encode_latents_step(diffae: dict, dataset: dict, external: dict, workdir: str) -> Annotated[dict, "latents"]:
    """Write ``q`` arrays ``[N,2048]`` float32 (train, train flipped, external) under workdir/latents.

    Returns:
        {train, train_flip, external: paths; dataset_hash, external_hash, diffae}.
    """
    model = load_diffae(diffae["path"])
    ds, ext = load_dataset(dataset["path"]), load_dataset(external["path"])
    out = Path(workdir) / "latents"
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, images, flip in (("train", ds.images, False), ("train_flip", ds.images, True),
                              ("external", ext.images, False)):
        q = encode_latents(model, images, flip=flip)
        paths[key] = str(out / f"{key}.npy")
        np.save(paths[key], q)
        print(f"[latents] {key}: {q.shape}", flush=True)
    return {**paths, "dataset_hash": ds.hash, "external_hash": ext.hash, "diffae": diffae["path"]}
