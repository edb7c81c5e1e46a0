"""Promotion gates: bootstrap bounds with known answers and the evidence gates decide on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from components.config import GateConfig
from components.gates import (
    GATE_NAMES,
    GateEvidence,
    GateResult,
    MetricEvidence,
    agent_evidence,
    counterfactual_evidence,
    finalize_gate,
    gates_section,
    reconstruction_evidence,
)
from components.stats.bootstrap import (
    BootstrapSettings,
    Bound,
    independent_difference_bound,
    mean_bound,
    mean_interval,
    paired_difference_bound,
)


def _lower(b: Bound | MetricEvidence) -> float:
    """The lower bound, which every case here has (``float | None`` in general)."""
    assert b.lower is not None
    return b.lower


def _vs_champion(ev: GateEvidence) -> dict[str, Any]:
    """The metrics compared with the champion (present: every case here has a champion)."""
    return _champion_block(ev)["metrics"]


def _champion_block(ev: GateEvidence) -> dict[str, Any]:
    """The whole champion record (present: every case here has a champion)."""
    assert ev.champion is not None
    return ev.champion


@pytest.mark.parametrize(("k", "n"), [(60, 200), (150, 200), (25, 120)])
def test_proportion_bound_matches_binomial_interval(k: int, n: int) -> None:
    x = np.zeros(n)
    x[:k] = 1.0
    b = mean_bound(x, BootstrapSettings(seed=1))
    # a one-sided 95 % bound = the lower end of a two-sided 90 % interval
    exact = binomtest(k, n).proportion_ci(0.90, method="exact").low
    wilson = binomtest(k, n).proportion_ci(0.90, method="wilson").low
    assert b.point == pytest.approx(k / n)
    assert b.lower == pytest.approx(exact, abs=0.012) and b.lower == pytest.approx(wilson, abs=0.012)
    assert _lower(b) < b.point and not b.degenerate


def test_bound_is_seeded_and_upper_side_for_lower_is_better() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, 80)
    a, b = mean_bound(x, BootstrapSettings(seed=3)), mean_bound(x, BootstrapSettings(seed=3))
    assert a == b
    up = mean_bound(x, BootstrapSettings(seed=3), greater_is_better=False)
    assert up.upper is not None and up.lower is None and up.upper > x.mean() > a.lower


def test_two_sided_interval_matches_the_binomial_interval_and_handles_pairs_and_constants() -> None:
    x = np.zeros(120)
    x[:40] = 1.0
    point, low, high = mean_interval(x, BootstrapSettings(seed=2))
    exact = binomtest(40, 120).proportion_ci(0.95, method="wilson")
    assert point == pytest.approx(1 / 3)
    assert low == pytest.approx(exact.low, abs=0.015) and high == pytest.approx(exact.high, abs=0.015)
    assert mean_interval(np.full(30, 0.7)) == pytest.approx((0.7, 0.7, 0.7))
    p, lo, hi = mean_interval(x + 5.0, paired_with=x + 4.0)  # the paired difference is the constant 1
    assert (p, lo, hi) == pytest.approx((1.0, 1.0, 1.0))
    assert np.isnan(mean_interval(np.array([1.0]))[1])


def test_degenerate_sample_bound_equals_point_and_is_flagged() -> None:
    b = mean_bound(np.ones(120))
    assert b.point == 1.0 and b.lower == 1.0 and b.degenerate


def test_paired_difference_cancels_case_difficulty() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.normal(40.0, 5.0, 60)  # large spread between cases
    champion = difficulty
    challenger = difficulty - 0.3 + rng.normal(0.0, 0.05, 60)
    b = paired_difference_bound(lambda v: float(np.mean(v)), [challenger], [champion])
    assert b.point == pytest.approx(-0.3, abs=0.02)
    assert -0.35 < _lower(b) < -0.3  # narrow: the 5 dB spread between cases cancels


def test_independent_difference_bound_covers_the_true_difference_of_two_samples() -> None:
    """Two different sets of cases: the bound is on mean(a) - mean(b) and as wide as both samples'
    spreads together; under the true difference in about 95 % of draws; nan below 2 cases."""
    s = BootstrapSettings(n_resamples=400)
    below = []
    for k in range(40):
        rng = np.random.default_rng(100 + k)
        a, b = rng.normal(0.5, 0.5, 25), rng.normal(0.6, 0.5, 18)
        bound = independent_difference_bound(a, b, s)
        assert bound.point == pytest.approx(a.mean() - b.mean()) and bound.n == 25
        # the paired bound cannot even be formed (different lengths); the SE is that of two samples
        se = np.sqrt(a.var(ddof=1) / 25 + b.var(ddof=1) / 18)
        assert 1.2 * se < bound.point - _lower(bound) < 2.2 * se
        below.append(_lower(bound) <= -0.1)
    assert sum(below) >= 34  # ~95 % coverage of the true difference -0.1 (binomial slack)
    lone = independent_difference_bound(np.ones(5), np.ones(1), s)
    assert lone.point == 0.0 and np.isnan(lone.bound)


def _recon_cases(psnr: np.ndarray) -> dict[str, np.ndarray]:
    n = len(psnr)
    return {"psnr": psnr, "ssim": np.full(n, 0.99), "decision_kept": np.ones(n), "teacher_kl": np.full(n, 0.01)}


def test_reconstruction_bound_below_floor_although_point_above() -> None:
    rng = np.random.default_rng(0)
    psnr = 35.5 + rng.normal(0.0, 3.0, 40)
    psnr += 35.5 - psnr.mean()
    ev = reconstruction_evidence(_recon_cases(psnr), GateConfig())
    m = ev.metrics["psnr"]
    assert m.point is not None and m.point == pytest.approx(35.5) and m.point >= m.threshold == 35.0
    assert _lower(m) < 35.0
    values, floors = ev.validation_inputs()
    assert values["psnr_lower"] == m.lower and floors["psnr_lower"] == 35.0
    assert ev.reported["teacher_kl"]["upper"] >= 0.01 and ev.champion is None


def test_finalize_gate_names_the_failing_metric_with_point_bound_and_floor() -> None:
    rng = np.random.default_rng(0)
    psnr = 35.5 + rng.normal(0.0, 3.0, 40)
    ev = reconstruction_evidence(_recon_cases(psnr), GateConfig())
    res = finalize_gate(ev, {"psnr_lower": False, "ssim_lower": True, "decision_kept_lower": True})
    assert not res.passed and res.failing == ["psnr_lower"]
    assert "psnr: point" in res.message and "< 35" in res.message
    assert GateResult.from_dict(res.to_dict()) == res
    # a verdict MLflow did not give counts as failed
    assert not finalize_gate(ev, {"psnr_lower": True, "ssim_lower": True}).passed


def test_agent_evidence_uses_the_fixed_threshold_and_counts_positives() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.25).astype(int)
    score = np.clip(0.35 * y + rng.normal(0.3, 0.1, 200), 0, 1)
    at_half = agent_evidence(y, score, 0.5, None, GateConfig())
    at_fit = agent_evidence(y, score, 0.48, None, GateConfig())
    assert at_half.teacher_positives == int(y.sum()) and at_half.n == 200
    assert at_half.metrics["auc"].point == at_fit.metrics["auc"].point  # AUC is threshold-free
    assert at_half.metrics["f1"].point != at_fit.metrics["f1"].point
    assert at_fit.context["agent_threshold"] == 0.48
    auc = at_half.metrics["auc"]
    assert auc.point is not None and _lower(auc) < auc.point


def test_agent_noninferiority_refuses_worse_and_accepts_equal() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(int)
    good = np.clip(0.5 * y + rng.normal(0.25, 0.12, 200), 0, 1)
    bad = np.where(rng.random(200) < 0.25, 1 - good, good)  # a quarter of the cases scrambled
    champion = {"teacher_decision": y, "agent_score": good, "agent_threshold": 0.5}
    equal = agent_evidence(y, good, 0.5, None, GateConfig(), champion=champion, champion_version="3")
    worse = agent_evidence(y, bad, 0.5, None, GateConfig(), champion=champion, champion_version="3")
    eq = _vs_champion(equal)
    assert eq["auc"]["point"] == 0.0 and eq["auc"]["lower"] >= eq["auc"]["threshold"] == -0.02
    assert eq["f1"]["lower"] >= -0.05
    w = _vs_champion(worse)
    assert w["auc"]["lower"] < -0.02 and w["f1"]["lower"] < -0.05
    values, floors = worse.validation_inputs()
    assert values["auc_vs_champion_lower"] == w["auc"]["lower"] and floors["auc_vs_champion_lower"] == -0.02


def test_agent_noninferiority_margins_depend_on_whether_the_black_box_changed() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(200) < 0.3).astype(int)
    good = np.clip(0.5 * y + rng.normal(0.25, 0.12, 200), 0, 1)
    champion = {"teacher_decision": y, "agent_score": good, "agent_threshold": 0.5}
    cfg = GateConfig(noninferiority_delta_changed_blackbox={"auc": 0.04, "f1": 0.19})
    # a slightly noisier challenger: refused against its own black box's champion, within the wider
    # margins when the black box changed (the same paired bounds, other thresholds)
    worse = good + np.random.default_rng(10).normal(0, 0.07, 200)
    blocks = {same: _champion_block(agent_evidence(y, worse, 0.5, None, cfg, champion=champion, champion_version="3",
                                                   same_blackbox=same))
              for same in (True, False, None)}
    assert blocks[True]["blackbox"] == "same" and blocks[False]["blackbox"] == "changed"
    assert blocks[None]["blackbox"] == "not known"
    assert blocks[True]["metrics"]["auc"]["threshold"] == blocks[None]["metrics"]["auc"]["threshold"] == -0.02
    assert blocks[False]["metrics"]["auc"]["threshold"] == -0.04 and blocks[False]["metrics"]["f1"]["threshold"] == -0.19
    assert blocks[True]["metrics"]["f1"]["lower"] == blocks[False]["metrics"]["f1"]["lower"]
    assert -0.19 < blocks[True]["metrics"]["f1"]["lower"] < -0.05  # between the two margins: the regime decides

    def cleared(block: dict[str, Any]) -> bool:
        return all(v["lower"] >= v["threshold"] for v in block["metrics"].values())

    assert not cleared(blocks[True]) and not cleared(blocks[None]) and cleared(blocks[False])
    # a metric the changed-black-box margins leave out keeps its base margin; unknown metrics refused
    assert GateConfig(noninferiority_delta_changed_blackbox={"auc": 0.04}).margins(False)["f1"] == 0.05
    assert GateConfig(noninferiority_delta={"auc": 0.02}, noninferiority_delta_changed_blackbox={"f1": 0.2}
                      ).margins(False) == {"auc": 0.02}  # never adds a comparison the base margins leave out
    with pytest.raises(ValueError, match="unknown metric"):
        GateConfig(noninferiority_delta_changed_blackbox={"aucc": 0.04})


def test_agent_noninferiority_only_on_the_cases_the_champion_scored() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.3).astype(int)
    good = np.clip(0.5 * y + rng.normal(0.25, 0.12, 300), 0, 1)
    scored = np.arange(300) % 3 != 1  # 200 cases the champion scored, interleaved with 100 it did not
    champion = {"teacher_decision": y[scored], "agent_score": good[scored], "agent_threshold": 0.5}
    ev = agent_evidence(y, good, 0.5, None, GateConfig(), champion=champion, champion_version="3",
                        champion_cases=scored)
    assert ev.n == 300 and ev.teacher_positives == int(y.sum())  # the floors see every case
    assert _vs_champion(ev)["auc"]["n"] == 200 and _vs_champion(ev)["auc"]["point"] == 0.0
    bad = good.copy()
    bad[scored] = np.where(rng.random(200) < 0.3, 1 - good[scored], good[scored])
    worse = agent_evidence(y, bad, 0.5, None, GateConfig(), champion=champion, champion_version="3",
                           champion_cases=scored)
    assert _vs_champion(worse)["auc"]["lower"] < -0.02
    with pytest.raises(ValueError):  # without the mask the arrays are not paired
        agent_evidence(y, good, 0.5, None, GateConfig(), champion=champion, champion_version="3")


def test_counterfactual_flip_gain_is_paired() -> None:
    flips = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0, 1] * 3, float)
    random = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0] * 3, float)
    ev = counterfactual_evidence(np.ones(30), flips, random, GateConfig())
    assert ev.metrics["flip_gain"].point == pytest.approx(0.7)
    assert 0.15 < _lower(ev.metrics["flip_gain"]) < 0.7
    assert ev.metrics["direction_agreement"].lower == 1.0
    off = counterfactual_evidence(np.ones(30), flips, None, GateConfig())
    assert off.metrics["flip_gain"].lower is None
    assert not finalize_gate(off, {"direction_agreement_lower": True, "flip_gain_lower": True}).passed


def test_gates_section_lists_every_gate() -> None:
    ev = counterfactual_evidence(np.ones(5), np.ones(5), np.zeros(5), GateConfig(n_resamples=200))
    res = finalize_gate(ev, {"direction_agreement_lower": True, "flip_gain_lower": True})
    sec = gates_section([res.to_dict()])
    assert set(sec) == set(GATE_NAMES) and sec["agent"] is None
    assert sec["counterfactual"]["passed"] is True
    assert set(sec["counterfactual"]["metrics"]["flip_gain"]) >= {"point", "lower", "threshold"}


def test_noninferiority_config_rejects_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        GateConfig(noninferiority_delta={"psnrr": 0.5})


def test_semantic_psnr_is_gated_only_with_a_floor_and_fails_an_absorbed_code() -> None:
    rng = np.random.default_rng(3)
    cases = _recon_cases(42.0 + rng.normal(0.0, 1.0, 60))
    cases["semantic_psnr"] = 13.0 + rng.normal(0.0, 2.0, 30)  # z carries little: inversion did the work
    reported = reconstruction_evidence(cases, GateConfig())
    assert "semantic_psnr" not in reported.metrics and reported.reported["semantic_psnr"]["n"] == 30
    gated = reconstruction_evidence(cases, GateConfig(semantic_psnr_min=18.0))
    m = gated.metrics["semantic_psnr"]
    assert m.n == 30 and _lower(m) < 18.0 and m.threshold == 18.0
    assert _lower(gated.metrics["psnr"]) > 35.0
    values, floors = gated.validation_inputs()
    assert values["semantic_psnr_lower"] == m.lower and floors["semantic_psnr_lower"] == 18.0


def test_agent_f1_on_per_case_decisions() -> None:
    """Cases decided by different agents at their own thresholds: F1 on the given decisions, AUC on the scores."""
    rng = np.random.default_rng(4)
    y = (rng.random(200) < 0.3).astype(int)
    score = np.clip(0.4 * y + rng.normal(0.3, 0.12, 200), 0, 1)
    own_threshold = np.where(np.arange(200) < 100, 0.5, 0.35)  # two agents, two thresholds
    decision = (score >= own_threshold).astype(int)
    ev = agent_evidence(y, score, 0.5, None, GateConfig(), agent_decision=decision)
    single = agent_evidence(y, score, 0.5, None, GateConfig())
    tp = int((decision & y).sum())
    assert ev.metrics["f1"].point == pytest.approx(2 * tp / (decision.sum() + y.sum()))
    assert ev.metrics["f1"].point != single.metrics["f1"].point
    assert ev.metrics["auc"].point == single.metrics["auc"].point
    with pytest.raises(ValueError):
        agent_evidence(y, score, 0.5, None, GateConfig(), agent_decision=decision[:10])
    first = np.arange(200) < 100
    split = agent_evidence(y, score, 0.5, None, GateConfig(), agent_decision=decision, disjoint_cases=first)
    alone = agent_evidence(y[first], score[first], 0.5, None, GateConfig())
    assert split.reported["f1_disjoint"]["point"] == alone.metrics["f1"].point
    assert split.reported["auc_disjoint"]["lower"] == alone.metrics["auc"].lower and split.reported["f1_disjoint"]["n"] == 100
    assert split.metrics["f1"].point == ev.metrics["f1"].point  # reported, not gated: the decision is unchanged
    assert "f1_disjoint" not in ev.reported


def _cf_cases(rng: np.random.Generator, n: int = 30, flip_p: float = 0.8) -> dict[str, np.ndarray]:
    """A sweep's per-case evidence: agreement over n cases, flips on the indeterminate ones."""
    cases = np.flatnonzero(rng.random(n) < 0.7)
    return {"direction_agreement": np.clip(rng.normal(0.97, 0.05, n), 0, 1),
            "flips": (rng.random(cases.size) < flip_p).astype(float),
            "random_flips": (rng.random(cases.size) < 0.1).astype(float), "flip_cases": cases}


