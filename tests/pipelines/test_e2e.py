"""End to end on an isolated local ZenML + MLflow stack: the demo with the tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.config import load_config
from pipelines.cli import main
from pipelines.demo import run_demo
from steps.registry.lineage import lineage
from steps.registry.mlflow_registry import read_audit_log

TINY = Path(__file__).with_name("tiny.yaml")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, object]:
    workdir = tmp_path_factory.mktemp("demo")
    cfg = load_config(TINY, overrides={"workdir": str(workdir), "tracking": {"experiment": "e2e"}})
    summary = run_demo(cfg, progress=lambda m: None)
    return summary, workdir, cfg


def test_demo_writes_report_with_all_sections(demo_run: tuple[dict, Path, object]) -> None:
    summary, workdir, _ = demo_run
    assert summary["status"] == "completed"
    report = workdir / "report" / "index.html"
    assert summary["report"] == str(report) and report.is_file()
    metrics = json.loads((workdir / "report" / "metrics.json").read_text())
    for key in ("dataset", "reconstruction", "agent_alignment", "counterfactual", "localization", "timings_s"):
        assert key in metrics
    assert metrics["dataset"]["hash"].startswith("sha256:")
    assert set(metrics["agent_alignment"]) == {"L1", "MSE", "KL"}
    assert metrics["counterfactual"]["n_cases"] >= 1
    assert metrics["counterfactual"]["nfe_per_patient"] > 0
    for stage in ("ingest", "diffae", "teacher", "agent", "reconstruction_gate", "counterfactual", "total"):
        assert metrics["timings_s"][stage] is not None and metrics["timings_s"][stage] >= 0
    for name in ("reconstruction", "agent", "counterfactual"):  # each gate measured, with its bound
        g = metrics["gates"][name]
        assert isinstance(g["passed"], bool) and g["metrics"], name
        for m in g["metrics"].values():  # an unmeasured metric must fail its gate, never pass silently
            assert m["threshold"] is not None and (isinstance(m["point"], float) or not g["passed"])
    assert metrics["gates"]["agent"]["n"] > metrics["agent_alignment"]["L1"]["n"]  # external + held-out fold
    html = report.read_text()
    assert "data:image/png;base64," in html


def test_registration_matches_gates_and_lineage(demo_run: tuple[dict, Path, object]) -> None:
    summary, _, cfg = demo_run
    reg = next(v for k, v in summary.items() if k.endswith(".registration"))
    gate = next(v for k, v in summary.items() if k.endswith(".reconstruction_gate"))
    client = MlflowClient()
    for name in (cfg.tracking.diffae_model_name, cfg.tracking.teacher_model_name, cfg.tracking.agent_model_name):
        entry = reg[name]
        mv = client.get_model_version(name, entry["version"])
        assert mv.tags["dataset_hash"] == summary["ingest_osic.dataset"]["hash"]
        all_passed = mv.tags["gates_passed"] == "true"
        assert entry["promoted"] == all_passed
        assert mv.tags["gate.reconstruction"] == ("passed" if gate["passed"] else "failed")
        actions = [r["action"] for r in read_audit_log(name) if r["version"] == entry["version"]]
        assert actions == ["decide", "promote" if all_passed else "refuse"]
        info = lineage(f"{name}/{entry['version']}")
        decision = info["gate_decision"]
        assert decision["verdict"] == ("pass" if all_passed else "fail") == entry["verdict"]
        assert set(decision["gates"]) == {"reconstruction", "agent", "counterfactual"}
        assert decision["cohort_hashes"]["dataset"] == mv.tags["dataset_hash"]
        assert decision["cohort_hashes"]["external"] == mv.tags["external_dataset_hash"] == \
            summary["ingest_external.dataset"]["hash"]
        for g in decision["gates"].values():  # every gate decided on numbers, not on missing values
            for m in g["evidence"]["metrics"].values():
                assert m["threshold"] is not None and (isinstance(m["point"], float) or not g["passed"])
        assert all(f.split(".")[0] in decision["gates"] for f in decision["failing"])
        assert (not decision["failing"]) == all_passed
        assert info["dataset"]["hash"] == mv.tags["dataset_hash"]
        assert info["dataset"]["ingest_runs"], "lineage must reach the ingest run"
        assert info["pipeline_run"] == summary["pipeline_run"]


def test_rerun_reuses_cached_diffae(demo_run: tuple[dict, Path, object]) -> None:
    summary, workdir, cfg = demo_run
    second = run_demo(cfg, progress=lambda m: None)
    assert second["status"] == "completed"
    from zenml.client import Client

    run = Client().get_pipeline_run(second["pipeline_run"])
    assert str(run.steps["train_diffae_step"].status).endswith("cached")
    assert str(run.steps["ingest_osic"].status).endswith("cached")
    # the drift check ran first and was recorded beside the data-quality verdict; an unchanged
    # cohort (same hash as a champion's) or a first champion-less run retrains from the cache
    drift = second["drift_check.drift"]
    reg = next(v for k, v in summary.items() if k.endswith(".registration"))
    promoted = reg[cfg.tracking.diffae_model_name]["promoted"]
    assert drift["status"] == "unchanged" if promoted else drift["status"] != "unchanged"
    assert drift["action"] == "retrain"
    assert isinstance(drift["validation_success"], bool)
    first_drift = summary["drift_check.drift"]
    assert first_drift["status"] in {"no_champion", "unchanged", "tested"}
    metrics = json.loads((workdir / "report" / "metrics.json").read_text())
    assert metrics["drift"]["status"] == drift["status"]
    assert "Cohort drift" in (workdir / "report" / "index.html").read_text()


def test_demo_cli_bad_preset_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown preset" in err[0]


def test_swap_classifier_reuses_diffae_and_explain_finds_its_agent(
    demo_run: tuple[dict, Path, object], tmp_path: Path
) -> None:
    import numpy as np
    import torch

    from components.config import TeacherConfig
    from components.data.dataset import load_dataset
    from components.training.train_teacher import train_teacher
    from pipelines.explain import run_explain
    from pipelines.swap_classifier import run_swap_classifier
    from steps.registry.loaders import load_registered, weights_sha256

    _, workdir, cfg = demo_run
    ds = load_dataset(workdir / "datasets" / "osic")
    resnet_cfg = TeacherConfig(arch="resnet", folds_to_train=2, epochs=1, max_minutes=0.2)
    resnet, _ = train_teacher(np.asarray(ds.images), ds.labels, ds.folds, resnet_cfg)
    clf = tmp_path / "resnet.pt"
    torch.save(resnet, clf)

    diffae_before, mv = load_registered(cfg.tracking.diffae_model_name, "latest")
    before = weights_sha256(diffae_before)
    out = tmp_path / "swap"
    summary = run_swap_classifier(cfg, str(clf), str(out), diffae_spec="latest", max_cases=2)
    assert summary["status"] == "completed"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counterfactual"]["n_cases"] == 2
    assert set(metrics["agent_alignment"]) == {"L1", "MSE", "KL"}
    assert (out / "report" / "index.html").is_file()
    diffae_after, mv_after = load_registered(cfg.tracking.diffae_model_name, "latest")
    assert mv_after.version == mv.version, "swap-classifier must not register a new DiffAE"
    assert weights_sha256(diffae_after) == before
    from zenml.client import Client

    steps = Client().get_pipeline_run(summary["pipeline_run"]).steps
    gate = steps["reconstruction_gate_step"].outputs["reconstruction_gate"][0].load()
    assert gate["inversions"]["reused"] is True, "the DiffAE's reconstructions do not depend on the classifier"
    assert (workdir / "reconstructions" / "external.npz").is_file()

    patient = next((workdir / "cohorts" / "external" / "train").iterdir())
    result = run_explain(cfg, str(patient), str(tmp_path / "explain"), classifier=str(clf), alias="latest")
    cf = np.load(tmp_path / "explain" / "counterfactuals.npy")
    rec = np.load(tmp_path / "explain" / "reconstruction.npy")
    n_alpha = len(cfg.counterfactual.alphas)
    assert cf.shape == (2, n_alpha, 4, 16, 16) and cf.dtype == np.float32
    assert rec.shape == (4, 16, 16) and np.abs(cf).max() <= 1.0
    assert (tmp_path / "explain" / "scores.json").is_file()
    assert result["agent_version"] == summary["registration"][cfg.tracking.agent_model_name]["version"]


def test_explain_rejects_non_ct_folder(demo_run: tuple[dict, Path, object], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notct"
    bad.mkdir()
    (bad / "1.dcm").write_bytes(b"not a dicom file at all")
    _, workdir, _ = demo_run
    rc = main(["explain", "--patient", str(bad), "--out", str(tmp_path / "o"), "--config", str(TINY),
               "--model-alias", "latest"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "notct" in err[0]


def test_explain_on_pydicom_ct_series(demo_run: tuple[dict, Path, object], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """pydicom's 5-slice CT5N series (a 16 px crop, not a chest: strict mode refuses it)."""
    import shutil

    import numpy as np
    from pydicom.data import get_testdata_file

    series = sorted(Path(get_testdata_file("CT_small.dcm")).parent.glob("dicomdirtests/98892001/CT5N/*"))
    assert len(series) == 5
    patient = tmp_path / "CT5N"
    patient.mkdir()
    for n, f in enumerate(series, start=1):
        shutil.copy(f, patient / f"{n}.dcm")
    import yaml

    cfg_dict = yaml.safe_load(TINY.read_text())
    cfg_dict["ingest"]["min_slices"] = 4
    config = tmp_path / "explain.yaml"
    config.write_text(yaml.safe_dump(cfg_dict))
    args = ["explain", "--patient", str(patient), "--config", str(config), "--model-alias", "latest"]
    assert main([*args, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a chest CT as expected" in err[0]

    assert main([*args, "--out", str(tmp_path / "lenient"), "--lenient"]) == 0
    cf = np.load(tmp_path / "lenient" / "counterfactuals.npy")
    rec = np.load(tmp_path / "lenient" / "reconstruction.npy")
    assert cf.shape[0] == 2 and cf.shape[2:] == (4, 16, 16) and rec.shape == (4, 16, 16)
    scores = json.loads((tmp_path / "lenient" / "scores.json").read_text())
    assert scores["patient_id"] == "CT5N"
