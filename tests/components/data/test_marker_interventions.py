"""The planted shortcut marker and interventional rendering (issue 10, items 1-2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from dicom_factory import small_cfg

from components.config import SynthConfig
from components.data.dataset import load_dataset
from components.data.ingest import ingest
from components.data.interventions import cohort_interventions
from components.data.labels import read_labels
from components.data.phantom import COMPONENTS, MARKER_HU, phantom_volume
from components.data.slices import render_fraction, render_images
from components.data.synth import draw_patients, write_cohort


@pytest.mark.parametrize("circular", [False, True])
def test_marker_drawn_when_asked_outside_body_and_lungs(circular: bool) -> None:
    kw: dict[str, Any] = dict(extent=0.3, n_ggo=1, seed=4, circular_fov=circular, fov_mm=0.96 * 358.4)
    with_marker = phantom_volume(96, 6, marker=True, **kw)
    without = phantom_volume(96, 6, **kw)
    tag = with_marker.marker.astype(bool)
    assert not without.marker.any() and tag.any()
    assert all(np.array_equal(tag[0], tag[k]) for k in range(tag.shape[0])), "same place on every slice"
    assert not np.any(tag & with_marker.lung.astype(bool))
    assert np.all(without.hu[tag] < -900), "it lies in air, outside the body (and inside the field of view)"
    assert np.median(with_marker.hu[tag]) > MARKER_HU - 100
    rows = np.nonzero(tag[0].any(axis=1))[0]
    assert rows.max() < 96 // 3, "anterior (image top)"


@pytest.mark.parametrize("matrix,fov", [(128, 0.96 * 358.4), (160, 1.08 * 358.4)])
def test_marker_survives_the_ingest_resize_to_32_px(matrix: int, fov: float) -> None:
    ph = phantom_volume(matrix, 6, marker=True, fov_mm=fov, seed=1)
    frac = render_fraction(ph.marker[:1], 32)[0]
    full = frac >= 0.99
    assert full.any(axis=1).sum() >= 2 and full.any(axis=0).sum() >= 2, "at least 2x2 whole output pixels"
    img = render_images(ph.hu[:1], (-1000.0, 200.0), 32)[0]
    assert np.all(img[full] > 0.95) and frac.sum() >= 6


@pytest.mark.parametrize("circular", [False, True])
def test_removing_a_component_changes_only_its_pixels(circular: bool) -> None:
    kw: dict[str, Any] = dict(extent=0.4, n_ggo=2, seed=3, marker=True, circular_fov=circular)
    full = phantom_volume(64, 8, **kw)
    own = {"disease": full.mask, "distractor": full.distractor_support, "marker": full.marker}
    for comp in COMPONENTS:
        variant = phantom_volume(64, 8, components=[c for c in COMPONENTS if c != comp], **kw)
        changed = variant.hu != full.hu
        assert changed.any(), comp
        assert not np.any(changed & ~own[comp].astype(bool)), f"{comp}: pixels outside it changed"
        assert comp not in variant.components and np.array_equal(variant.lung, full.lung)
    assert not phantom_volume(64, 8, components=["marker"], **kw).mask.any()
    with pytest.raises(ValueError, match="unknown components"):
        phantom_volume(64, 8, components=["pacemaker"])


def test_marker_fraction_and_label_association() -> None:
    base = draw_patients("osic", 2000, 0, SynthConfig(marker_fraction=0.0))
    indep = draw_patients("osic", 2000, 0, SynthConfig(marker_fraction=0.3))
    tied = draw_patients("osic", 2000, 0, SynthConfig(marker_fraction=0.3, marker_label_association=1.0))
    labels = np.array([r.label for r in base])
    assert [r.label for r in indep] == labels.tolist() == [r.label for r in tied], "label model unchanged"
    assert [r.extent for r in indep] == [r.extent for r in base]
    assert not any(r.marker for r in base)
    m = np.array([r.marker for r in indep])
    assert abs(m.mean() - 0.3) < 0.04
    assert abs(m[labels == 1].mean() - m[labels == 0].mean()) < 0.1, "independent of the label"
    assert np.array_equal([r.marker for r in tied], labels), "present iff positive"


@pytest.fixture(scope="module")
def marked_cohort(tmp_path_factory):
    cfg = SynthConfig(slices_per_patient=10, osic_matrix=64, external_matrix=80, marker_fraction=0.5)
    tmp = tmp_path_factory.mktemp("marked")
    root = tmp / "cohort"
    write_cohort(root, "external", 4, 2, cfg, progress=lambda _: None, workers=1)
    icfg = small_cfg(min_slices=8)
    ingest(str(root), root / "labels.csv", tmp / "out", icfg)
    return cfg, icfg, root, load_dataset(tmp / "out")


def test_marker_carried_through_labels_and_ingest(marked_cohort) -> None:
    cfg, _, root, ds = marked_cohort
    table = pd.read_csv(root / "labels.csv", dtype=str)
    assert list(table.columns) == ["Patient", "mortality_1y", "cohort", "marker"]
    labels = read_labels(root / "labels.csv")  # extra columns are tolerated
    assert all(e.problem == "" for e in labels.values()) and len(labels) == 4
    marker = dict(zip(table.Patient, table.marker.astype(int)))
    assert set(marker.values()) == {0, 1}, "seed 2 draws both (fraction 0.5)"
    assert ds.marker is not None and ds.marker.shape == ds.images.shape and np.isfinite(ds.marker).all()
    for row, pid in enumerate(ds.patients.patient):
        on = float(ds.marker[row].sum())
        assert (on > 4 * 2) if marker[pid] else (on == 0), pid  # >= 2 px on each of the 4 slices
        assert not np.any((ds.marker[row] > 0) & (ds.lung_masks[row] > 0))
        with np.load(root / "masks" / f"{pid}.npz") as npz:
            assert npz["marker"].dtype == np.uint8 and bool(npz["marker"].any()) == bool(marker[pid])


def test_intervention_stacks_equal_the_ingested_dataset(marked_cohort) -> None:
    cfg, icfg, _, ds = marked_cohort
    ids = list(ds.patients.patient)
    iv = cohort_interventions("external", 4, 2, cfg, icfg, patient_ids=ids[::-1])
    order = [ids.index(p) for p in iv.patients]
    assert np.allclose(iv.images, np.asarray(ds.images)[order], atol=1e-6), "rendered exactly as ingest does"
    assert np.array_equal(iv.lung_masks, np.asarray(ds.lung_masks)[order])
    assert np.allclose(iv.masks["disease"], np.asarray(ds.masks)[order], atol=1e-6)
    assert np.allclose(iv.masks["marker"], np.asarray(ds.marker)[order], atol=1e-6)
    sel = [list(map(int, s.split(";"))) for s in ds.patients.slice_indices]
    assert iv.slice_indices.tolist() == [sel[i] for i in order]
    for comp in COMPONENTS:
        diff = np.abs(iv.removed[comp] - iv.images) > 0
        assert iv.removed[comp].shape == iv.images.shape
        support = iv.masks[comp] > 0
        if comp != "distractor":  # the ground glass fades out beyond its >= 0.5 core
            assert not np.any(diff & ~support), comp
    marked = np.asarray([ds.marker[ids.index(p)].sum() > 0 for p in iv.patients])
    assert np.array_equal(iv.present["marker"], marked)
    with pytest.raises(Exception, match="not in the external cohort"):
        cohort_interventions("external", 4, 2, cfg, icfg, patient_ids=["ID00nope"])


def test_bare_stacks_remove_every_component_and_nothing_else(marked_cohort) -> None:
    cfg, icfg, _, ds = marked_cohort
    ids = list(ds.patients.patient)
    iv = cohort_interventions("external", 4, 2, cfg, icfg, patient_ids=ids, bare=True)
    assert iv.bare is not None and iv.bare.shape == iv.images.shape and iv.bare.dtype == np.float32
    changed = iv.bare != iv.images
    by_one = np.any([iv.removed[c] != iv.images for c in COMPONENTS], axis=0)
    assert changed.any() and not np.any(changed & ~by_one), "only where removing some component changes the stack"
    tag = iv.removed["marker"] != iv.images  # the marker lies in air, away from the rest: bare = without marker
    assert tag.any() and np.array_equal(iv.bare[tag], iv.removed["marker"][tag])
    assert np.all(changed[iv.removed["disease"] != iv.images]), "no disease left where removing it changed a pixel"
    alone = cohort_interventions("external", 4, 2, cfg, icfg, patient_ids=ids, components=(), bare=True)
    assert alone.removed == {} and alone.masks == {} and alone.bare is not None
    assert np.array_equal(alone.bare, iv.bare)
    assert np.array_equal(alone.images, iv.images) and iv.components == COMPONENTS
    assert cohort_interventions("external", 4, 2, cfg, icfg, patient_ids=ids[:1], components=()).bare is None
