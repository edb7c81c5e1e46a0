"""Bounded alpha search: doubling, bisection, cap and budget."""

from __future__ import annotations

import numpy as np
import torch

from components.config import CounterfactualConfig
from components.counterfactual.search import AlphaSearch, run_searches
from components.counterfactual.sweep import run_sweep


def _run(fn, **kw):
    s = AlphaSearch(**{"target_confidence": 0.8, "alpha_start": 0.1, "alpha_cap": 1.0, **kw})
    return run_searches([s], lambda idx, a: np.array([fn(v) for v in a]))[0]


def test_stops_at_cap_and_reports_it():
    res = _run(lambda a: 0.55)
    assert res.capped and not res.reached and res.stop_reason == "alpha_cap"
    assert res.alpha == 1.0
    assert [a for a, _ in res.trace] == [0.1, 0.2, 0.4, 0.8, 1.0]


def test_doubling_then_bisection_finds_threshold():
    res = _run(lambda a: 0.9 if a >= 0.37 else 0.6, rel_tol=0.05)
    assert res.reached and not res.capped
    assert 0.37 <= res.alpha <= 0.37 / (1 - 0.05) + 1e-9
    assert res.probability == 0.9
    assert res.n_evals == len(res.trace)


def test_budget_is_respected():
    res = _run(lambda a: 0.5, alpha_start=0.001, max_evals=3)
    assert res.n_evals == 3 and not res.capped and res.stop_reason == "max_evals"


def test_prior_points_bracket_the_search_for_free():
    fn = lambda a: 0.9 if a >= 0.37 else 0.6  # noqa: E731
    cold = _run(fn, rel_tol=0.05)
    warm = _run(fn, rel_tol=0.05, prior=[(a, fn(a)) for a in (0.1, 0.2, 0.3, 0.4)])
    assert warm.reached and warm.alpha == cold.alpha  # same answer ...
    assert warm.n_evals < cold.n_evals  # ... with fewer decodes
    assert all(0.3 < a < 0.4 for a, _ in warm.trace)  # bisects inside the sweep's bracket
    assert len(warm.prior) == 4 and warm.n_evals == len(warm.trace)


def test_prior_misses_resume_doubling_and_prior_hit_within_tolerance_stops():
    res = _run(lambda a: 0.5, prior=[(0.1, 0.5), (0.4, 0.5)])
    assert [a for a, _ in res.trace] == [0.8, 1.0] and res.capped
    res = _run(lambda a: 0.5, prior=[(0.5, 0.5), (1.0, 0.5)])
    assert res.trace == [] and res.capped and res.alpha == 1.0 and res.n_evals == 0
    res = _run(lambda a: 1 / 0, prior=[(0.38, 0.5), (0.4, 0.95)])  # bracket already tight: no call
    assert res.reached and res.alpha == 0.4 and res.probability == 0.95 and res.n_evals == 0


def test_lockstep_searches_are_independent():
    searches = [AlphaSearch(0.8, 0.1, 1.0) for _ in range(2)]
    thresholds = [0.15, 0.9]
    out = run_searches(searches, lambda idx, a: np.array([0.85 if v >= thresholds[i] else 0.5 for i, v in zip(idx, a)]))
    assert out[0].alpha < out[1].alpha and all(r.reached for r in out)


def test_sweep_searches_indeterminate_cases_up_to_cap(standins):
    model, agent, bb, x = standins
    bb.module.w.zero_()  # the teacher ignores the image: p = 0.5 everywhere, never confident
    bb.module.bias = 0.0
    cfg = CounterfactualConfig(alphas=[0.1], ddim_steps=2, batch_size=8, alpha_cap=0.3,
                               search_alpha_start=0.1, random_control=False)
    msgs: list[str] = []
    res = run_sweep(model, agent, bb, x[:2], cfg, progress=msgs.append)
    assert res.indeterminate.all()
    assert msgs[0].startswith("computing DDIM inversions of 2 cases") and msgs[1].startswith("sweep: decoding 2 cases")
    assert [m for m in msgs if m.startswith("alpha search round")] == [
        "alpha search round 1: 4 of 4 searches still running", "alpha search round 2: 4 of 4 searches still running"]
    for case, counts in zip(res.searches, res.nfe):
        assert set(case) == {0, 1}
        for r in case.values():
            # the sweep's alpha 0.1 is the search's free prior point; it doubles on from there
            assert r.prior == [(0.1, r.prior[0][1])] and abs(r.prior[0][1] - 0.5) < 1e-6
            assert r.capped and r.alpha == 0.3 and [a for a, _ in r.trace] == [0.2, 0.3] and r.n_evals == 2
        # invert + recon + sweep (2 directions x 1 alpha) + 2 searches x 2 decodes, 4 slices each
        assert counts.unet == (2 + 2 + 4) * 4 * cfg.ddim_step_count
    assert torch.isfinite(torch.as_tensor(res.counterfactuals)).all()


def test_no_search_when_its_budget_is_zero(standins):
    model, agent, bb, x = standins
    bb.module.w.zero_()  # every case indeterminate, as above
    bb.module.bias = 0.0
    cfg = CounterfactualConfig(alphas=[0.1], ddim_steps=2, batch_size=8, search_max_evals=0, random_control=False)
    res = run_sweep(model, agent, bb, x[:2], cfg)
    assert res.indeterminate.all() and res.searches == [{}, {}]
    assert all(c.unet == (2 + 2) * 4 * cfg.ddim_step_count for c in res.nfe)  # invert + recon + 2 sweep rows only
