"""`diffexplainer drift`: one JSON object, exit 0 with or without drift, one-line errors, latent cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from components.blackbox import state_hash
from components.config import DiffAEConfig
from components.drift.cohort import cohort_latents
from components.models.diffae import build_diffae, save_diffae
from pipelines.cli import main

SIZE = 8


def _dataset(root: Path, images: np.ndarray, tag: str, matrix: int = 128, spacing: float = 2.9) -> Path:
    """A minimal ingest --out folder (the files load_dataset reads), with the acquisition fields
    ingestion measures (matrix, pixel spacing, air / lung HU) drawn around a scanner's values."""
    root.mkdir(parents=True)
    n = len(images)
    rng = np.random.default_rng(sum(map(ord, tag)))
    np.save(root / "images.npy", images.astype(np.float32))
    np.save(root / "lung_masks.npy", np.ones(images.shape, np.uint8))
    pd.DataFrame({"patient": [f"P{i:03d}" for i in range(n)], "status": "ok", "reason": "",
                  "label": [i % 2 for i in range(n)], "fold": 0, "cohort": tag, "rows": matrix, "cols": matrix,
                  "pixel_spacing_mm": spacing + rng.normal(0, 0.1, n), "hu_air": -1000.0,
                  "hu_lung": rng.normal(-850, 15, n)}).to_csv(root / "patients.csv", index=False)
    (root / "dataset.json").write_text(json.dumps({"hash": f"sha256:{tag}", "counts": {"patients_ok": n}}))
    return root


@pytest.fixture(scope="module")
def diffae(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    torch.manual_seed(0)
    cfg = DiffAEConfig(image_size=SIZE, base_channels=4, channel_mults=[1], attention_resolutions=[],
                       z_dim=8, encoder_channels=4, device="cpu")
    model = build_diffae(cfg).eval()
    return save_diffae(model, tmp_path_factory.mktemp("m") / "diffae.pt"), model


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_drift_json_for_unchanged_and_shifted_cohorts(tmp_path: Path, diffae, capsys) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 0.2, size=(60, 4, SIZE, SIZE))
    ref = _dataset(tmp_path / "ref", base[:30], "ref")
    same = _dataset(tmp_path / "same", base[30:], "same")
    shifted = _dataset(tmp_path / "shift", np.clip(base[30:] + 0.6, -1, 1), "shift")
    ckpt = str(diffae[0])
    results = {}
    for name, cur in (("same", same), ("shift", shifted)):
        rc, out, err = _run(["drift", "--reference", str(ref), "--current", str(cur), "--diffae", ckpt], capsys)
        assert rc == 0, err
        lines = out.strip().splitlines()
        assert len(lines) == 1
        results[name] = json.loads(lines[0])
    for doc in results.values():
        assert {"statistic", "p_value", "drift", "n_reference", "n_current", "per_slice"} <= set(doc)
        assert (doc["n_reference"], doc["n_current"]) == (30, 30)
        assert len(doc["per_slice"]) == 4
    assert results["same"]["drift"] is False and results["same"]["p_value"] > 0.05
    assert results["shift"]["drift"] is True and results["shift"]["p_value"] < 0.01
    assert results["shift"]["statistic"] > 5 * results["same"]["statistic"]
    for doc in results.values():  # same scanner: the acquisition test sees nothing
        acq = doc["acquisition"]
        assert acq["drift"] is False and acq["changed"] == [] and acq["n_reference"] == 30
        assert {f["field"] for f in acq["fields"]} == {"pixel_spacing_mm", "hu_lung"}
        assert set(acq["skipped"]) == {"rows", "cols", "hu_air", "slice_spacing_mm"}


def test_drift_reports_a_scanner_change_the_latents_do_not_show(tmp_path: Path, diffae, capsys) -> None:  # noqa: ANN001
    rng = np.random.default_rng(1)
    base = rng.uniform(-1, 0.2, size=(60, 4, SIZE, SIZE))
    ref = _dataset(tmp_path / "ref", base[:30], "ref")
    other = _dataset(tmp_path / "scanner", base[30:], "scanner", matrix=160, spacing=2.4)
    rc, out, err = _run(["drift", "--reference", str(ref), "--current", str(other), "--diffae", str(diffae[0])],
                        capsys)
    assert rc == 0, err
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["drift"] is False  # the images (and so the latents) are of the same kind
    acq = doc["acquisition"]
    assert acq["drift"] is True and acq["p_value"] < 0.01
    assert set(acq["changed"]) == {"rows", "cols", "pixel_spacing_mm"}
    rows = next(f for f in acq["fields"] if f["field"] == "rows")
    assert (rows["reference_median"], rows["current_median"]) == (128.0, 160.0)


@pytest.mark.parametrize("case", ["not_dataset", "bad_checkpoint", "wrong_size", "no_champion"])
def test_drift_bad_input_exits_2_with_one_line(tmp_path: Path, diffae, capsys, monkeypatch, case: str) -> None:  # noqa: ANN001
    rng = np.random.default_rng(1)
    ref = _dataset(tmp_path / "ref", rng.uniform(-1, 1, size=(5, 4, SIZE, SIZE)), "ref")
    cur = _dataset(tmp_path / "cur", rng.uniform(-1, 1, size=(5, 4, SIZE, SIZE)), "cur")
    argv = ["drift", "--reference", str(ref), "--current", str(cur), "--diffae", str(diffae[0])]
    if case == "not_dataset":
        argv[4] = str(tmp_path)
    elif case == "bad_checkpoint":
        (tmp_path / "x.pt").write_text("not a model")
        argv[-1] = str(tmp_path / "x.pt")
    elif case == "wrong_size":
        argv[4] = str(_dataset(tmp_path / "big", rng.uniform(-1, 1, size=(5, 4, 16, 16)), "big"))
    else:
        monkeypatch.setenv("DIFFEXPLAINER_HOME", str(tmp_path / "state"))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}")
        argv = argv[:-2]
    rc, out, err = _run(argv, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), err


def test_cohort_latents_reads_the_pipeline_cache(tmp_path: Path, diffae) -> None:  # noqa: ANN001
    _, model = diffae
    ds = _dataset(tmp_path / "work" / "datasets" / "osic",
                  np.random.default_rng(2).uniform(-1, 1, size=(4, 4, SIZE, SIZE)), "osic")
    encoded, cached = cohort_latents(model, ds)
    assert not cached and encoded.shape == (4, 32)
    cache = tmp_path / "work" / "latents"
    cache.mkdir()
    marker = np.full((4, 32), 7.0, np.float32)
    np.save(cache / "train.npy", marker)
    meta = {"dataset_hash": "sha256:osic", "external_hash": "x", "diffae_sha256": state_hash(model)}
    (cache / "meta.json").write_text(json.dumps(meta))
    q, cached = cohort_latents(model, ds)
    assert cached and np.array_equal(q, marker)
    (cache / "meta.json").write_text(json.dumps({**meta, "diffae_sha256": "other weights"}))
    q, cached = cohort_latents(model, ds)
    assert not cached and np.allclose(q, encoded, atol=1e-5)