def test_counterfactual_noninferiority_refuses_worse_and_accepts_equal() -> None:
    rng = np.random.default_rng(4)
    champ = _cf_cases(rng)
    equal = counterfactual_evidence(champ["direction_agreement"], champ["flips"], champ["random_flips"], GateConfig(),
                                    champion_version="2", flip_cases=champ["flip_cases"], champion=champ)
    eq = _vs_champion(equal)
    assert _champion_block(equal)["version"] == "2" and _champion_block(equal)["compared"] is True
    assert eq["flip_gain"]["point"] == 0.0 and eq["flip_gain"]["lower"] == 0.0 >= eq["flip_gain"]["threshold"]
    assert eq["direction_agreement"]["lower"] == 0.0 and eq["flip_gain"]["n"] == champ["flip_cases"].size
    # the challenger's direction is no better than chance where the champion's flips the decision
    worse = {**champ, "flips": champ["random_flips"].copy(), "direction_agreement": champ["direction_agreement"] - 0.3}
    ev = counterfactual_evidence(worse["direction_agreement"], worse["flips"], worse["random_flips"], GateConfig(),
                                 champion_version="2", flip_cases=worse["flip_cases"], champion=champ)
    values, floors = ev.validation_inputs()
    bounds = {k: -9.0 if v is None else v for k, v in values.items()}
    assert bounds["flip_gain_vs_champion_lower"] < floors["flip_gain_vs_champion_lower"] == -0.40
    assert bounds["direction_agreement_vs_champion_lower"] < -0.05
    verdicts = {k: bounds[k] >= f for k, f in floors.items()}
    assert {"direction_agreement_vs_champion_lower", "flip_gain_vs_champion_lower"} <= \
        set(finalize_gate(ev, verdicts).failing)


