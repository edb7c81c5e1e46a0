"""A swapped-in black box in every file format the README lists, feature-exposing or opaque:
loaded, contract-checked and evaluated; a baseline that cannot run on it is skipped with its
reason (metrics.json ``maps_skipped`` and the report), never sinks the evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cf_standins import TinyTeacher, lesion_map, lung_map
from torch import Tensor, nn

from components.blackbox import check_contract, load_blackbox
from components.config import CounterfactualConfig
from components.counterfactual.baselines import BASELINES
from components.counterfactual.evaluate import evaluate_cohort
from components.report.html import render_report


class FeatureTeacher(nn.Module):
    """Feature mode: ``features(x) -> [B,2]`` (lesion-weighted sum, mean), then ``Linear(2,2)``."""

    def __init__(self, weight_map: Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        self.register_buffer("w", weight_map.float().clone())
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-0.5, 0.0], [0.5, 0.0]]))
            self.head.bias.zero_()
        self.head_name = "head"

    def features(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        return torch.stack([(h * self.w).sum(dim=(1, 2, 3)), h.mean(dim=(1, 2, 3))], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _save(net: nn.Module, fmt: str, path: Path, example: Tensor) -> None:
    if fmt == "plain":
        torch.save(net, path)
    elif fmt == "scripted":
        torch.jit.save(torch.jit.script(net), str(path))
    else:  # traced: forward, and features where the module has it
        inputs = {"forward": example}
        if hasattr(net, "features"):
            inputs["features"] = example
        torch.jit.save(torch.jit.trace_module(net, inputs), str(path))


# ``trace_module`` keeps submodules, tensors and the traced ``features`` but drops plain attributes
# such as ``head_name``: without ``--head-name`` a traced feature-exposing classifier is distilled in
# output mode (KL on logits); tests/components/test_blackbox.py covers the head name.
MODES = {("plain", "feature"): "feature", ("scripted", "feature"): "feature", ("traced", "feature"): "output",
         ("plain", "opaque"): "output", ("scripted", "opaque"): "output", ("traced", "opaque"): "output"}


@pytest.mark.parametrize("kind", ["feature", "opaque"])
@pytest.mark.parametrize("fmt", ["plain", "scripted", "traced"])
def test_every_format_is_evaluated_and_hook_baselines_are_skipped_on_torchscript(
    standins, tmp_path: Path, fmt: str, kind: str
) -> None:
    model, agent, _, x = standins
    lesion = lesion_map()
    net = (FeatureTeacher(lesion) if kind == "feature" else TinyTeacher(lesion, scale=2.0)).eval()
    path = tmp_path / f"{fmt}-{kind}.pt"
    _save(net, fmt, path, x[:2])

    bb = load_blackbox(str(path))
    assert bb.info["format"] == ("torch.save" if fmt == "plain" else "torchscript")
    assert bb.mode == MODES[fmt, kind]
    assert check_contract(bb, channels=4, image_size=16)["num_classes"] == 2
    torch.testing.assert_close(bb(x), net(x))

    n = x.shape[0]
    cfg = CounterfactualConfig(alphas=[0.2, 0.4], ddim_steps=2, batch_size=16, max_cases=3, ig_steps=4,
                               occlusion_window=4, occlusion_stride=4, search_max_evals=2)
    lungs = lung_map()[None].repeat(n, 1, 1, 1).numpy()
    masks = lesion[None].repeat(n, 1, 1, 1).numpy()
    metrics = evaluate_cohort(model, agent, bb, x.numpy(), lungs, cfg, masks=masks).metrics

    skipped = metrics["maps_skipped"] or {}
    loc = metrics["localization"]
    assert {"diffexplainer", "random_direction", "saliency", "integrated_gradients", "occlusion"} <= set(loc)
    assert set(BASELINES) <= set(loc) | set(skipped) and not set(loc) & set(skipped)
    if fmt == "plain":
        assert not skipped, skipped  # hooks work on a plain module: every baseline computed
    else:  # forward hooks are not supported on ScriptModules (scripted and traced alike)
        assert {"gradcam", "gradcampp"} <= set(skipped)
        assert all(reason.strip() and "\n" not in reason for reason in skipped.values())
        html = render_report(metrics, tmp_path / "index.html").read_text()
        assert "Maps not computed for this black box" in html and "gradcam" in html
    for name, table in loc.items():
        assert table["n_cases"] == metrics["counterfactual"]["n_cases"] == 3, name
        assert 0.0 <= table["auroc"] <= 1.0, name
    assert loc["saliency"]["auroc"] == 1.0  # both nets' input gradient is the lesion map
