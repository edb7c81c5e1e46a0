"""Black-box contract: loaders and the checks that reject bad classifiers."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from components.blackbox import (
    BlackBox,
    check_contract,
    file_hash,
    from_module,
    load_blackbox,
    mode_description,
    state_hash,
)
from components.errors import UserError

SIZE = 8


class FeatureNet(nn.Module):
    """Good feature-mode classifier: pooled conv features -> Linear head."""

    def __init__(self, channels: int = 4, classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 6, 3, padding=1)
        self.head = nn.Linear(6, classes)
        self.head_name = "head"

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class OutputNet(nn.Module):
    """Good output-mode classifier: no features, no named head; 8x8 inputs only."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4 * SIZE * SIZE, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


class NaNNet(OutputNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


class RankNet(OutputNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:, 0]  # [B], not [B,C]


class NotFinalHead(FeatureNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * 3.0 + 1.0


class BadFeatures(FeatureNet):
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))  # [B,6,H,W], not [B,6]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(super().features(x))


def test_feature_and_output_modes() -> None:
    fb = from_module(FeatureNet())
    assert fb.mode == "feature" and isinstance(fb.head, nn.Linear) and fb.head_name == "head"
    assert check_contract(fb, 4, SIZE, 2) == {"num_classes": 2, "num_features": 6}
    x = torch.zeros(2, 4, SIZE, SIZE)
    feats = fb.features(x)
    assert feats is not None and feats.shape == (2, 6) and fb(x).shape == (2, 2)
    ob = from_module(OutputNet())
    assert ob.mode == "output" and ob.head is None and ob.features(x) is None
    assert check_contract(ob, 4, SIZE)["num_classes"] == 2
    assert from_module(FeatureNet(), mode="output").mode == "output"
    assert len(fb.content_hash) == 64 and fb.content_hash == state_hash(fb.module)
    assert mode_description(fb.mode, fb.head_name) == "features+head (head head)"
    assert mode_description(ob.mode, ob.head_name) == "logits only"


@pytest.mark.parametrize(
    ("module", "kwargs", "message"),
    [
        (FeatureNet(channels=3), {}, r"classifier failed on input \[2,4,8,8\]"),
        (OutputNet(), {"image_size": 16}, r"classifier failed on input \[2,4,16,16\]"),
        (NaNNet(), {}, "non-finite logits"),
        (RankNet(), {}, r"expected logits \[2,C\].*got \[2\]"),
        (OutputNet(), {"num_classes": 3}, r"expected logits \[2,3\].*got \[2, 2\]"),
        (NotFinalHead(), {}, "is not the final layer"),
        (BadFeatures(), {}, r"features\(x\) must be \[2,6\].*got \[2, 6, 8, 8\]"),
    ],
)
def test_contract_rejects_bad_classifiers(module: nn.Module, kwargs: dict, message: str) -> None:
    bb = from_module(module, source="bad.pt")
    args = {"channels": 4, "image_size": SIZE, **kwargs}
    with pytest.raises(UserError, match=message) as err:
        check_contract(bb, **args)
    assert "\n" not in str(err.value) and str(err.value).startswith("bad.pt: ")


def test_missing_head_is_rejected() -> None:
    with pytest.raises(UserError, match=r"head 'classifier' not found on the classifier \(its Linear layers: head\)"):
        from_module(FeatureNet(), head_name="classifier")
    with pytest.raises(UserError, match="feature mode needs a named Linear head"):
        from_module(OutputNet(), mode="feature")
    net = FeatureNet()
    net.head_name = "conv"
    with pytest.raises(UserError, match="is a Conv2d, expected nn.Linear"):
        from_module(net)


