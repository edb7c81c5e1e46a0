"""End to end on an isolated local ZenML + MLflow stack: the demo with the tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from components.config import ExperimentConfig, load_config
from components.report.metrics_json import SCHEMA
from pipelines.cli import main
from pipelines.demo import run_demo
from registry.lineage import lineage
from registry.mlflow_registry import read_audit_log

TINY = Path(__file__).with_name("tiny.yaml")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, ExperimentConfig]:
    workdir = tmp_path_factory.mktemp("demo")
    cfg = load_config(TINY, overrides={"workdir": str(workdir), "tracking": {"experiment": "e2e"}})
    summary = run_demo(cfg, progress=lambda m: None)
    return summary, workdir, cfg


def _nulls(doc: dict) -> list[str]:
    """Required metrics.json fields (``SCHEMA``) that are null: each one a section not measured."""
    out = []
    for name, spec in SCHEMA.items():
        section = doc.get(name)
        rows = spec.items() if isinstance(spec, dict) else [(None, spec)]
        for row, fields in rows:
            target = section if row is None else (section or {}).get(row)
            where = name if row is None else f"{name}.{row}"
            out += [where] if target is None else [f"{where}.{f}" for f in fields if target.get(f) is None]
    return [n for n in out if not n.endswith(".champion")]  # no champion to compare with is a valid null


def _between(value: object, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def test_demo_writes_report_with_all_sections(demo_run: tuple[dict, Path, ExperimentConfig]) -> None:
    summary, workdir, cfg = demo_run
    assert summary["status"] == "completed"
    report = workdir / "report" / "index.html"
    assert summary["report"] == str(report) and report.is_file()
    metrics = json.loads((workdir / "report" / "metrics.json").read_text())
    assert _nulls(metrics) == [], "every section of the schema is measured by the demo"
    synth = cfg.synth
    ds = metrics["dataset"]
    assert ds["hash"].startswith("sha256:") and ds["external_hash"].startswith("sha256:")
    assert ds["patients_ok"] + ds["patients_quarantined"] == synth.osic_patients and ds["patients_ok"] >= 20
    assert ds["external_patients_ok"] == synth.external_patients

    rec = metrics["reconstruction"]  # DDIM inversion of a trained DiffAE: near lossless at 16 px
    assert rec["n"] == synth.external_patients and rec["ddim_steps"] == cfg.diffae.ddim_steps
    assert _between(rec["psnr"], 25, 90) and _between(rec["ssim"], 0.9, 1.0)
    assert _between(rec["decision_kept"], 0.5, 1.0) and _between(rec["teacher_kl"], -1e-6, 1.0)
    assert isinstance(rec["passed"], bool) and rec["osic_holdout"]["n"] >= 1
    assert _between(rec["osic_holdout"]["psnr"], 25, 90)
    # what z alone carries (decoded from a prior x_T), gated on its lower bound (cpu-small floor)
    assert _between(rec["semantic_psnr"], 0, 90) and _between(rec["semantic_ssim"], -1.0, 1.0)
    sem = metrics["gates"]["reconstruction"]["metrics"]["semantic_psnr"]
    assert sem["lower"] is not None and sem["point"] is not None
    assert sem["threshold"] == cfg.gates.semantic_psnr_min and sem["lower"] <= sem["point"]

    assert set(metrics["agent_alignment"]) == {"L1", "MSE", "KL"}
    for name, row in metrics["agent_alignment"].items():
        assert row["n"] == synth.external_patients, name
        assert _between(row["teacher_positives"], 0, row["n"]), name
        for key in ("auc", "accuracy", "sensitivity", "specificity", "f1"):
            assert _between(row[key], 0.0, 1.0), (name, key)
        assert _between(row["kl"], -1e-6, 10.0), name

    cf = metrics["counterfactual"]
    assert cf["n_cases"] == cfg.counterfactual.max_cases and cf["alphas"] == cfg.counterfactual.alphas
    for key in ("flip_rate", "random_control_flip_rate", "direction_agreement", "flip_rate_all_cases"):
        assert _between(cf[key], 0.0, 1.0), key
    assert _between(cf["monotonicity_spearman"], -1.0, 1.0)
    assert _between(cf["n_indeterminate"], 0, cf["n_cases"])
    nfe = cf["nfe_breakdown_mean"]  # 4 encoder passes + UNet calls of at least one sweep per alpha
    assert nfe["encoder"] == 4 and nfe["unet"] >= 4 * cfg.counterfactual.ddim_step_count * len(cf["alphas"])
    assert cf["nfe_per_patient"] == nfe["diffae_total"] == nfe["encoder"] + nfe["unet"]
    swap = cf["code_swap"]  # cached inversions: the code-swap test ran
    assert swap["n"] >= 2 and all(isinstance(v, (int, float)) for v in swap.values())
    assert _between(swap["sign_follows_z"], 0.0, 1.0)

    loc = metrics["localization"]
    assert {"random_direction", "gradcam", "gradcampp", "saliency", "integrated_gradients", "occlusion",
            "diffexplainer", "attribution"} <= set(loc)
    assert metrics["maps_skipped"] is None, "a plain-module teacher runs every baseline"
    for name, row in loc.items():
        assert row["n_cases"] == cf["n_cases"], name
        for key in ("auroc", "pointing_game", "relevance_mass"):
            assert _between(row[key], 0.0, 1.0), (name, key)
    evidence = metrics["evidence"]
    assert set(evidence) == set(loc)
    for name, row in evidence.items():
        assert row["n_cases"] == cf["n_cases"] and isinstance(row["shortcut_warning"], bool), name
        assert abs(row["lungs"] + row["outside_lungs"] - 1.0) < 1e-6, name
        assert all(_between(row[k], 0.0, 1.0) for k in ("disease", "distractor", "marker", "rest_of_lungs")), name
    crit = metrics["criteria"]
    assert crit["reconstruction"]["n_patients"] == cf["n_cases"]
    assert _between(crit["reconstruction"]["psnr"], 25, 90)
    assert _between(crit["observable"]["changed_fraction_inside"], 0.0, 1.0)

    timings = metrics["timings_s"]
    stages = ("ingest", "diffae", "teacher", "agent", "reconstruction_gate", "counterfactual")
    assert all(_between(timings[k], 0.0, 3600.0) for k in stages)
    assert timings["total"] >= max(timings[k] for k in stages)
    # the demo's whole wall time, split into measured windows (components/report/wall_account.py)
    assert timings["wall"] > timings["total"] > 0 and timings["pipeline_startup"] >= 0
    assert timings["untimed_steps"] > 0 and summary["timings_s"]["wall"] == timings["wall"]
    assert 0.9 <= timings["accounted_share"] <= 1.001
    assert set(metrics["run_ids"]) == {"diffae", "teacher", "agent", "counterfactuals"}
    assert all(len(r) == 32 for r in metrics["run_ids"].values())
    for name in ("reconstruction", "agent", "counterfactual"):  # each gate measured, with its bound
        g = metrics["gates"][name]
        assert isinstance(g["passed"], bool) and g["metrics"], name
        for m in g["metrics"].values():  # an unmeasured metric must fail its gate, never pass silently
            assert m["threshold"] is not None and (isinstance(m["point"], float) or not g["passed"])
            assert m["lower"] is None or m["lower"] <= m["point"] + 1e-9
    assert metrics["gates"]["agent"]["n"] > metrics["agent_alignment"]["L1"]["n"]  # external + held-out fold
    assert metrics["gates"]["reconstruction"]["n"] == rec["n"]
    assert metrics["gates"]["counterfactual"]["n"] == cf["n_cases"]
    html = report.read_text()
    assert "data:image/png;base64," in html


def test_registration_matches_gates_and_lineage(demo_run: tuple[dict, Path, ExperimentConfig]) -> None:
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


def test_swap_finds_the_training_workdir_through_the_registered_diffae(
    demo_run: tuple[dict, Path, ExperimentConfig], tmp_path: Path
) -> None:
    from components.errors import UserError
    from pipelines.swap_classifier import resolve_workdir

    _, workdir, cfg = demo_run
    elsewhere = cfg.model_copy(update={"workdir": str(tmp_path / "nowhere")})
    assert Path(resolve_workdir(elsewhere, "latest", workdir_given=False)).resolve() == workdir.resolve()
    with pytest.raises(UserError, match="--workdir"):  # a --workdir given is used, never replaced
        resolve_workdir(elsewhere, "latest", workdir_given=True)


def test_rerun_reuses_cached_diffae(demo_run: tuple[dict, Path, ExperimentConfig]) -> None:
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
    demo_run: tuple[dict, Path, ExperimentConfig], tmp_path: Path
) -> None:
    import numpy as np
    import torch

    from components.config import TeacherConfig
    from components.data.dataset import load_dataset
    from components.training.train_teacher import train_teacher
    from pipelines.explain import run_explain
    from pipelines.swap_classifier import run_swap_classifier
    from registry.loaders import load_registered, weights_sha256

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
    tags = MlflowClient().get_model_version(cfg.tracking.agent_model_name, result["agent_version"]).tags
    assert (result["blackbox_mode"], result["blackbox_head"]) == (tags["blackbox_mode"], tags["blackbox_head"])
    assert result["blackbox"] == "features+head (head head)"  # as swap-classifier recorded it on the agent


def test_explain_rejects_non_ct_folder(demo_run: tuple[dict, Path, ExperimentConfig], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notct"
    bad.mkdir()
    (bad / "1.dcm").write_bytes(b"not a dicom file at all")
    _, workdir, _ = demo_run
    rc = main(["explain", "--patient", str(bad), "--out", str(tmp_path / "o"), "--config", str(TINY),
               "--model-alias", "latest"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "notct" in err[0]


def test_explain_on_pydicom_ct_series(demo_run: tuple[dict, Path, ExperimentConfig], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """pydicom's 5-slice CT5N series (a 16 px crop, not a chest: strict mode refuses it)."""
    import shutil

    import numpy as np
    from pydicom.data import get_testdata_file

    ct_small = get_testdata_file("CT_small.dcm")
    assert isinstance(ct_small, str), "pydicom's test data ships CT_small.dcm"
    series = sorted(Path(ct_small).parent.glob("dicomdirtests/98892001/CT5N/*"))
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
    assert "black box: features+head (head head)" in capsys.readouterr().out.splitlines()
    cf = np.load(tmp_path / "lenient" / "counterfactuals.npy")
    rec = np.load(tmp_path / "lenient" / "reconstruction.npy")
    assert cf.shape[0] == 2 and cf.shape[2:] == (4, 16, 16) and rec.shape == (4, 16, 16)
    scores = json.loads((tmp_path / "lenient" / "scores.json").read_text())
    assert scores["patient_id"] == "CT5N"
