"""Tiny stand-ins for the DiffAE, the agent and the teacher (shared by the counterfactual and
report tests).

* :class:`TinyDiffAE`: linear encoder; ``render(x_T, z) = x_T + P z`` is linear in z and
  ``invert`` is its exact inverse, so reconstruction is lossless.
* :class:`TinyTeacher`: a 1x1 conv (Grad-CAM has a spatial layer) followed by a fixed weight
  map ``w``: ``logit_1 - logit_0 = scale * <conv(x), w> + bias``; its input gradient is
  ``scale * w``.
* :func:`aligned_agent`: the linear agent whose logits equal the teacher's change through
  ``render``: ``dy'/dq`` is exactly the direction that moves the teacher.
* :class:`NoGradBlackBox`: a black-box wrapper that scores under ``no_grad`` and exposes the
  module as ``.module``, like ``components/blackbox.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

SIZE = 16
Z = 8


class TinyDiffAE(nn.Module):
    """DiffAE-like module on ``[B,4,SIZE,SIZE]`` stacks with ``Z``-dim slice latents."""

    basis: Tensor  # registered buffer

    def __init__(self, size: int = SIZE, z_dim: int = Z, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.size, self.z_dim = size, z_dim
        self.enc = nn.Linear(size * size, z_dim, bias=False)
        with torch.no_grad():
            self.enc.weight.copy_(torch.randn(z_dim, size * size, generator=g) / size)
        self.register_buffer("basis", torch.randn(z_dim, size * size, generator=g) * 0.1)
        self.calls = {"encode": 0, "invert": 0, "render": 0}

    def pattern(self, z: Tensor) -> Tensor:
        """``z [B,Z] -> [B,1,H,W]``, the latent's image component."""
        return (z @ self.basis).view(-1, 1, self.size, self.size)

    def encode_stack(self, x: Tensor) -> Tensor:
        self.calls["encode"] += x.shape[0] * x.shape[1]
        return self.enc(x.flatten(2)).flatten(1)

    def invert(self, x0: Tensor, z: Tensor, steps: int, depth: float = 1.0) -> Tensor:
        self.calls["invert"] += x0.shape[0]
        return x0 - self.pattern(z)

    def render(self, x_T: Tensor, z: Tensor, steps: int, depth: float = 1.0) -> Tensor:
        self.calls["render"] += x_T.shape[0]
        return x_T + self.pattern(z)

    def reconstruct_stack(self, x: Tensor, steps: int, depth: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        b, s, h, w = x.shape
        q = self.encode_stack(x)
        z = q.view(b * s, self.z_dim)
        x_t = self.invert(x.reshape(b * s, 1, h, w), z, steps)
        recon = self.render(x_t, z, steps)
        return recon.view(b, s, h, w), x_t.view(b, s, h, w), q


class TinyTeacher(nn.Module):
    """``logits = [-d/2, d/2]``, ``d = scale * <conv1x1(x), w> + bias``."""

    # a registered buffer, declared for mypy only: torch.jit.script (the tests script this module)
    # cannot resolve a postponed class annotation
    if TYPE_CHECKING:
        w: Tensor

    def __init__(self, weight_map: Tensor, scale: float = 1.0, bias: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        self.register_buffer("w", weight_map.float().clone())
        self.scale, self.bias = scale, bias

    def margin(self, x: Tensor) -> Tensor:
        return self.scale * (self.conv(x) * self.w).sum(dim=(1, 2, 3)) + self.bias

    def forward(self, x: Tensor) -> Tensor:
        d = self.margin(x)
        return torch.stack([-d / 2, d / 2], dim=1)


class NoGradBlackBox:
    """Black-box wrapper: scores without gradients; ``.module`` is the network."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module.eval()

    def __call__(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.module(x)


def aligned_agent(model: TinyDiffAE, teacher: TinyTeacher) -> nn.Linear:
    """Linear agent ``q -> [-a/2, a/2]`` with ``a`` = the teacher's margin change via render."""
    w = teacher.w.view(4, -1)  # [4, H*W]
    per_slice = (model.basis @ w.T).T * teacher.scale  # [4, Z]: d margin / d z_k
    row = per_slice.reshape(-1)
    agent = nn.Linear(row.numel(), 2)
    with torch.no_grad():
        agent.weight.copy_(torch.stack([-row / 2, row / 2]))
        agent.bias.zero_()
    return agent


def lesion_map(size: int = SIZE) -> Tensor:
    """``[4,H,W]`` planted lesion: a 4x4 square in slices 1 and 2."""
    m = torch.zeros(4, size, size)
    m[1:3, 4:8, 4:8] = 1.0
    return m


def lung_map(size: int = SIZE) -> Tensor:
    """``[4,H,W]`` lungs: the central 12x12 square of every slice."""
    m = torch.zeros(4, size, size, dtype=torch.uint8)
    m[:, 2:14, 2:14] = 1
    return m


def cohort(n: int = 6, size: int = SIZE, seed: int = 0) -> Tensor:
    """``[n,4,H,W]`` random stacks in [-0.5, 0.5]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 4, size, size, generator=g) - 0.5


def calibrated(model: TinyDiffAE, weight_map: Tensor, x: Tensor, scale: float = 1.0) -> TinyTeacher:
    """Teacher whose bias puts the cohort's mean margin at 0 (borderline cases)."""
    t = TinyTeacher(weight_map, scale)
    with torch.no_grad():
        t.bias = -float(t.margin(x).mean())
    return t.eval()


class StandardizingAgent(nn.Module):
    """Agent that standardises its input like ``components/models/agent.py``:
    ``logits = W (q - mean) / std``; exposes ``normalize_latents`` / ``denormalize_latents``."""

    latent_mean: Tensor  # registered buffers
    latent_std: Tensor

    def __init__(self, dim: int, std: Tensor, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.normalize = True
        self.register_buffer("latent_mean", torch.randn(dim, generator=g))
        self.register_buffer("latent_std", std.float().clone())
        self.linear = nn.Linear(dim, 2)

    def normalize_latents(self, q: Tensor) -> Tensor:
        return (q - self.latent_mean) / self.latent_std

    def denormalize_latents(self, u: Tensor) -> Tensor:
        return u * self.latent_std + self.latent_mean

    def forward(self, q: Tensor) -> Tensor:
        return self.linear(self.normalize_latents(q))


def make_standins(n: int = 6) -> tuple[TinyDiffAE, nn.Linear, NoGradBlackBox, Tensor]:
    """``(diffae, agent, black_box, x [n,4,16,16])``: a borderline cohort, an aligned agent."""
    model = TinyDiffAE()
    x = cohort(n)
    teacher = calibrated(model, lesion_map(), x)
    return model, aligned_agent(model, teacher), NoGradBlackBox(teacher), x