def test_torchscript_and_torch_save_loaders(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = FeatureNet().eval()
    ts = tmp_path / "clf.ts"
    torch.jit.save(torch.jit.script(net), str(ts))
    bb = load_blackbox(str(ts))
    assert bb.info["format"] == "torchscript" and bb.mode == "feature"
    assert bb.content_hash == file_hash(ts) and bb.source == str(ts)
    check_contract(bb, 4, SIZE, 2)
    x = torch.rand(2, 4, SIZE, SIZE) * 2 - 1
    torch.testing.assert_close(bb(x), net(x))
    assert bb.head is not None
    torch.testing.assert_close(bb.head.weight, net.head.weight)

    pickled = tmp_path / "clf.pt"
    torch.save(OutputNet(), pickled)
    ob = load_blackbox(str(pickled))
    assert ob.info["format"] == "torch.save" and ob.mode == "output"
    check_contract(ob, 4, SIZE, 2)

    sd = tmp_path / "weights.pt"
    torch.save(net.state_dict(), sd)
    with pytest.raises(UserError, match="state_dict, not a module"):
        load_blackbox(str(sd))
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(UserError, match="not a TorchScript or torch.save file"):
        load_blackbox(str(junk))


class UnnamedFeatureNet(FeatureNet):
    """Feature-exposing, but ``head_name`` is a class attribute: TorchScript drops it."""

    head_name = "head"

    def __init__(self) -> None:
        super().__init__()
        del self.head_name  # only the class attribute is left


class UnexportedFeatureNet(UnnamedFeatureNet):
    """``features`` without ``@torch.jit.export``: tracing keeps only ``forward``."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def _ts(tmp_path: Path, module: torch.jit.ScriptModule, name: str) -> str:
    path = tmp_path / name
    torch.jit.save(module, str(path))
    return str(path)


def test_scripted_and_traced_classifiers_in_feature_mode_via_head_name(tmp_path: Path) -> None:
    """What each TorchScript format keeps (torch 2.13), and the head name that restores feature mode."""
    x = torch.rand(2, 4, SIZE, SIZE) * 2 - 1
    scripted = _ts(tmp_path, torch.jit.script(UnnamedFeatureNet().eval()), "scripted.pt")
    assert load_blackbox(scripted).mode == "output"  # features kept, class attribute head_name lost
    bb = load_blackbox(scripted, head_name="head")
    assert (bb.mode, bb.head_name) == ("feature", "head") and isinstance(bb.head, nn.Linear)
    assert check_contract(bb, 4, SIZE, 2) == {"num_classes": 2, "num_features": 6}
    own = _ts(tmp_path, torch.jit.script(FeatureNet().eval()), "own.pt")  # head_name set in __init__: kept
    assert load_blackbox(own).mode == "feature"

    # tracing keeps an @torch.jit.export-ed features (and then instance attributes such as head_name)
    assert load_blackbox(_ts(tmp_path, torch.jit.trace(FeatureNet().eval(), x), "exported.pt")).mode == "feature"
    traced = _ts(tmp_path, torch.jit.trace(UnnamedFeatureNet().eval(), x), "traced.pt")
    assert load_blackbox(traced).mode == "output"
    bb = load_blackbox(traced, head_name="head")
    assert bb.mode == "feature" and check_contract(bb, 4, SIZE, 2)["num_features"] == 6
    feats = bb.features(x)
    assert bb.head is not None and feats is not None
    torch.testing.assert_close(bb.head(feats), bb(x))

    plain_trace = _ts(tmp_path, torch.jit.trace(UnexportedFeatureNet().eval(), x), "plain_trace.pt")
    assert load_blackbox(plain_trace).mode == "output"
    with pytest.raises(UserError, match=r"feature mode needs a features\(x\) method \(TorchScript keeps") as err:
        load_blackbox(plain_trace, head_name="head")
    assert "\n" not in str(err.value)
    named = UnexportedFeatureNet().eval()
    named.head_name = "head"  # an instance attribute, as FeatureNet has
    traced_both = _ts(tmp_path, torch.jit.trace_module(named, {"forward": x, "features": x}), "both.pt")
    assert load_blackbox(traced_both).mode == "output"  # trace_module keeps features but drops head_name
    assert load_blackbox(traced_both, head_name="head").mode == "feature"

    with pytest.raises(UserError, match=r"head 'fc' not found on the classifier \(its Linear layers: head\)"):
        load_blackbox(traced, head_name="fc")
    with pytest.raises(UserError, match="head 'conv' is a Conv2d, expected nn.Linear"):
        load_blackbox(traced, head_name="conv")
    assert load_blackbox(traced, head_name="head", mode="output").mode == "output"


def test_import_path_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_clf_pkg.py").write_text(textwrap.dedent(
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def features(self, x):
                return x.mean(dim=(2, 3))

            def forward(self, x):
                return self.fc(self.features(x))

        def make():
            return Net()

        INSTANCE = Net()
        """
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    bb = load_blackbox("my_clf_pkg:make", head_name="fc")
    assert bb.mode == "feature" and bb.info["format"] == "import"
    assert check_contract(bb, 4, SIZE, 2)["num_features"] == 4
    assert load_blackbox("my_clf_pkg:INSTANCE").mode == "output"  # no head name given
    with pytest.raises(UserError, match="has no attribute"):
        load_blackbox("my_clf_pkg:nope")
    with pytest.raises(UserError, match="cannot import"):
        load_blackbox("no_such_pkg_xyz:make")
    sys.modules.pop("my_clf_pkg", None)


def test_registry_uris_need_a_resolver() -> None:
    with pytest.raises(UserError, match="no resolver registered for 'models' URIs"):
        load_blackbox("models:/teacher@champion")
    seen: list[str] = []

    def resolver(spec: str) -> nn.Module:
        seen.append(spec)
        return FeatureNet()

    bb = load_blackbox("models:/teacher/3", resolvers={"models:/": resolver})
    assert isinstance(bb, BlackBox) and seen == ["models:/teacher/3"] and bb.source == "models:/teacher/3"
    with pytest.raises(UserError, match="no such file"):
        load_blackbox("/definitely/missing/model.pt")


def test_state_hash_handles_zero_dim_buffers_and_detects_changes() -> None:
    """BatchNorm's ``num_batches_tracked`` is a 0-d long tensor (MONAI DenseNet has many)."""

    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(4, 2, 3), torch.nn.BatchNorm2d(2)
    m = torch.nn.Sequential(conv, bn)
    h = state_hash(m)
    assert h == state_hash(m)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] += 1e-3
    assert state_hash(m) != h
    assert bn.num_batches_tracked is not None
    bn.num_batches_tracked += 1
    assert len({h, state_hash(m)}) == 2
