"""Teacher attribution baselines (MONAI Grad-CAM / Grad-CAM++, captum) on tiny teachers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cf_standins import NoGradBlackBox, TinyTeacher, lesion_map, lung_map
from monai.networks.nets import DenseNet

from components.config import CounterfactualConfig
from components.counterfactual.baselines import BASELINES, attribution_maps, last_spatial_layer
from components.counterfactual.localization import localization_table


def test_all_baselines_shapes_and_saliency_localises():
    lesion = lesion_map()
    bb = NoGradBlackBox(TinyTeacher(lesion, scale=2.0))  # input gradient = 2 * lesion map
    x = torch.rand(3, 4, 16, 16) - 0.5
    cfg = CounterfactualConfig(ig_steps=4, occlusion_window=4, occlusion_stride=4, batch_size=8)
    maps = attribution_maps(bb, x, target_class=1, cfg=cfg)
    assert set(maps) == set(BASELINES)
    for m in maps.values():
        assert m.shape == (3, 4, 16, 16) and np.isfinite(m).all() and (m >= 0).all()
    table = localization_table(
        {k: maps[k] for k in ("saliency", "integrated_gradients")},
        masks=lesion[None].repeat(3, 1, 1, 1).numpy(),
        lung_masks=lung_map()[None].repeat(3, 1, 1, 1).numpy(),
    )
    assert table["saliency"]["auroc"] == 1.0 and table["saliency"]["relevance_mass"] == 1.0


def test_gradcam_on_monai_densenet_finds_spatial_layer():
    torch.manual_seed(0)
    net = DenseNet(spatial_dims=2, in_channels=4, out_channels=2, init_features=8, growth_rate=4,
                   block_config=(2, 2)).eval()
    x = torch.rand(2, 4, 16, 16) * 2 - 1
    assert last_spatial_layer(net, x[:1]) == "class_layers.relu"
    cfg = CounterfactualConfig(batch_size=8)
    maps = attribution_maps(NoGradBlackBox(net), x, 1, cfg, methods=["gradcam", "gradcampp"])
    for m in maps.values():
        assert m.shape == (2, 4, 16, 16) and np.isfinite(m).all()
        np.testing.assert_array_equal(m[:, 0], m[:, 3])  # one map per stack, on every slice


def test_a_baseline_that_cannot_run_is_skipped_with_its_reason():
    lesion = lesion_map()
    scripted = torch.jit.script(TinyTeacher(lesion, scale=2.0).eval())  # no forward hooks on ScriptModules
    bb = NoGradBlackBox(scripted)
    x = torch.rand(2, 4, 16, 16) - 0.5
    cfg = CounterfactualConfig(ig_steps=4, occlusion_window=4, occlusion_stride=4, batch_size=8)
    skipped: dict[str, str] = {}
    maps = attribution_maps(bb, x, target_class=1, cfg=cfg, skipped=skipped)
    assert {"saliency", "integrated_gradients", "occlusion"} <= set(maps)  # gradient / perturbation ones still run
    assert set(maps) | set(skipped) == set(BASELINES) and not set(maps) & set(skipped)
    assert {"gradcam", "gradcampp"} <= set(skipped) and all(reason.strip() for reason in skipped.values())
    with pytest.raises(Exception):  # noqa: B017 - any error: without a `skipped` dict it is not swallowed
        attribution_maps(bb, x, target_class=1, cfg=cfg, methods=["gradcam"])
