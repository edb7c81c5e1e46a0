"""Shared fixture of the benchmark tests: a tiny demo-shaped workdir."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import yaml

from components.caches import reconstructions_key
from components.config import load_config
from components.data.dataset import load_dataset
from components.data.ingest import ingest
from components.data.synth import Cohort, write_cohort
from components.models.agent import Agent, save_agent
from components.models.diffae import build_diffae, save_diffae
from components.models.teacher import build_teacher
from components.training.latents import encode_latents

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "synth": {"slices_per_patient": 10, "osic_matrix": 64, "external_matrix": 80, "marker_fraction": 0.5,
              "osic_prevalence": 0.4, "external_prevalence": 0.4},
    "ingest": {"image_size": 16, "min_slices": 8, "n_folds": 3, "workers": 1},
    "diffae": {"image_size": 16, "base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [],
               "encoder_channels": 8, "z_dim": 16, "timesteps": 50, "ddim_steps": 2, "inversion_fixed_point_iters": 0},
    "teacher": {"arch": "densenet-small", "init_features": 4, "growth_rate": 4, "block_config": [2, 2],
                "folds_to_train": 2, "epochs": 2, "batch_size": 8, "max_minutes": 0.5,
                "augment_translate_px": 0.0, "augment_scale": 0.0},
    "agent": {"epochs": 2, "augmentations": [], "report_objectives": ["L1"], "ridge_alphas": [10.0], "patience": 1},
    "counterfactual": {"ig_steps": 4, "batch_size": 32, "alphas": [0.3]},
}


def _import_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_benchmark() -> Callable[[str], ModuleType]:
    """``load_benchmark("cf_cost")`` imports ``benchmarks/cf_cost.py``."""
    return _import_benchmark


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory) -> tuple[Path, Path]:
    """A demo-shaped workdir: cohorts, datasets, an (untrained) tiny DiffAE, latents, inversions,
    a random-weight teacher and an untrained agent (``models/``)."""
    wd = tmp_path_factory.mktemp("faithfulness")
    cfg_path = wd / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump({"preset": "cpu-small", **TINY}))
    cfg = load_config(cfg_path)
    cohorts: tuple[tuple[Cohort, int, int], ...] = (("osic", 16, 0), ("external", 8, 1000))
    for cohort, n, seed in cohorts:
        root = wd / "cohorts" / cohort
        write_cohort(root, cohort, n, seed, cfg.synth, progress=lambda _: None, workers=1)
        ingest(str(root), root / "labels.csv", wd / "datasets" / cohort, cfg.ingest)
    torch.manual_seed(0)
    model = build_diffae(cfg.diffae).eval()
    with torch.no_grad():  # untrained zero-initialised layers would ignore z: counterfactual = reconstruction
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    save_diffae(model, wd / "models" / "diffae.pt")
    ds, ext = load_dataset(wd / "datasets" / "osic"), load_dataset(wd / "datasets" / "external")
    (wd / "latents").mkdir()
    np.save(wd / "latents" / "train.npy", encode_latents(model, ds.images))
    np.save(wd / "latents" / "external.npy", encode_latents(model, ext.images))
    with torch.no_grad():
        recon, x_t, q = model.reconstruct_stack(torch.as_tensor(np.asarray(ext.images)), 2)
    (wd / "reconstructions").mkdir()
    np.savez(wd / "reconstructions" / "external.npz", recon=recon.numpy(), x_T=x_t.numpy(), q=q.numpy())
    (wd / "reconstructions" / "external.json").write_text(json.dumps(reconstructions_key(model, ext.hash, 2)))
    torch.save(build_teacher(cfg.teacher, cfg.ingest.image_size).eval(), wd / "models" / "teacher.pt")
    save_agent(Agent(latent_dim=4 * cfg.diffae.z_dim, feature_dim=2, num_classes=2, mode="output"),
               wd / "models" / "agent.pt")
    return wd, cfg_path


