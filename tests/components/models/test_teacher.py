"""Teacher factory: shapes, feature/head contract and TorchScript export."""

from __future__ import annotations

import pytest
import torch

from components.config import TeacherConfig
from components.errors import UserError
from components.models.teacher import build_teacher

SMALL = dict(init_features=4, growth_rate=4, block_config=[2, 2],
             resnet_layers=[1, 1, 1, 1], resnet_channels=[4, 4, 8, 8])


@pytest.mark.parametrize(
    ("arch", "size", "num_features"),
    # densenet-small: 4 + 2*4 = 12, transition halves to 6, + 2*4 = 14 features
    [("densenet-small", 16, 14), ("resnet", 8, 8), ("densenet121", 32, 1024)],
)
def test_teacher_shapes_and_head(arch: str, size: int, num_features: int) -> None:
    torch.manual_seed(0)
    model = build_teacher(TeacherConfig(arch=arch, **SMALL), size).eval()
    x = torch.rand(3, 4, size, size) * 2 - 1
    logits, feats = model(x), model.features(x)
    assert logits.shape == (3, 2) and feats.shape == (3, num_features)
    assert model.head_name == "head" and isinstance(getattr(model, model.head_name), torch.nn.Linear)
    assert model.num_features == num_features and model.image_size == size
    torch.testing.assert_close(model.head(feats), logits)


def test_teacher_scripts_with_features() -> None:
    model = build_teacher(TeacherConfig(arch="densenet-small", **SMALL), 16).eval()
    scripted = torch.jit.script(model)
    x = torch.rand(2, 4, 16, 16) * 2 - 1
    torch.testing.assert_close(scripted.features(x), model.features(x))
    assert scripted.head_name == "head"


def test_teacher_rejects_too_small_images() -> None:
    with pytest.raises(UserError, match="image_size >= 32"):
        build_teacher(TeacherConfig(arch="densenet121"), 16)
