"""Energy-distance two-sample test: statistic against SciPy, calibration under the null, power, slices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import energy_distance

from components.drift.energy import energy_statistic, energy_test
from components.drift.latent import latent_drift, standardise


def test_statistic_equals_scipy_energy_distance_squared_in_1d() -> None:
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=37), rng.normal(0.4, 1.3, size=52)
    # scipy returns sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|) for 1-D samples
    assert energy_statistic(u, v) == pytest.approx(energy_distance(u, v) ** 2, rel=1e-10)
    assert energy_statistic(u, u) == pytest.approx(0.0, abs=1e-12)


def test_null_false_alarm_rate_and_shift_power() -> None:
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(120, 16))
    alarms = 0
    for split in range(20):
        perm = np.random.default_rng(split).permutation(len(pool))
        res = energy_test(pool[perm[:80]], pool[perm[80:]], n_permutations=199, seed=split)
        assert 0 < res.p_value <= 1
        alarms += res.p_value < 0.05
    assert alarms <= 3  # 20 splits at level 0.05: 1 expected
    shifted = energy_test(pool[:80], rng.normal(0.5, 1.0, size=(40, 16)), n_permutations=199, seed=0)
    assert shifted.p_value == pytest.approx(1 / 200)  # the floor: no permutation reaches it
    assert (shifted.n_reference, shifted.n_current, shifted.n_permutations) == (80, 40, 199)


def test_seeded_and_validated() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 4)), rng.normal(0.2, 1, size=(25, 4))
    a, b = energy_test(x, y, n_permutations=99, seed=3), energy_test(x, y, n_permutations=99, seed=3)
    assert a == b
    with pytest.raises(ValueError, match="features"):
        energy_test(x, y[:, :3])
    with pytest.raises(ValueError, match="non-finite"):
        energy_test(x, np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="N >= 2"):
        energy_test(x, y[:1])


def test_latent_drift_locates_the_shifted_slice_level() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(100, 4 * 8))
    cur = rng.normal(size=(60, 4 * 8))
    cur[:, 16:24] += 0.8  # slice position 2 only
    before = cur.copy()
    rep = latent_drift(ref, cur, alpha=0.01, n_permutations=199)
    np.testing.assert_array_equal(cur, before)
    assert rep.drift and rep.p_value < 0.01
    assert [s["slice"] for s in rep.per_slice] == [0, 1, 2, 3]
    p = [s["p_value"] for s in rep.per_slice]
    assert p[2] < 0.01 and min(p[0], p[1], p[3]) > 0.05
    assert rep.per_slice[2]["statistic"] > 3 * max(rep.per_slice[k]["statistic"] for k in (0, 1, 3))
    same = latent_drift(ref[:50], ref[50:], alpha=0.01, n_permutations=199)
    assert not same.drift and same.to_dict()["n_current"] == 50
    with pytest.raises(ValueError, match="slice levels"):
        latent_drift(ref[:, :30], cur[:, :30])
    with pytest.raises(ValueError, match="alpha"):
        latent_drift(ref, cur, alpha=1.5)


def test_standardise_uses_the_reference_only() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(3, 2, size=(200, 5)), rng.normal(10, 5, size=(50, 5))
    r, c = standardise(ref, cur)
    np.testing.assert_allclose(r.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(r.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(c, (cur - ref.mean(0)) / (ref.std(0) + 1e-6))
