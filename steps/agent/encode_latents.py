"""ZenML step: DiffAE latents of both cohorts, cached per (dataset hashes, DiffAE weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from components.artifacts import DatasetRef, DiffAERef
from components.caches import Latents, cached_latents
from components.data.dataset import load_dataset
from components.models.diffae import load_diffae
from steps.logs import progress_logger

__all__ = ["encode_latents_step"]

logger = progress_logger(__name__)


@step
def encode_latents_step(
    diffae: DiffAERef, dataset: DatasetRef, external: DatasetRef, workdir: str
) -> Annotated[Latents, "latents"]:
    """Write ``q`` arrays ``[N,4Z]`` float32 (train, external, and each training-set augmentation
    ``train_<name>``) under workdir/latents.

    The arrays are reused (not re-encoded) when ``latents/meta.json`` records the same DiffAE
    weights and dataset hashes, e.g. when ``swap-classifier`` runs against a registered DiffAE
    (:func:`components.caches.cached_latents`).

    Returns:
        The :class:`~components.caches.Latents` (paths and cache key; a typed ZenML artifact).
    """
    model = load_diffae(diffae.path)
    ds, ext = load_dataset(dataset.path), load_dataset(external.path)
    return cached_latents(model, ds.images, ext.images, ds.hash, ext.hash, Path(workdir) / "latents",
                          progress=logger.info)
