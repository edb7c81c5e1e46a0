"""Difference heatmaps: red = added, blue = removed, symmetric scale."""

from __future__ import annotations

import numpy as np

from components.counterfactual.heatmap import difference, difference_rgba, symmetric_limit


def test_sign_convention_red_is_added():
    recon = np.zeros((2, 2), np.float32)
    cf = np.array([[0.5, -0.5], [0.0, 0.25]], np.float32)
    diff = difference(cf, recon)
    rgba = difference_rgba(diff)
    r, g, b, a = np.moveaxis(rgba, -1, 0)
    assert r[0, 0] > 0.9 and b[0, 0] < 0.1  # added -> red
    assert b[0, 1] > 0.9 and r[0, 1] < 0.1  # removed -> blue
    assert a[1, 0] == 0.0  # unchanged -> transparent
    assert a[0, 0] == a[0, 1] == 1.0 and np.isclose(a[1, 1], 0.5)


def test_scale_is_symmetric():
    diff = np.array([[0.1, -0.4]], np.float32)
    vmax = symmetric_limit(diff)
    assert vmax == np.float32(0.4)
    pos, neg = difference_rgba(np.array([[0.3]]), vmax), difference_rgba(np.array([[-0.3]]), vmax)
    np.testing.assert_allclose(pos[0, 0, 0], neg[0, 0, 2], atol=1e-2)  # mirror colours
    np.testing.assert_allclose(pos[0, 0, 3], neg[0, 0, 3])
