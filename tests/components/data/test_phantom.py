"""The in-memory HU phantom: anatomy in range, disease where the mask says, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from components.data.phantom import PAD_HU, lung_scale, phantom_volume


@pytest.fixture(scope="module")
def ph():
    return phantom_volume(64, 8, extent=0.4, n_ggo=2, seed=5)


@pytest.mark.parametrize("matrix,n_slices", [(48, 8), (64, 6)])
def test_shapes_and_dtypes(matrix: int, n_slices: int) -> None:
    p = phantom_volume(matrix, n_slices, seed=1)
    assert p.hu.shape == p.mask.shape == p.distractor.shape == p.lung.shape == (n_slices, matrix, matrix)
    assert p.hu.dtype == np.float32 and p.mask.dtype == np.uint8 and p.distractor.dtype == np.uint8
    assert p.z.shape == (n_slices,) and p.z.dtype == np.float64
    assert np.all(np.diff(p.z) < 0), "slice 0 is the most superior"
    assert np.allclose(-np.diff(p.z), p.slice_spacing)


def test_tissue_hu_ranges(ph) -> None:
    corner = ph.hu[:, :4, :4]
    assert -1015 < float(np.median(corner)) < -985
    lung = ph.lung.astype(bool)
    healthy = lung & (ph.mask == 0) & (ph.distractor == 0)
    assert -880 < float(np.median(ph.hu[healthy])) < -800
    # Slice 0 has no lung: the body is soft tissue (40 HU) with a fat rim and bone.
    body = ph.hu[0][ph.hu[0] > -500]
    assert 0 < float(np.median(body)) < 80
    assert np.any(body > 700), "cortical bone present"
    assert np.any((body > -150) & (body < -50)), "fat rim present"


def _air_inside_body(hu: np.ndarray) -> int:
    body = ndimage.binary_fill_holes(hu > -500)
    return int(np.sum(body & (hu < -500)))


def test_lung_extent_visible_from_image(ph) -> None:
    air_in_body = [_air_inside_body(ph.hu[k]) for k in range(ph.hu.shape[0])]
    assert air_in_body[0] == 0 and air_in_body[-1] == 0, "a lung-free slice above and below"
    assert min(air_in_body[2:-2]) > 50
    area = ph.lung.sum(axis=(1, 2))
    lung_slices = np.nonzero(area)[0]
    assert area[lung_slices[0]] < area.max(), "the apex is smaller than mid-lung"
    assert np.all((ph.level[area > 0] > 0) & (ph.level[area > 0] < 1))
    assert lung_scale(0.02) < lung_scale(0.7) == pytest.approx(1.0)


def test_mask_marks_the_disease_hu(ph) -> None:
    lung = ph.lung.astype(bool)
    disease = ph.mask.astype(bool)
    assert disease.any() and not np.any(disease & ~lung)
    healthy = lung & ~disease & (ph.distractor == 0)
    assert float(ph.hu[disease].mean()) > float(ph.hu[healthy].mean()) + 150
    cyst_like = ph.hu < -960
    assert cyst_like[disease].mean() > 2 * cyst_like[healthy].mean()
    reticular = (ph.hu > -400) & (ph.hu < -200)
    assert reticular[disease].mean() > 5 * reticular[healthy].mean()


def test_disease_is_subpleural_posterior_and_basal() -> None:
    p = phantom_volume(64, 10, extent=0.2, n_ggo=0, seed=2)
    lung, disease = p.lung.astype(bool), p.mask.astype(bool)
    rows = np.arange(64)[None, :, None]
    lung_rows = np.broadcast_to(rows, lung.shape)
    assert lung_rows[disease].mean() > lung_rows[lung].mean(), "posterior predominance"
    upper = p.level < 0.5
    assert disease[~upper].sum() > disease[upper].sum(), "basal predominance"
    interior = np.stack([ndimage.binary_erosion(m, iterations=5) for m in lung])
    assert not np.any(disease & interior), "nothing deeper than the subpleural band"


def test_extent_controls_mask_and_zero_means_none() -> None:
    sums = [int(phantom_volume(48, 8, extent=e, n_ggo=0, seed=3).mask.sum()) for e in (0.0, 0.2, 0.6)]
    assert sums[0] == 0 and sums[0] < sums[1] < sums[2]


def test_distractor_is_ground_glass_and_independent_of_disease(ph) -> None:
    ggo = ph.distractor.astype(bool)
    assert ggo.any() and not np.any(ggo & (ph.mask == 1))
    assert -780 < float(np.median(ph.hu[ggo])) < -450
    without = phantom_volume(64, 8, extent=0.4, n_ggo=0, seed=5)
    assert np.array_equal(without.mask, ph.mask)
    assert without.distractor.sum() == 0


def test_deterministic_for_a_seed() -> None:
    a, b = (phantom_volume(48, 8, extent=0.3, seed=11) for _ in range(2))
    c = phantom_volume(48, 8, extent=0.3, seed=12)
    assert a.hu.tobytes() == b.hu.tobytes() and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.hu, c.hu)


def test_circular_fov_padding() -> None:
    p = phantom_volume(48, 6, circular_fov=True, seed=0)
    assert np.all(p.hu[:, 0, 0] == PAD_HU) and np.all(p.hu[:, 24, 0] > -1100)
    assert np.all(p.hu[:, 24, 24] > -1100)


@pytest.mark.parametrize("kwargs", [{"matrix": 8}, {"n_slices": 3}, {"extent": 1.5}, {"n_ggo": -1}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        phantom_volume(**kwargs)
