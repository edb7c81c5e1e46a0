"""Cohort evaluation end to end on the stand-ins."""

from __future__ import annotations

import numpy as np
from cf_standins import lesion_map, lung_map

from components.config import CounterfactualConfig
from components.counterfactual.evaluate import evaluate_cohort, select_cases


def test_select_cases_borderline_first_random():
    probs = np.array([[0.9, 0.1], [0.45, 0.55], [0.2, 0.8], [0.51, 0.49]])
    assert select_cases(probs, CounterfactualConfig(max_cases=2)).tolist() == [1, 3]
    assert select_cases(probs, CounterfactualConfig(max_cases=2, case_selection="first")).tolist() == [0, 1]
    assert len(select_cases(probs, CounterfactualConfig(max_cases=3, case_selection="random"))) == 3


def test_evaluate_cohort_with_aligned_standins(standins):
    model, agent, bb, x = standins
    n = x.shape[0]
    cfg = CounterfactualConfig(alphas=[0.1, 0.2, 0.4], ddim_steps=2, batch_size=16, max_cases=5,
                               ig_steps=4, occlusion_window=4, occlusion_stride=4)
    lungs = lung_map()[None].repeat(n, 1, 1, 1).numpy()
    masks = lesion_map()[None].repeat(n, 1, 1, 1).numpy()
    ev = evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg, masks=masks)
    m = ev.metrics
    assert len(ev.case_index) == 5
    cf = m["counterfactual"]
    assert cf["n_cases"] == 5 and cf["n_indeterminate"] >= 1
    assert cf["direction_agreement"] == 1.0
    assert cf["monotonicity_spearman"] == 1.0
    assert cf["flip_rate"] == 1.0
    assert cf["random_control_flip_rate"] is not None
    assert cf["nfe_per_patient"] >= 4 + (2 * 4 + 4 * 3 * 4) * cfg.ddim_step_count
    assert m["reconstruction"]["decision_kept"] == 1.0 and m["reconstruction"]["ssim"] > 0.999
    loc = m["localization"]
    assert {"diffexplainer", "random_direction", "gradcam", "gradcampp", "saliency",
            "integrated_gradients", "occlusion"} <= set(loc)
    assert loc["saliency"]["auroc"] == 1.0  # the stand-in teacher's gradient is the lesion map
    assert all(ev.maps[k].shape == (5, 4, 16, 16) for k in ev.maps)
    assert m["observable"]["changed_fraction_inside"] is not None
    # without masks there is no localisation section
    ev2 = evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg.model_copy(update={"max_cases": 2}))
    assert ev2.metrics["localization"] is None


def test_evaluate_cohort_runs_the_code_swap_test_on_cached_inversions(standins):
    model, agent, bb, x = standins
    n = x.shape[0]
    cfg = CounterfactualConfig(alphas=[0.2], ddim_steps=2, batch_size=16, max_cases=2, code_swap_cases=5,
                               code_swap_steps=2, random_control=False)
    lungs = lung_map()[None].repeat(n, 1, 1, 1).numpy()
    recon, x_t, q = (t.detach().numpy() for t in model.reconstruct_stack(x, cfg.ddim_step_count))
    swap = evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg, inversions=(recon, x_t, q)).metrics["counterfactual"]["code_swap"]
    assert swap["n"] == 10  # 5 patients x 2 derangements (the regression itself: tests/components/metrics)
    assert set(swap) == {"coef_z", "coef_x_T", "intercept", "z_share", "sign_follows_z", "n"}
    assert all(np.isfinite(v) for v in swap.values())
    # no cached inversions (or code_swap_cases = 0): no test
    assert "code_swap" not in evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg).metrics["counterfactual"]
    off = cfg.model_copy(update={"code_swap_cases": 0})
    assert "code_swap" not in evaluate_cohort(model, agent, bb, x.numpy(), lungs, off, inversions=(recon, x_t, q)).metrics["counterfactual"]