def test_counterfactual_flip_gain_pairs_only_cases_indeterminate_for_both() -> None:
    rng = np.random.default_rng(5)
    mine = _cf_cases(rng)
    champ = {**mine, "flip_cases": mine["flip_cases"][::2], "flips": np.ones(mine["flip_cases"][::2].size),
             "random_flips": np.zeros(mine["flip_cases"][::2].size)}
    ev = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], GateConfig(),
                                 champion_version="1", flip_cases=mine["flip_cases"], champion=champ)
    m = _vs_champion(ev)["flip_gain"]
    common = mine["flip_cases"][::2]
    assert m["n"] == common.size == _champion_block(ev)["n_flip_cases_compared"]
    gain = (mine["flips"] - mine["random_flips"])[::2]
    assert m["point"] == pytest.approx(gain.mean() - 1.0)
    # one case indeterminate for both: not compared (recorded), and not a failing validation input
    lone = {**champ, "flip_cases": mine["flip_cases"][:1], "flips": np.ones(1), "random_flips": np.zeros(1)}
    ev1 = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], GateConfig(),
                                  champion_version="1", flip_cases=mine["flip_cases"], champion=lone)
    assert "flip_gain" not in _vs_champion(ev1)
    assert "1 case(s)" in _champion_block(ev1)["not_compared"]["flip_gain"]
    assert "flip_gain_vs_champion_lower" not in ev1.validation_inputs()[1]
    with pytest.raises(ValueError, match="covers"):
        counterfactual_evidence(np.ones(5), np.ones(2), np.zeros(2), GateConfig(), champion_version="1",
                                flip_cases=np.arange(2), champion=mine)


