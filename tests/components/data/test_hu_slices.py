"""HU sanity check / intercept policy, lung extent, level selection, window and area resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dicom_factory import chest_volume

from components.data.hu import check_hu, hu_stats
from components.data.slices import (
    area_resize,
    lung_extent,
    pad_square,
    render_fraction,
    render_images,
    select_levels,
    window,
)

AIR, LUNG = (-1100.0, -900.0), (-950.0, -600.0)


def test_hu_stats_of_a_chest() -> None:
    vol = chest_volume(10)
    air, lung = hu_stats(vol, np.zeros(vol.shape, bool))
    assert air == pytest.approx(-1000, abs=5) and lung == pytest.approx(-850, abs=5)


@pytest.mark.parametrize("offset", [1024, -1024])
def test_wrong_intercept_corrected_or_quarantined(offset: int) -> None:
    vol = chest_volume(10) + offset
    pad = np.zeros(vol.shape, bool)
    fixed = check_hu(vol, pad, AIR, LUNG, autocorrect=True)
    assert fixed.ok and fixed.correction == -offset
    assert fixed.air_median == pytest.approx(-1000, abs=5) and "corrected by" in fixed.reason
    refused = check_hu(vol, pad, AIR, LUNG, autocorrect=False)
    assert not refused.ok and refused.correction == 0 and "wrong RescaleIntercept" in refused.reason


def test_plausible_volume_untouched_and_implausible_lung_rejected() -> None:
    vol = chest_volume(10)
    pad = np.zeros(vol.shape, bool)
    assert check_hu(vol, pad, AIR, LUNG) == check_hu(vol, pad, AIR, LUNG)
    res = check_hu(vol, pad, AIR, LUNG)
    assert res.ok and res.correction == 0 and res.reason == ""
    dense = chest_volume(10, lung_hu=-520.0)  # lungs far too dense: not fixable by an offset
    bad = check_hu(dense, pad, AIR, LUNG)
    assert not bad.ok and bad.reason.startswith("not a chest CT as expected: ")
    assert "lung median -520 HU" in bad.reason and "no lung in the expected range" in bad.reason
    assert "RescaleIntercept?" not in bad.reason  # observed facts, not a guessed cause


def test_no_lung_is_reported() -> None:
    vol = chest_volume(10, lung_hu=40.0)  # "lungs" as dense as soft tissue
    res = check_hu(vol, np.zeros(vol.shape, bool), AIR, LUNG)
    assert not res.ok and res.reason == "no lung found inside the body"


def test_lung_extent_and_levels() -> None:
    lung = np.zeros((10, 4, 4), bool)
    lung[2:8, :2, :2] = True
    lung[4, :, :] = True  # max area 16; fraction .25 -> 4 pixels counts
    assert lung_extent(lung, 0.25) == (2, 7)
    assert lung_extent(lung, 0.5) == (4, 4)
    assert lung_extent(np.zeros((3, 2, 2), bool), 0.1) is None
    assert select_levels(2, 7, [0.2, 0.4, 0.6, 0.8]) == [3, 4, 5, 6]
    assert select_levels(0, 100, [0.0, 0.5, 0.5, 1.0]) == [0, 50, 50, 100]


def test_window_range() -> None:
    w = window(np.array([-3000.0, -1000.0, -400.0, 200.0, 3000.0]), -1000.0, 200.0)
    assert w.dtype == np.float32 and np.allclose(w, [-1, -1, 0, 1, 1])


@pytest.mark.parametrize(("n_in", "n_out"), [(64, 16), (48, 16), (32, 32)])
def test_area_resize_equals_torch_area_when_divisible(n_in: int, n_out: int) -> None:
    x = np.random.default_rng(0).normal(size=(3, n_in, n_in)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x)[None], size=(n_out, n_out), mode="area")[0].numpy()
    assert np.allclose(area_resize(x, n_out), ref, atol=1e-5)


def test_area_resize_non_divisible_preserves_mean_and_constants() -> None:
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 50, 50))
    y = area_resize(x, 16)
    assert y.shape == (2, 16, 16) and y.dtype == np.float32
    assert np.allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=1e-5)
    assert np.allclose(area_resize(np.full((37, 37), 0.25), 16), 0.25)


def test_pad_square_and_render() -> None:
    x = np.ones((2, 4, 6))
    sq = pad_square(x, fill=-1.0)
    assert sq.shape == (2, 6, 6) and (sq[:, 0] == -1).all() and (sq[:, 1:5] == 1).all()
    img = render_images(np.full((4, 30, 40), 200.0), (-1000.0, 200.0), 8)
    assert img.shape == (4, 8, 8) and img.min() >= -1 and img.max() <= 1
    assert img[:, 0, :].mean() < img[:, 4, :].mean()  # air padding at top and bottom
    frac = render_fraction(np.ones((4, 16, 16), np.uint8), 8)
    assert frac.shape == (4, 8, 8) and np.allclose(frac, 1.0)
