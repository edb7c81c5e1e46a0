"""Teacher classifiers (the default black box) built from MONAI networks.

Every teacher is a :class:`TeacherNet`: a backbone that maps the 4-slice stack to a pooled
feature vector, followed by one final ``nn.Linear`` head (attribute name in ``head_name``).
That is exactly the shape the agent needs in feature mode (DESIGN.md §3):

- ``forward(x: float32[B,4,H,W] in [-1,1]) -> logits [B,C]``
- ``features(x) -> [B,F]`` (penultimate, post-ReLU / pooled)
- ``head: nn.Linear(F, C)`` so that ``forward(x) == head(features(x))``

Architectures: ``densenet121`` (MONAI DenseNet121 layout, F = 1024), ``densenet-small``
(init_features / growth_rate / block_config from the config) and ``resnet`` (MONAI ResNet;
the second black box of the swap-in example).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from monai.networks.nets import DenseNet, ResNet
from torch import nn

from components.config import TeacherConfig
from components.errors import UserError

__all__ = ["TeacherNet", "build_teacher", "IN_CHANNELS"]

IN_CHANNELS = 4
_DENSENET121: dict[str, Any] = {"init_features": 64, "growth_rate": 32, "block_config": (6, 12, 24, 16)}


class TeacherNet(nn.Module):
    """Backbone → pooled features ``[B,F]`` → ``nn.Linear`` head → logits ``[B,C]``.

    Args:
        backbone: maps ``[B,4,H,W]`` to ``[B,F]``.
        head: the final classification layer ``Linear(F, C)``.
        arch: architecture name, kept for the registry / lineage.
        image_size: H = W the network was built (and trained) for.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear, arch: str, image_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.head_name: str = "head"
        self.arch: str = arch
        self.image_size: int = int(image_size)
        self.in_channels: int = IN_CHANNELS
        self.num_features: int = int(head.in_features)
        self.num_classes: int = int(head.out_features)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features: ``x [B,4,H,W] in [-1,1] -> [B,F]``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: ``x [B,4,H,W] in [-1,1] -> [B,C]``."""
        return self.head(self.features(x))


def _densenet(cfg: TeacherConfig, small: bool) -> tuple[nn.Module, nn.Linear]:
    layout: dict[str, Any] = (
        {
            "init_features": cfg.init_features,
            "growth_rate": cfg.growth_rate,
            "block_config": tuple(cfg.block_config),
        }
        if small
        else _DENSENET121
    )
    net = DenseNet(
        spatial_dims=2,
        in_channels=IN_CHANNELS,
        out_channels=cfg.num_classes,
        dropout_prob=cfg.dropout,
        **layout,
    )
    out = cast(nn.Linear, net.class_layers.out)
    backbone = nn.Sequential(
        net.features,
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
    )
    return backbone, out


def _resnet(cfg: TeacherConfig) -> tuple[nn.Module, nn.Linear]:
    net = ResNet(
        block=cfg.resnet_block,
        layers=list(cfg.resnet_layers),
        block_inplanes=list(cfg.resnet_channels),
        spatial_dims=2,
        n_input_channels=IN_CHANNELS,
        conv1_t_size=3,
        conv1_t_stride=1,
        no_max_pool=True,
        num_classes=cfg.num_classes,
        feed_forward=False,  # no fc: forward returns the pooled, flattened features
    )
    expansion = 4 if cfg.resnet_block == "bottleneck" else 1
    head = nn.Linear(cfg.resnet_channels[-1] * expansion, cfg.num_classes)
    return net, head


def build_teacher(cfg: TeacherConfig, image_size: int) -> TeacherNet:
    """Build an untrained teacher.

    Args:
        cfg: teacher section of the run config (``arch`` selects the network).
        image_size: H = W of the input stack; recorded on the module for contract checks.

    Returns:
        A :class:`TeacherNet` with ``forward``, ``features`` and ``head`` (``head_name="head"``).

    Raises:
        UserError: ``image_size`` too small for the network's downsampling.
    """
    if cfg.arch == "resnet":
        min_size = 2 ** (len(cfg.resnet_layers) - 1)
    else:
        n_blocks = len(cfg.block_config) if cfg.arch == "densenet-small" else 4
        min_size = 4 * 2 ** (n_blocks - 1)  # stem /4, one /2 transition between blocks
    if image_size < min_size:
        raise UserError(
            f"teacher.arch {cfg.arch!r} needs image_size >= {min_size}, got {image_size}"
        )
    if cfg.arch == "resnet":
        backbone, head = _resnet(cfg)
    else:
        backbone, head = _densenet(cfg, small=cfg.arch == "densenet-small")
    return TeacherNet(backbone, head, cfg.arch, image_size)
