"""benchmarks/faithfulness.py on a tiny synthetic workdir: the JSON line has the issue's keys."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from components.config import load_config
from components.data.dataset import load_dataset
from components.data.ingest import ingest
from components.data.synth import write_cohort
from components.models.diffae import build_diffae, save_diffae
from components.training.latents import encode_latents

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "synth": {"slices_per_patient": 10, "osic_matrix": 64, "external_matrix": 80, "marker_fraction": 0.5,
              "osic_prevalence": 0.4, "external_prevalence": 0.4},
    "ingest": {"image_size": 16, "min_slices": 8, "n_folds": 2, "workers": 1},
    "diffae": {"image_size": 16, "base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [],
               "encoder_channels": 8, "z_dim": 16, "timesteps": 50, "ddim_steps": 2, "inversion_fixed_point_iters": 0},
    "teacher": {"arch": "densenet-small", "init_features": 4, "growth_rate": 4, "block_config": [2, 2],
                "folds_to_train": 2, "epochs": 2, "batch_size": 8, "max_minutes": 0.5,
                "augment_translate_px": 0.0, "augment_scale": 0.0},
    "agent": {"epochs": 2, "augmentations": [], "report_objectives": ["L1"], "ridge_alphas": [10.0], "patience": 1},
    "counterfactual": {"ddim_steps": 2, "ig_steps": 4, "batch_size": 32, "alphas": [0.3]},
}


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("faithfulness_benchmark", ROOT / "benchmarks" / "faithfulness.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory) -> tuple[Path, Path]:
    """A demo-shaped workdir: cohorts, datasets, an (untrained) tiny DiffAE, latents, inversions."""
    wd = tmp_path_factory.mktemp("faithfulness")
    cfg_path = wd / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump({"preset": "cpu-small", **TINY}))
    cfg = load_config(cfg_path)
    for cohort, n, seed in (("osic", 16, 0), ("external", 8, 1000)):
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
    (wd / "reconstructions" / "external.json").write_text(json.dumps({"ddim_steps": 2, "dataset_hash": ext.hash}))
    return wd, cfg_path


def test_benchmark_prints_the_issue_keys(tiny_workdir, capsys) -> None:
    wd, cfg_path = tiny_workdir
    bench = _load_benchmark()
    bench.main(["--workdir", str(wd), "--config", str(cfg_path), "--cases", "4", "--alphas", "0.3", "--threads", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["n_cases"] == 4 and 1 <= result["n_marked_cases"] <= 3
    assert set(result["maps"]) == {"difference", "attribution", "random_direction", "gradcam", "integrated_gradients"}
    for name, row in result["maps"].items():
        for key in ("mcs_marker", "mcs_disease", "auroc_vs_random"):
            assert isinstance(row[key], list) and len(row[key]) == 3, (name, key)
        for key in ("randomisation_spearman", "randomisation_evidence_ratio", "reliance_spearman"):
            assert key in row, (name, key)
    assert result["maps"]["random_direction"]["auroc_vs_random"] == [0.0, 0.0, 0.0]
    att = result["maps"]["attribution"]
    assert att["mcs_marker"][0] is not None and att["randomisation_evidence_ratio"] is not None
    assert att["evidence"]["F"]["lungs"] is not None
    assert "probe_auc_marker" in result
    assert result["intervention_max_abs_diff"] < 1e-5, "interventions rendered exactly as the ingested stacks"
    assert set(result["black_boxes"]) == {"F", "M", "R"}
    assert all(set(r["reliance"]) == {"disease", "distractor", "marker"} for r in result["black_boxes"].values())
    out = wd / "faithfulness"
    assert (out / "faithfulness.json").is_file() and "<h2>Faithfulness</h2>" in (out / "faithfulness.html").read_text()
    assert all((out / f"attribution_{b}.png").is_file() for b in "FMR")
