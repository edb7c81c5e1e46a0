"""The three criteria on hand-built sweeps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from components.counterfactual.criteria import manipulation_criterion, observable_criterion
from components.counterfactual.sweep import SweepResult


def _p1(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.stack([1 - v, v], axis=-1)


def _sweep(t_orig, t_recon, t_cf, t_rand, a_q, a_cf, indeterminate, n=1, a=3, size=4) -> SweepResult:
    img = np.zeros((n, 4, size, size), np.float32)
    cf = np.zeros((n, 2, a, 4, size, size), np.float32)
    return SweepResult(
        alphas=np.array([0.1, 0.2, 0.3][:a]), original=img, recon=img, q=np.zeros((n, 8)),
        counterfactuals=cf, teacher_original=t_orig, teacher_recon=t_recon, teacher_cf=t_cf,
        agent_q=a_q, agent_cf=a_cf, random_cf=cf.copy(), teacher_random=t_rand, agent_random=a_cf,
        indeterminate=np.asarray(indeterminate), searches=[{} for _ in range(n)], nfe=[],
    )


def test_flip_counted_against_reconstruction_not_original():
    # original says class 1 (0.7), the reconstruction says class 0 (0.45): the toward-1 edit
    # that reaches 0.6 is a flip; it would not be one against the original's decision.
    t_cf = np.stack([_p1([0.40, 0.35, 0.30]), _p1([0.48, 0.55, 0.60])])[None]
    t_rand = np.stack([_p1([0.45, 0.46, 0.44]), _p1([0.44, 0.45, 0.46])])[None]
    a_cf = np.stack([_p1([0.3, 0.2, 0.1]), _p1([0.7, 0.8, 0.9])])[None]
    s = _sweep(_p1([0.7]), _p1([0.45]), t_cf, t_rand, _p1([0.5]), a_cf, [True])
    m = manipulation_criterion(s)
    assert m["flip_rate"] == 1.0 and m["random_control_flip_rate"] == 0.0
    assert m["direction_agreement"] == 1.0
    assert m["monotonicity_spearman"] == pytest.approx(1.0)
    assert m["n_indeterminate"] == 1


def test_disagreement_non_monotone_and_no_indeterminate():
    t_cf = np.stack([_p1([0.2, 0.1, 0.15]), _p1([0.1, 0.25, 0.18])])[None]  # toward 1 first falls
    a_cf = np.stack([_p1([0.1, 0.05, 0.01]), _p1([0.9, 0.95, 0.99])])[None]
    s = _sweep(_p1([0.2]), _p1([0.2]), t_cf, t_cf, _p1([0.5]), a_cf, [False])
    m = manipulation_criterion(s)
    assert m["flip_rate"] is None  # undefined without indeterminate cases, not 0
    assert m["flip_rate_all_cases"] == 0.0
    # direction 0 (class-0 score 0.8 -> 0.8, 0.9, 0.85): agree at alphas 2, 3 (alpha 1 no move)
    # direction 1 (class-1 score 0.2 -> 0.1, 0.25, 0.18): agree at alpha 2 only
    assert m["direction_agreement"] == pytest.approx(3 / 6)


def test_observable_inside_vs_outside_lungs():
    s = _sweep(_p1([0.5]), _p1([0.5]), np.zeros((1, 2, 3, 2)), None, _p1([0.5]), np.zeros((1, 2, 3, 2)), [True])
    s.random_cf = None
    lungs = np.zeros((1, 4, 4, 4), np.uint8)
    lungs[0, :, :2, :] = 1  # half of every slice
    s.counterfactuals[0, :, :, :, 0, 0] = 0.5  # one lung pixel per slice changes
    s.counterfactuals[0, :, :, :, 3, 3] = 0.01  # one outside pixel changes below threshold
    obs = observable_criterion(s, lungs, change_threshold=0.05)
    assert obs["changed_fraction_inside"] == pytest.approx(1 / 8)
    assert obs["changed_fraction_outside"] == 0.0
    assert obs["mean_abs_change_inside"] == pytest.approx(0.5 / 8)
    assert obs["mean_abs_change_outside"] == pytest.approx(0.01 / 8)
    per_alpha = obs["per_alpha"]
    assert isinstance(per_alpha, dict) and per_alpha["changed_fraction_inside"] == pytest.approx([1 / 8] * 3)


def test_reconstruction_criterion_uses_the_shared_metrics() -> None:
    from types import SimpleNamespace

    from components.counterfactual.criteria import reconstruction_criterion
    from components.metrics.classification import prob_kl
    from components.metrics.image_quality import image_quality

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 4, 16, 16)).astype(np.float32)
    r = np.clip(x + rng.normal(0, 0.05, x.shape), -1, 1).astype(np.float32)
    t_o, t_r = np.array([[0.4, 0.6], [0.2, 0.8]]), np.array([[0.9, 0.1], [0.2, 0.8]])
    sweep = SimpleNamespace(original=x, recon=r, teacher_original=t_o, teacher_recon=t_r)
    crit = reconstruction_criterion(sweep)  # type: ignore[arg-type]
    assert (crit["psnr"], crit["ssim"]) == image_quality(x, r)
    golden = (0.4 * np.log(0.4 / 0.9) + 0.6 * np.log(0.6 / 0.1)) / 2  # second case: KL 0
    assert crit["teacher_kl"] == pytest.approx(golden) == prob_kl(t_o, t_r)
    assert crit["decision_kept"] == 0.5 and crit["n_patients"] == 2
    assert crit["teacher_score_change"] == pytest.approx(0.25)
