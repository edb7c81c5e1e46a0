"""benchmarks/diffae_workdir.py on the tiny workdir's cohorts: the DiffAE half of a workdir, keyed
as the pipeline keys it, so that the faithfulness benchmark reuses it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from components.caches import latents_key, stored_inversions
from components.data.dataset import load_dataset
from components.models.diffae import load_diffae


def test_builds_a_workdir_the_faithfulness_benchmark_reuses(tiny_workdir, load_benchmark, tmp_path: Path,
                                                            monkeypatch, capsys) -> None:
    src, cfg_path = tiny_workdir
    wd = tmp_path / "wd"
    for part in ("datasets", "cohorts"):
        shutil.copytree(src / part, wd / part)
    bench = load_benchmark("diffae_workdir")
    # "cpu:0": the offloaded DiffAE's copy-and-move path, as with --device cuda
    monkeypatch.setattr(sys, "argv", ["diffae_workdir.py", "--workdir", str(wd), "--config", str(cfg_path),
                                      "--device", "cpu:0", "--minutes", "0.01", "--semantic-cases", "3",
                                      "--threads", "1"])
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "diffae_workdir" and result["image_size"] == 16 and result["device"] == "cpu:0"
    assert result["train"]["steps"] >= 1 and result["diffae_params"] > 0
    for key in ("reconstruction", "semantic"):
        psnr = result[key]["psnr"]
        assert len(psnr) == 3 and psnr[1] <= psnr[0] <= psnr[2], key
    assert result["reconstruction"]["n"] == 8 and result["semantic"]["n"] == 3
    model = load_diffae(wd / "models" / "diffae.pt")
    ds, ext = load_dataset(wd / "datasets" / "osic"), load_dataset(wd / "datasets" / "external")
    # the caches carry the saved model's keys, so the benchmarks reuse them instead of recomputing
    assert json.loads((wd / "latents" / "meta.json").read_text()) == latents_key(model, ds.hash, ext.hash)
    stored = stored_inversions(wd, model, ext.hash, int(result["ddim_steps"]))
    assert stored is not None and stored[0].shape == tuple(ext.images.shape)
    faith = load_benchmark("faithfulness")
    out = faith.run_benchmark(wd, faith.load_config(cfg_path), n_cases=4, alphas=[0.3], device="cpu:0",
                              say=lambda _m: None)
    assert out["n_cases"] == 4 and out["diffae_sha256"] == latents_key(model, ds.hash, ext.hash)["diffae_sha256"]
    assert out["maps"]["attribution"]["auroc"] is None or 0.0 <= out["maps"]["attribution"]["auroc"] <= 1.0


def test_gpu_script_runs_both_benchmarks(tiny_workdir, tmp_path: Path) -> None:
    """benchmarks/gpu_faithfulness.sh end to end with the CPU standing in for the GPU ("cpu:0")."""
    src, cfg_path = tiny_workdir
    archive = tmp_path / "workdir.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(src), "datasets", "cohorts"], check=True)
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(out), "WD": str(tmp_path / "wd"), "CFG": str(cfg_path), "CASES": "4", "THREADS": "1",
           "DEVICE": "cpu:0", "ARCHIVE": str(archive), "WHEELS": str(tmp_path / "none"), "MINUTES": "0.01"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(["bash", "benchmarks/gpu_faithfulness.sh"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "FAILED" not in proc.stdout, proc.stdout[-2000:]
    assert json.loads((out / "diffae_workdir.json").read_text())["device"] == "cpu:0"
    faith = json.loads((out / "faithfulness.json").read_text())
    assert faith["n_cases"] == 4 and set(faith["black_boxes"]) == {"F", "M", "R"}
    names = {p.name for p in out.iterdir()}
    assert {"arrays.tar.gz", "attribution_F.png", "faithfulness.log", "diffae_workdir.log"} <= names
    assert len(names) <= 8, "the device tool brings back at most 8 files"
    broken = subprocess.run(["bash", "benchmarks/gpu_faithfulness.sh"], cwd=root, capture_output=True, text=True,
                            env={**env, "ARCHIVE": str(tmp_path / "missing.tar.gz"), "OUT": str(tmp_path / "o2")},
                            timeout=60)
    assert broken.returncode != 0, "a missing archive fails the call"


def test_gpu_pack_ingests_at_64_px_and_packs_what_the_gpu_script_reads(tiny_workdir, tmp_path: Path) -> None:
    src, _ = tiny_workdir
    root = Path(__file__).resolve().parents[2]
    dx = Path(sys.executable).parent / "diffexplainer"
    env = {**os.environ, "PACK_WD": str(tmp_path / "pack"), "WHEELS": "0", "DX": str(dx), "PY": sys.executable}
    proc = subprocess.run(["bash", str(root / "benchmarks" / "gpu_pack.sh"), str(src)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listing = subprocess.run(["tar", "-tzf", str(tmp_path / ".gpu" / "workdir.tar.gz")], capture_output=True,
                             text=True, check=True).stdout.split()
    assert {"datasets/osic/images.npy", "datasets/external/images.npy", "cohorts/osic/cohort.json",
            "cohorts/external/cohort.json"} <= {name.removeprefix("./") for name in listing}
    ds = load_dataset(tmp_path / "pack" / "datasets" / "external")
    assert ds.images.shape[1:] == (4, 64, 64) and len(ds) == len(load_dataset(src / "datasets" / "external"))
    missing = subprocess.run(["bash", str(root / "benchmarks" / "gpu_pack.sh"), str(tmp_path / "nowhere")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "run make demo first" in missing.stderr
