"""PSNR / SSIM in one place: golden values, the window rule, and both users agreeing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.metrics.image_quality import image_quality, slice_quality, ssim_window
from components.metrics.reconstruction_eval import score_reconstruction


@pytest.mark.parametrize(("size", "window"), [(256, 11), (32, 11), (11, 11), (10, 9), (9, 9), (8, 7), (3, 3), (2, 1)])
def test_ssim_window_is_odd_and_fits_the_slice(size: int, window: int) -> None:
    assert ssim_window(size) == window


@pytest.mark.parametrize("size", [16, 8])
def test_golden_values_on_constant_slices(size: int) -> None:
    ref = np.zeros((2, 4, size, size), np.float32)  # 0.5 on the [0,1] scale
    test = np.full_like(ref, 0.2)  # 0.6: MSE 0.01 -> PSNR 20 dB
    psnr, ssim = slice_quality(ref, test)
    assert psnr.shape == ssim.shape == (2, 4) and psnr.dtype == np.float64
    np.testing.assert_allclose(psnr, 20.0, rtol=1e-5)
    # constant slices: SSIM is the luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1), C1 = 0.01^2
    # (MONAI's float32 variances E[x^2] - mu^2 leave ~1.5e-4 of cancellation error in the contrast term)
    np.testing.assert_allclose(ssim, (2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4), rtol=5e-4)
    same_psnr, same_ssim = slice_quality(ref, ref)
    assert np.isinf(same_psnr).all() and np.allclose(same_ssim, 1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        slice_quality(ref, test[:1])


def test_gate_and_criterion_measure_the_same_and_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, 4, 16, 16)).astype(np.float32)
    r = np.clip(x + rng.normal(0, 0.05, x.shape), -1, 1).astype(np.float32)
    before = x.copy()
    psnr, ssim = image_quality(x, r)
    assert np.array_equal(x, before)

    def clf(t: torch.Tensor) -> torch.Tensor:
        return torch.stack([t.mean((1, 2, 3)), -t.mean((1, 2, 3))], 1)

    for batch in (1, 2, 64):  # the gate scores in batches: same numbers
        scored = score_reconstruction(clf, x, r, batch_size=batch)
        assert scored["psnr"] == pytest.approx(psnr, rel=1e-12) and scored["ssim"] == pytest.approx(ssim, rel=1e-12)
        per_slice = slice_quality(torch.from_numpy(x), torch.from_numpy(r))
        np.testing.assert_allclose(scored["per_case"]["psnr"], per_slice[0].mean(axis=1), rtol=1e-12)
    assert 20 < psnr < 40 and 0.5 < ssim < 1.0
