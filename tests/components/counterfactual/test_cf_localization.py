"""Localisation scores on hand-made maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from components.counterfactual.localization import (
    case_aurocs,
    difference_relevance,
    localization_table,
    pointing_game,
    region_auroc,
    relevance_mass,
)


@pytest.fixture()
def masks():
    lesion = np.zeros((4, 8, 8), bool)
    lesion[1, 2:4, 2:4] = True
    region = np.zeros((4, 8, 8), bool)
    region[:, 1:7, 1:7] = True
    return lesion, region


def test_auroc_perfect_inverted_and_undefined(masks):
    lesion, region = masks
    assert region_auroc(lesion.astype(float), lesion, region) == 1.0
    assert region_auroc(-lesion.astype(float), lesion, region) == 0.0
    assert np.isnan(region_auroc(lesion.astype(float), np.zeros_like(lesion), region))


def test_outside_region_is_ignored(masks):
    lesion, region = masks
    rel = lesion.astype(float)
    rel[0, 0, 0] = 100.0  # outside the lungs: must not count
    assert region_auroc(rel, lesion, region) == 1.0
    assert pointing_game(rel, lesion, region) == 1.0
    assert relevance_mass(rel, lesion, region) == 1.0


def test_pointing_game_hit_miss_tie_and_tolerance(masks):
    lesion, region = masks
    rel = np.zeros((4, 8, 8))
    rel[1, 3, 3] = 1.0
    assert pointing_game(rel, lesion, region) == 1.0
    rel[1, 3, 3], rel[1, 3, 4] = 0.0, 1.0  # max next to the lesion
    assert pointing_game(rel, lesion, region) == 0.0
    assert pointing_game(rel, lesion, region, tolerance_px=1) == 1.0
    rel[2, 3, 4] = 1.0  # tolerance is in-plane: the lesion is not dilated into slice 2
    rel[1, 3, 4] = 0.0
    assert pointing_game(rel, lesion, region, tolerance_px=1) == 0.0
    assert pointing_game(np.ones((4, 8, 8)), lesion, region) == 0.0  # a flat map is a miss


def test_relevance_mass_known_value(masks):
    lesion, region = masks
    rel = np.zeros((4, 8, 8))
    rel[1, 2, 2] = 3.0  # in lesion
    rel[3, 5, 5] = 1.0  # in lungs, not lesion
    rel[2, 4, 4] = -5.0  # negative relevance is not mass
    assert relevance_mass(rel, lesion, region) == pytest.approx(0.75)
    assert np.isnan(relevance_mass(np.zeros((4, 8, 8)), lesion, region))


def test_table_and_difference_map(masks):
    lesion, region = masks
    recon = np.zeros((2, 4, 8, 8))
    cfs = np.zeros((2, 3, 4, 8, 8))
    cfs[:, :, 1, 2:4, 2:4] = -0.3  # removes intensity exactly on the lesion
    rel = difference_relevance(cfs, recon)
    assert rel.shape == (2, 4, 8, 8) and (rel >= 0).all()
    table = localization_table(
        {"perfect": rel, "flat": np.ones_like(rel)},
        masks=np.stack([lesion, lesion]).astype(float) * 0.6,
        lung_masks=np.stack([region, region]).astype(np.uint8),
        mask_threshold=0.5,
    )
    assert table["perfect"] == {"auroc": 1.0, "pointing_game": 1.0, "relevance_mass": 1.0, "n_cases": 2}
    assert table["flat"]["auroc"] == 0.5 and table["flat"]["pointing_game"] == 0.0
    assert table["flat"]["relevance_mass"] == pytest.approx(4 / (36 * 4))
    # below the threshold there is no lesion: scores are undefined, not zero
    none = localization_table({"m": rel}, np.full((2, 4, 8, 8), 0.05), np.stack([region, region]), 0.1)
    assert none["m"] == {"auroc": None, "pointing_game": None, "relevance_mass": None, "n_cases": 0}


def test_table_scores_a_signed_map_by_its_magnitude(masks):
    """A lesion whose attribution carries both signs localises perfectly by magnitude, not by sign."""
    lesion, region = masks
    signed = np.zeros((4, 8, 8))
    signed[1, 2, 2:4], signed[1, 3, 2:4] = 2.0, -1.0  # evidence for and against, all on the lesion
    signed[3, 5, 5] = 0.1  # faint evidence elsewhere in the lungs
    assert region_auroc(signed, lesion, region) < 0.6  # by sign, the negative half ranks last
    table = localization_table({"signed": signed[None]}, lesion[None].astype(float), region[None], 0.5)
    assert table["signed"]["auroc"] == 1.0
    assert table["signed"]["pointing_game"] == 1.0
    assert table["signed"]["relevance_mass"] == pytest.approx(6.0 / 6.1)


def test_case_aurocs_by_magnitude_and_by_sign(masks):
    lesion, region = masks
    signed = np.zeros((2, 4, 8, 8))
    signed[0, 1, 2:4, 2:4] = -1.0  # case 0: all its lesion evidence negative
    signed[1, 1, 2:4, 2:4] = 1.0
    both = np.stack([lesion, lesion])
    assert case_aurocs(signed, both, np.stack([region, region])).tolist() == [1.0, 1.0]
    assert case_aurocs(signed, both, np.stack([region, region]), magnitude=False).tolist() == [0.0, 1.0]
    assert np.isnan(case_aurocs(signed, np.zeros_like(both), np.stack([region, region]))).all()
