"""HTML report, cohort report writer and the single-patient explain outputs."""

from __future__ import annotations

import json
import re

import numpy as np

from components.config import CounterfactualConfig
from components.counterfactual.evaluate import evaluate_cohort
from components.report import explain_patient, render_report, write_cohort_report
from components.report.figures import plot_localization
from components.report.metrics_json import build_metrics, validate_metrics

_CFG = dict(alphas=[0.1, 0.3], ddim_steps=2, batch_size=16, ig_steps=4, occlusion_window=4, occlusion_stride=4)


def test_render_report_has_every_section_and_embeds_images(tmp_path):
    png = plot_localization({"diffexplainer": {"auroc": 0.8, "pointing_game": 1.0, "relevance_mass": None}},
                            tmp_path / "loc.png")
    metrics = build_metrics(
        dataset={"hash": "sha256:feed", "patients_ok": 9, "patients_quarantined": 1},
        reconstruction={"psnr": 31.4, "ssim": 0.91, "teacher_kl": 0.02, "decision_kept": 0.86, "passed": False},
        agent_alignment={"L1": {"auc": 0.76}},
        counterfactual={"flip_rate": 1.0, "random_control_flip_rate": 0.0, "nfe_per_patient": 2804},
        localization={"diffexplainer": {"auroc": 0.71}, "random_attribution": {"auroc": 0.64}},
        timings_s={"total": 12.5},
        run_ids={"training": "run-123"},
    )
    out = render_report(metrics, tmp_path / "report" / "index.html", {"case_7": [png]}, [png])
    text = out.read_text()
    for heading in ("Run", "Reconstruction gate", "Agent alignment", "Evaluation criteria",
                    "Localisation", "Timings", "Cases", "case_7"):
        assert heading in text
    assert "sha256:feed" in text and "run-123" in text and "FAILED" in text
    assert "1,800" in text  # DiME comparison stated beside our NFE
    assert "by its magnitude" in text and "<td>random_attribution</td>" in text  # the control's row, the scoring said
    imgs = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert len(imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert "n/a" in text  # null values are shown as n/a, not as numbers
    assert "Code-swap test" not in text  # not measured in this run: no line


def test_report_states_the_code_swap_share(tmp_path):
    swap = {"coef_z": 0.69, "coef_x_T": 0.18, "intercept": -0.3, "z_share": 0.793, "sign_follows_z": 0.82, "n": 120.0}
    metrics = build_metrics(counterfactual={"flip_rate": 1.0, "code_swap": swap})
    text = render_report(metrics, tmp_path / "index.html", {}, []).read_text()
    assert "Code-swap test (120 hybrids" in text and "0.793 of the teacher's decision follows z" in text


def test_cohort_report_and_explain(standins, tmp_path):
    model, agent, bb, x = standins
    cfg = CounterfactualConfig(**_CFG, report_cases=1, max_cases=3)
    lungs = np.ones((4, 4, 16, 16), np.uint8)
    masks = np.zeros((4, 4, 16, 16), np.float32)
    masks[:, 1, 4:8, 4:8] = 1.0
    ev = evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg, masks=masks)
    paths = write_cohort_report(tmp_path, ev, cfg, dataset={"hash": "h", "patients_ok": 4, "patients_quarantined": 0},
                                run_ids={"eval": "r1"}, case_ids=["P0", "P1", "P2", "P3"],
                                blackbox={"mode": "feature", "head": "fc", "hash": "ab", "source": "clf.pt"})
    assert paths.index_html == tmp_path / "report" / "index.html"
    doc = json.loads(paths.metrics_json.read_text())
    assert validate_metrics(doc) == []
    assert doc["blackbox"] == {"mode": "feature", "head": "fc", "hash": "ab", "source": "clf.pt"}
    assert "clf.pt: feature mode (head &#x27;fc&#x27;)" in paths.index_html.read_text()
    assert doc["counterfactual"]["n_cases"] == 3 and doc["timings_s"]["counterfactual"] > 0
    assert doc["reconstruction"]["passed"] is None  # no gate given: not decided, not invented
    assert doc["agent_alignment"] is None
    assert all(p.is_file() and p.suffix == ".png" for p in paths.figures)
    assert len(paths.figures) == 3 + 1  # one case (panel, heatmaps, scores) + localisation chart
    assert paths.index_html.read_text().count("data:image/png;base64,") == 4

    out = tmp_path / "explain"
    scores = explain_patient(x[0].numpy(), model, agent, bb, cfg, out, patient_id="P0")
    cfs = np.load(out / "counterfactuals.npy")
    rec = np.load(out / "reconstruction.npy")
    assert cfs.shape == (2, 2, 4, 16, 16) and cfs.dtype == np.float32
    assert rec.shape == (4, 16, 16) and rec.dtype == np.float32
    assert np.abs(cfs).max() <= 1.0
    on_disk = json.loads((out / "scores.json").read_text())
    assert on_disk == scores and on_disk["alphas"] == [0.1, 0.3]
    assert len(on_disk["directions"]) == 2 and len(on_disk["directions"][1]["teacher"]) == 2
    assert on_disk["nfe"]["diffae_total"] > 0
    for name in ("panel.png", "heatmaps.png", "scores.png"):
        assert (out / name).is_file()


def test_add_report_sections_rerenders_with_the_new_section(tmp_path) -> None:
    import json

    from components.report.cohort import add_report_sections, write_cohort_report

    write_cohort_report(tmp_path, dataset={"hash": "h", "patients_ok": 1, "patients_quarantined": 0})
    paths = add_report_sections(tmp_path, faithfulness={"n_cases": 3, "maps": {}, "probe_auc_marker": 0.97})
    doc = json.loads(paths.metrics_json.read_text())
    assert doc["faithfulness"]["probe_auc_marker"] == 0.97 and doc["dataset"]["hash"] == "h"
    assert "0.97" in paths.index_html.read_text()
