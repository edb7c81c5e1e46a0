"""Faithfulness tools (issue 10): counterfactual attribution, evidence shares, model contrast,
interventional reliance, and their wiring into the cohort evaluation and ``explain``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cf_standins import NoGradBlackBox, TinyTeacher, lesion_map, lung_map
from torch import nn

from components.config import CounterfactualConfig
from components.counterfactual.attribution import (
    attribution_stack,
    counterfactual_attribution,
    evidence_against,
    flip_counterfactual,
    score_change,
)
from components.counterfactual.evaluate import evaluate_cohort
from components.counterfactual.evidence import (
    EVIDENCE_KEYS,
    component_masses,
    evidence_shares,
    model_contrast,
    pooled_model_contrast,
    total_evidence,
)
from components.counterfactual.reliance import component_reliance, logit_margin, reliance_deltas
from components.report.explain import explain_patient


class TinyCNN(nn.Module):
    """A small nonlinear classifier ``[B,4,16,16] -> [B,2]`` (seeded)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(6 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(torch.tanh(self.conv(x))).flatten(1))


class Ignores(nn.Module):
    """Constant logits whatever the input."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], 2) + 0.0 * x.sum(dim=(1, 2, 3))[:, None]


def _pair(seed: int = 0, k: int = 3, a: int = 2) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    recon = g.uniform(-1, 1, (k, 4, 16, 16)).astype(np.float32)
    cf = np.clip(recon[:, None] + g.normal(0, 0.3, (k, a, 4, 16, 16)), -1, 1).astype(np.float32)
    return recon, cf


def test_evidence_against_is_the_other_logit_margin() -> None:
    logits = torch.tensor([[1.0, 3.0], [0.5, -1.0]])
    assert torch.allclose(evidence_against(logits, 0), logits[:, 1] - logits[:, 0])
    three = torch.tensor([[0.0, 1.0, 2.0]])
    assert torch.allclose(evidence_against(three, 2), torch.logsumexp(three[:, :2], 1) - 2.0)


@pytest.mark.parametrize("direction", [0, 1])
def test_attribution_sums_to_the_black_box_output_change(direction: int) -> None:
    bb = NoGradBlackBox(TinyCNN())
    recon, cf = _pair()
    before = (recon.copy(), cf.copy())
    attr = counterfactual_attribution(bb, recon, cf, direction, n_steps=64)
    assert attr.shape == recon.shape and attr.dtype == np.float32
    change = score_change(bb, recon, cf, direction)
    sums = attr.reshape(len(attr), -1).sum(axis=1)
    assert np.allclose(sums, change, rtol=0.02, atol=1e-3), (sums, change)
    assert np.array_equal(recon, before[0]) and np.array_equal(cf, before[1]), "inputs not modified"
    # one alpha: a [K,4,H,W] counterfactual
    one = counterfactual_attribution(bb, recon, cf[:, 0], direction, n_steps=64)
    assert np.allclose(one.reshape(3, -1).sum(1), score_change(bb, recon, cf[:, 0], direction), rtol=0.02, atol=1e-3)


def test_attribution_of_a_model_that_ignores_the_input_is_zero() -> None:
    recon, cf = _pair(1)
    attr = counterfactual_attribution(NoGradBlackBox(Ignores()), recon, cf, 0, n_steps=8)
    assert np.all(attr == 0.0)


def test_attribution_of_a_linear_teacher_is_gradient_times_difference() -> None:
    w = lesion_map()
    teacher = TinyTeacher(w, scale=2.0).eval()
    recon, cf = _pair(2, a=1)
    attr = counterfactual_attribution(NoGradBlackBox(teacher), recon, cf, 0, n_steps=4)
    expected = 2.0 * w.numpy()[None] * (recon - cf[:, 0])  # d(l1 - l0)/dx = scale * w
    assert np.allclose(attr, expected, atol=1e-5)
    assert not np.any(attr[:, :, w.numpy().sum(0) == 0]), "nothing outside the pixels the teacher reads"


@pytest.mark.parametrize("compile_", ["script", "trace"])
def test_attribution_works_on_torchscript_black_boxes(compile_: str) -> None:
    eager = TinyCNN(3).eval()
    recon, cf = _pair(3)
    scripted = torch.jit.script(eager) if compile_ == "script" else torch.jit.trace(eager, torch.zeros(1, 4, 16, 16))
    a = counterfactual_attribution(NoGradBlackBox(eager), recon, cf, 0, n_steps=16)
    b = counterfactual_attribution(NoGradBlackBox(scripted), recon, cf, 0, n_steps=16)
    assert np.allclose(a, b, atol=1e-5)
    stack, used = attribution_stack(NoGradBlackBox(scripted), recon, np.stack([cf, cf], axis=1), n_steps=16)
    assert stack.shape == (3, 2, 4, 16, 16) and np.allclose(stack[:, 0], b, atol=1e-6)
    assert used.shape == (3, 2, *cf.shape[1:])


def test_flip_counterfactual_takes_the_first_alpha_that_reaches_the_target() -> None:
    cfs = np.arange(3 * 4, dtype=np.float32).reshape(3, 4, 1, 1, 1) * np.ones((1, 1, 4, 2, 2), np.float32)
    p_target = np.array([[0.2, 0.6, 0.9, 0.99],   # reaches class 0 at alpha index 1
                         [0.1, 0.2, 0.3, 0.4],    # never: the largest alpha
                         [0.7, 0.8, 0.9, 0.95]])  # already there: the smallest
    probs = np.stack([p_target, 1 - p_target], axis=2)  # [K,A,C], class 0 = target
    chosen, idx = flip_counterfactual(cfs, probs, target=0)
    assert idx.tolist() == [1, 3, 0]
    assert np.array_equal(chosen, cfs[np.arange(3), idx]) and chosen.shape == (3, 4, 2, 2)
    with pytest.raises(ValueError, match="differ"):
        flip_counterfactual(cfs, probs[:, :3], target=0)


def test_attribution_at_the_flip_sums_to_that_counterfactuals_output_change() -> None:
    bb = NoGradBlackBox(TinyCNN(5).eval())
    recon, cf = _pair(4, a=3)  # cf [K,3,4,H,W] toward class 0
    probs = np.zeros((len(recon), 2, 3, 2), np.float32)  # [K,D,A,C]
    probs[:, 0, 0, 1] = probs[:, 0, 1:, 0] = 1.0  # toward class 0: reached from alpha index 1 on
    probs[:, 1, :, 0] = 1.0  # toward class 1: never reached
    maps, used = attribution_stack(bb, recon, np.stack([cf, cf], axis=1), n_steps=16, teacher_cf=probs)
    assert np.array_equal(used[:, 0], cf[:, 1]) and np.array_equal(used[:, 1], cf[:, 2])  # class 1 never: last
    sums = maps[:, 0].reshape(len(recon), -1).sum(1)
    assert np.allclose(sums, score_change(bb, recon, cf[:, 1], 0), rtol=0.03, atol=1e-3)


def _masks(k: int = 4) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    lung = lung_map().numpy()[None].repeat(k, 0)
    disease = np.zeros((k, 4, 16, 16), np.float32)
    disease[:, :, 4:8, 4:8] = 1.0
    distractor = np.zeros_like(disease)
    distractor[:, :, 9:12, 9:12] = 1.0
    marker = np.zeros_like(disease)
    marker[:, :, 0:2, 6:9] = 1.0
    return lung, {"disease": disease, "distractor": distractor, "marker": marker}


def test_component_masses_and_shortcut_warning() -> None:
    lung, comps = _masks()
    on_marker = comps["marker"] * 5.0 - 0.0
    shares = component_masses(-on_marker, lung, comps)  # sign does not matter
    assert np.allclose(shares["marker"], 1.0) and np.allclose(shares["outside_lungs"], 1.0)
    assert np.allclose(shares["disease"], 0.0) and np.allclose(shares["rest_of_lungs"], 0.0)
    # positive part only: evidence against the change (negative) on the disease does not count
    signed = comps["marker"] * 3.0 - comps["disease"] * 1.0
    pos = component_masses(signed, lung, comps, positive_only=True)
    assert np.allclose(pos["marker"], 1.0) and np.allclose(pos["disease"], 0.0)
    both = component_masses(signed, lung, comps)
    assert np.allclose(both["marker"], 18 / (18 + 16)) and np.allclose(both["disease"], 16 / (18 + 16))  # 6 px x 3
    even = np.ones((4, 4, 16, 16), np.float32)
    s = component_masses(even, lung, comps)
    assert np.allclose(s["lungs"], 144 / 256) and np.allclose(s["disease"], 16 / 256)
    assert np.allclose(s["rest_of_lungs"], (144 - 16 - 9) / 256)
    assert np.allclose(s["lungs"], s["disease"] + s["distractor"] + s["rest_of_lungs"])
    # a case without a marker mask row (NaN) and a case with an all-zero map give NaN
    comps2 = {**comps, "marker": comps["marker"].copy()}
    comps2["marker"][1] = np.nan
    even[2] = 0
    s2 = component_masses(even, lung, comps2)
    assert np.isnan(s2["marker"][1]) and np.isnan(s2["lungs"][2]) and np.isfinite(s2["marker"][0])
    # the attribution map decides the warning; other maps (here the difference map) are listed, not flagged
    table = evidence_shares({"attribution": on_marker, "diffexplainer": on_marker, "even": np.ones_like(on_marker)},
                            lung, comps, 0.5)
    assert table["attribution"]["shortcut_warning"] is True
    assert table["diffexplainer"]["shortcut_warning"] is False and table["even"]["shortcut_warning"] is False
    fallback = evidence_shares({"diffexplainer": on_marker}, lung, comps, 0.5)  # no attribution map: difference map
    assert fallback["diffexplainer"]["shortcut_warning"] is True
    assert not evidence_shares({"attribution": np.ones_like(on_marker)}, lung, comps, 0.5)["attribution"][
        "shortcut_warning"]  # 112 / 256 outside < 0.5
    assert set(EVIDENCE_KEYS) <= set(table["even"]) and table["even"]["n_cases"] == 4
    no_masks = evidence_shares({"even": np.ones_like(on_marker)}, lung)
    assert no_masks["even"]["disease"] is None and no_masks["even"]["lungs"] == pytest.approx(144 / 256)
    assert np.allclose(total_evidence(-on_marker), 5.0 * 4 * 6)


def test_model_contrast_score() -> None:
    g = np.random.default_rng(0)
    a = g.uniform(0.3, 0.6, 30)
    assert model_contrast(a, a.copy()) == (0.0, 0.0, 0.0), "a map that ignores the classifier scores 0"
    point, low, high = model_contrast(a + 0.2 + g.normal(0, 0.02, 30), a)
    assert low < point < high and low > 0.1 and point == pytest.approx(0.2, abs=0.02)
    assert all(np.isnan(model_contrast(np.array([1.0]), np.array([0.5]))))
    with pytest.raises(ValueError):
        model_contrast(a, a[:3])


def test_mcs_of_a_classifier_independent_map_is_zero() -> None:
    """Shares of a map computed from the images alone are the same for any two black boxes."""
    lung, comps = _masks(6)
    images = np.random.default_rng(1).uniform(-1, 1, (6, 4, 16, 16)).astype(np.float32)
    image_map = np.abs(images)  # what a classifier-independent explanation would show
    f = component_masses(image_map, lung, comps)["marker"]
    m = component_masses(image_map.copy(), lung, comps)["marker"]
    assert model_contrast(m, f) == (0.0, 0.0, 0.0)


def test_pooled_model_contrast_weighs_cases_by_evidence() -> None:
    """Evidence-weighted contrast: known answers, 0 for a classifier-independent map, and a case where
    B barely responds counts by that little evidence, not as a whole case as in the per-case mean."""
    k = 8
    comp = np.zeros((k, 4, 4, 4))
    comp[:, :, :2] = 1.0  # the component: the top half of every slice
    a = np.zeros((k, 4, 4, 4))
    a[:, :, :2] = 1.0  # A: all of its evidence on the component
    b = np.ones((k, 4, 4, 4))  # B: half of it on the component
    b[: k // 2] *= 1.0 + np.arange(k // 2)[:, None, None, None]  # unequal totals: the point stays exact
    assert pooled_model_contrast(a, b, comp) == pytest.approx((0.5, 0.5, 0.5))
    assert pooled_model_contrast(a, a.copy(), comp) == (0.0, 0.0, 0.0), "a map that ignores the classifier scores 0"
    # B with strong evidence off the component on half of the cases and a tiny map fully on it elsewhere
    b2 = np.zeros((k, 4, 4, 4))
    b2[: k // 2, :, 2:] = 1.0
    b2[k // 2 :, :, :2] = 1e-3
    point = pooled_model_contrast(a, b2, comp)[0]
    per_case = np.mean(component_masses(a, comp, {"disease": comp})["disease"]
                       - component_masses(b2, comp, {"disease": comp})["disease"])
    assert per_case == pytest.approx(0.5) and point == pytest.approx(1.0 - 1e-3 / (1.0 + 1e-3), abs=1e-9)
    # negative relevance is left out (positive part), unless asked for |.|
    assert pooled_model_contrast(a, -b, comp)[0] != pooled_model_contrast(a, -b, comp, positive_only=False)[0]
    assert all(np.isnan(pooled_model_contrast(a[:1], b[:1], comp[:1])))
    with pytest.raises(ValueError, match="differ in shape"):
        pooled_model_contrast(a, b[:3], comp)


def test_reliance_follows_what_the_black_box_reads() -> None:
    lung, comps = _masks(5)
    g = np.random.default_rng(2)
    images = g.uniform(-0.5, 0.5, (5, 4, 16, 16)).astype(np.float32)
    images[comps["marker"] > 0] = 1.0
    removed = {"marker": np.where(comps["marker"] > 0, -1.0, images).astype(np.float32),
               "disease": np.where(comps["disease"] > 0, -0.8, images).astype(np.float32)}
    reads_marker = NoGradBlackBox(TinyTeacher(torch.as_tensor(comps["marker"][0]), scale=0.5))
    table = component_reliance(reads_marker, images, removed)
    assert table["marker"]["reliance"] == pytest.approx(0.5 * 2.0 * 24) and table["disease"]["reliance"] == 0.0
    delta = table["marker"]["mean_delta"]
    assert delta is not None and delta < 0 and table["marker"]["n_cases"] == 5
    present = {"marker": np.array([1, 1, 0, 0, 1], bool)}
    deltas = reliance_deltas(reads_marker, images, removed, present)
    assert np.isnan(deltas["marker"][2]) and component_reliance(reads_marker, images, removed, present)["marker"]["n_cases"] == 3
    m0, m1 = logit_margin(reads_marker, images, 0), logit_margin(reads_marker, images, 1)
    assert np.allclose(m0, -m1)


_CFG = dict(alphas=[0.1, 0.3], ddim_steps=2, batch_size=16, ig_steps=4, occlusion_window=4, occlusion_stride=4)


def test_evaluate_cohort_scores_the_attribution_map_and_the_evidence(standins) -> None:
    model, agent, bb, x = standins
    n = x.shape[0]
    cfg = CounterfactualConfig(**_CFG, max_cases=4)
    lungs = lung_map()[None].repeat(n, 1, 1, 1).numpy()
    masks = lesion_map()[None].repeat(n, 1, 1, 1).numpy()
    _, comps = _masks(n)
    ev = evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg, masks=masks,
                         distractor=comps["distractor"], marker=comps["marker"])
    loc, evidence = ev.metrics["localization"], ev.metrics["evidence"]
    assert "attribution" in loc and ev.maps["attribution"].shape == (4, 4, 16, 16)
    assert loc["attribution"]["relevance_mass"] == 1.0, "the stand-in teacher reads only the lesion"
    assert set(evidence) == set(ev.maps)
    row = evidence["attribution"]
    assert row["disease"] == pytest.approx(1.0) and row["marker"] == 0.0 and row["shortcut_warning"] is False
    assert row["lungs"] + row["outside_lungs"] == pytest.approx(1.0)
    assert evidence["diffexplainer"]["marker"] is not None
    assert "random_attribution" in loc and ev.maps["random_attribution"].shape == ev.maps["attribution"].shape
    # without masks: no localisation, but the cheap maps still say where the evidence lies
    ev2 = evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg.model_copy(update={"max_cases": 2}))
    assert ev2.metrics["localization"] is None
    assert set(ev2.metrics["evidence"]) == {"diffexplainer", "random_direction", "attribution", "random_attribution"}
    assert ev2.metrics["evidence"]["attribution"]["disease"] is None
    off = cfg.model_copy(update={"max_cases": 2, "attribution_map": False})
    assert "attribution" not in evaluate_cohort(model, agent, bb, x.numpy(), lungs, off).metrics["evidence"]


@pytest.mark.parametrize("random_alphas", ["all", "largest"])
@pytest.mark.parametrize("rule", ["flip", "mean"])
def test_random_attribution_is_step_matched_where_it_can_be(standins, random_alphas, rule) -> None:
    """The control attributes the random direction at the attribution's own alpha per case when every alpha
    was decoded, at the largest otherwise; with the mean rule, over the decoded alphas."""
    model, agent, bb, x = standins
    cfg = CounterfactualConfig(**_CFG | {"alphas": [0.1, 0.3, 0.6]}, max_cases=4, random_control_alphas=random_alphas,
                               attribution_alpha=rule)
    ev = evaluate_cohort(model, agent, bb, x.numpy(), lung_map()[None].repeat(x.shape[0], 1, 1, 1).numpy(), cfg)
    sweep, healthy = ev.sweep, cfg.healthy_class
    assert sweep.random_cf is not None
    rand = sweep.random_cf[:, healthy]  # [K,A_r,4,H,W]
    assert rand.shape[1] == (3 if random_alphas == "all" else 1)
    _, chosen = flip_counterfactual(sweep.counterfactuals[:, healthy], sweep.teacher_cf[:, healthy], healthy)
    k = np.arange(len(rand))
    if rule == "mean":
        expected = rand  # the attribution averages over the decoded alphas
    else:
        expected = rand[k, chosen] if random_alphas == "all" else rand[:, -1]
    control = ev.maps["random_attribution"]
    # integrated gradients sum to the score change from the baseline(s) the control starts from
    change = score_change(bb, sweep.recon, expected, healthy)
    assert control.reshape(len(control), -1).sum(axis=1) == pytest.approx(change, rel=0.05, abs=1e-4)
    assert not np.allclose(control, ev.maps["attribution"]), "a random direction is not the agent's"
    if rule == "flip" and random_alphas == "all":  # the check can tell a matched step from the largest one
        assert (chosen < 2).any() and not np.allclose(change, score_change(bb, sweep.recon, rand[:, -1], healthy))


def test_explain_writes_the_attribution_map(standins, tmp_path) -> None:
    model, agent, bb, x = standins
    cfg = CounterfactualConfig(**_CFG)
    scores = explain_patient(x[0].numpy(), model, agent, bb, cfg, tmp_path, patient_id="P0")
    attr = np.load(tmp_path / "attribution.npy")
    cfs = np.load(tmp_path / "counterfactuals.npy")
    assert attr.shape == (2, 4, 16, 16) == (cfs.shape[0], *cfs.shape[2:]) and attr.dtype == np.float32
    assert (tmp_path / "attribution.png").is_file()
    assert {"attribution.npy", "attribution.png"} <= set(scores["files"])
    on_disk = json.loads((tmp_path / "scores.json").read_text())
    for d, row in enumerate(on_disk["attribution"]):
        assert row["direction"] == d and row["sum"] == pytest.approx(row["score_change"], rel=1e-3, abs=1e-4)
        assert row["sum"] == pytest.approx(float(attr[d].sum()), rel=1e-5)
        assert row["attribution_alpha"] == "flip" and row["alpha"] in cfg.alphas  # which counterfactual it explains
    assert on_disk["attribution"][0]["sum"] > 0, "toward healthy removes disease evidence"
    mean = explain_patient(x[0].numpy(), model, agent, bb, cfg.model_copy(update={"attribution_alpha": "mean"}),
                           tmp_path / "mean", patient_id="P0")
    assert mean["attribution"][0]["alpha"] is None
    assert mean["attribution"][0]["sum"] == pytest.approx(mean["attribution"][0]["score_change"], rel=1e-3, abs=1e-4)
    with pytest.raises(ValueError, match="strictly increasing"):
        CounterfactualConfig(**{**_CFG, "alphas": [0.4, 0.2]})