def test_counterfactual_changed_blackbox_compares_each_side_on_its_own_indeterminate_cases() -> None:
    """A retrained black box calls other cases indeterminate: with few in common, the flip gain is
    still compared, each side over its own cases (independent resampling), at the changed margins."""
    rng = np.random.default_rng(7)
    mine = _cf_cases(rng, n=40)
    # the champion's indeterminate cases overlap the challenger's in one case only
    other = np.setdiff1d(np.arange(40), mine["flip_cases"])[:10]
    theirs = np.sort(np.concatenate([mine["flip_cases"][:1], other]))
    champ = {**mine, "flip_cases": theirs, "flips": (rng.random(theirs.size) < 0.8).astype(float),
             "random_flips": np.zeros(theirs.size)}
    cfg = GateConfig(noninferiority_delta_changed_blackbox={"flip_gain": 0.3, "direction_agreement": 0.1})
    paired = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], cfg,
                                     champion_version="1", flip_cases=mine["flip_cases"], champion=champ)
    assert "1 case(s)" in _champion_block(paired)["not_compared"]["flip_gain"]  # same black box: pairs only
    ev = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], cfg,
                                 champion_version="1", flip_cases=mine["flip_cases"], champion=champ,
                                 same_blackbox=False)
    block = _champion_block(ev)
    m = _vs_champion(ev)["flip_gain"]
    gain = mine["flips"] - mine["random_flips"]
    assert block["blackbox"] == "changed" and block["flip_gain_pairing"].startswith("independent")
    assert m["n"] == gain.size and m["n_champion"] == theirs.size and block["n_flip_cases_common"] == 1
    assert m["point"] == pytest.approx(gain.mean() - champ["flips"].mean())
    assert m["lower"] < m["point"] and m["threshold"] == -0.3
    assert _vs_champion(ev)["direction_agreement"]["threshold"] == -0.1
    # unpaired is wider than paired on the same values: compare one sample against itself both ways
    same = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], cfg,
                                   champion_version="1", flip_cases=mine["flip_cases"], champion=mine)
    indep = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], cfg,
                                    champion_version="1", flip_cases=mine["flip_cases"], champion=mine,
                                    same_blackbox=False)
    assert _vs_champion(same)["flip_gain"]["lower"] == 0.0 > _vs_champion(indep)["flip_gain"]["lower"]
    # a challenger whose direction flips no more than the random one is refused at the changed margin
    chance = counterfactual_evidence(mine["direction_agreement"], mine["random_flips"], mine["random_flips"], cfg,
                                     champion_version="1", flip_cases=mine["flip_cases"], champion=mine,
                                     same_blackbox=False)
    values, floors = chance.validation_inputs()
    chance_lower = values["flip_gain_vs_champion_lower"]
    assert chance_lower is not None and chance_lower < floors["flip_gain_vs_champion_lower"] == -0.3
    # too few indeterminate cases on one side: not compared, reason recorded, not a failing input
    lone = {**champ, "flip_cases": theirs[:1], "flips": np.ones(1), "random_flips": np.zeros(1)}
    ev1 = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], cfg,
                                  champion_version="1", flip_cases=mine["flip_cases"], champion=lone,
                                  same_blackbox=False)
    assert "need >= 2 each" in _champion_block(ev1)["not_compared"]["flip_gain"]
    assert "flip_gain_vs_champion_lower" not in ev1.validation_inputs()[1]
    res1 = finalize_gate(ev1, dict.fromkeys(ev1.validation_inputs()[1], True))
    assert res1.passed and "not compared with the champion: flip_gain (30 / 1 case(s)" in res1.message  # named
    # the flip-gain record says when one side is constant (it then adds no spread to the bound)
    assert m["constant_sample"] == {"challenger": False, "champion": False}
    # without a calibrated changed-black-box flip-gain margin the paired rule stays (as the paper preset)
    uncal = counterfactual_evidence(mine["direction_agreement"], mine["flips"], mine["random_flips"], GateConfig(),
                                    champion_version="1", flip_cases=mine["flip_cases"], champion=champ,
                                    same_blackbox=False)
    assert "1 case(s)" in _champion_block(uncal)["not_compared"]["flip_gain"]


def test_reconstruction_champion_compares_semantic_psnr_on_the_same_patients() -> None:
    rng = np.random.default_rng(6)
    cases = _recon_cases(42.0 + rng.normal(0.0, 1.0, 60))
    cases["semantic_psnr"] = 24.0 + rng.normal(0.0, 2.0, 30)
    champ = {**cases, "semantic_psnr": cases["semantic_psnr"] + 3.0}  # the champion's z carries more
    ev = reconstruction_evidence(cases, GateConfig(semantic_psnr_min=18.0), champion_per_case=champ,
                                 champion_version="4")
    m = _vs_champion(ev)["semantic_psnr"]
    assert m["n"] == 30 and m["point"] == pytest.approx(-3.0) and m["lower"] < m["threshold"] == -1.0
    assert _vs_champion(ev)["psnr"]["point"] == 0.0
    without = reconstruction_evidence(cases, GateConfig(semantic_psnr_min=18.0), champion_per_case={
        k: v for k, v in champ.items() if k != "semantic_psnr"})
    assert "semantic_psnr" not in _vs_champion(without)
    ungated = reconstruction_evidence(cases, GateConfig(), champion_per_case=champ)  # reported, not gated
    assert "semantic_psnr" not in _vs_champion(ungated)
