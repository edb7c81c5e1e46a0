"""Diffusion autoencoder (Preechakul et al. 2022) as used by DiffExplainer (paper §2.1).

``E`` maps a slice to ``z``; the conditional UNet ``D_θ(x_t, t, z)`` predicts noise; DDIM
(:mod:`components.diffusion`) decodes ``(x_T, z) -> x_0`` and inverts ``x_0 -> x_T``.
A patient is a 4-slice stack ``[B,4,H,W]``; every slice is encoded / inverted / decoded on
its own with the shared networks, and the 4 codes are concatenated in slice order into
``q ∈ R^{4·Z}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.config import DiffAEConfig
from components.diffusion.ddim import ddim_invert, ddim_sample
from components.diffusion.schedule import NoiseSchedule, make_schedule
from components.models.encoder import SemanticEncoder
from components.models.unet import ConditionalUNet

__all__ = ["DiffAE", "build_diffae", "save_diffae", "load_diffae"]

FORMAT_VERSION = 1


class DiffAE(nn.Module):
    """Semantic encoder + conditional UNet + noise schedule.

    Args:
        encoder: ``[B,1,H,W] -> [B,Z]``.
        unet: ``(x_t [B,1,H,W], t [B], z [B,Z]) -> ε [B,1,H,W]``.
        schedule: training noise schedule.
        config: the :class:`DiffAEConfig` the networks were built from (kept for saving).
    """

    def __init__(
        self,
        encoder: SemanticEncoder,
        unet: ConditionalUNet,
        schedule: NoiseSchedule,
        config: DiffAEConfig | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.unet = unet
        self.schedule = schedule
        self.config = config

    @property
    def z_dim(self) -> int:
        """Z, the size of one slice's semantic code."""
        return self.encoder.z_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _eps(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, z)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``ε = D_θ(x_t, t, z)``; shapes as in :class:`ConditionalUNet`."""
        return self.unet(x_t, t, z)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Semantic code of single slices: ``x: [B,1,H,W] in [-1,1] -> z: [B,Z]``."""
        return self.encoder(x)

    @torch.no_grad()
    def encode_stack(self, x: torch.Tensor) -> torch.Tensor:
        """Patient code ``q``: ``x: [B,4,H,W] in [-1,1] -> q: [B,4·Z]`` (slice order kept)."""
        b, s, h, w = x.shape
        return self.encode(x.reshape(b * s, 1, h, w)).reshape(b, s * self.z_dim)

    @torch.no_grad()
    def invert(
        self, x0: torch.Tensor, z: torch.Tensor, steps: int, fixed_point_iters: int | None = None,
        depth: float = 1.0,
    ) -> torch.Tensor:
        """DDIM inversion ("stochastic encoding"): ``x0: [B,1,H,W] in [-1,1], z: [B,Z] -> x_T: [B,1,H,W]``.

        ``fixed_point_iters`` defaults to ``config.inversion_fixed_point_iters``; ``depth < 1``
        stops part-way (see :func:`components.diffusion.ddim.ddim_invert`).
        """
        if fixed_point_iters is None:
            fixed_point_iters = self.config.inversion_fixed_point_iters if self.config is not None else 0
        return ddim_invert(self._eps, x0, z, self.schedule, steps, fixed_point_iters, depth=depth)

    @torch.no_grad()
    def render(self, x_T: torch.Tensor, z: torch.Tensor, steps: int, depth: float = 1.0) -> torch.Tensor:
        """DDIM decoding: ``x_T: [B,1,H,W], z: [B,Z] -> x0: [B,1,H,W]`` clamped to [-1, 1]
        (``depth`` as in :func:`components.diffusion.ddim.ddim_sample`)."""
        return ddim_sample(self._eps, x_T, z, self.schedule, steps, depth=depth).clamp(-1.0, 1.0)

    @torch.no_grad()
    def reconstruct_stack(
        self, x: torch.Tensor, steps: int, depth: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, invert and decode every slice of a batch of stacks in one batch of ``B·4``.

        Args:
            x: ``[B,4,H,W]`` in [-1, 1].
            steps: DDIM steps for inversion and for decoding.
            depth: fraction of the DDIM path inverted and decoded (1 = to ``x_T``).

        Returns:
            ``(recon [B,4,H,W] in [-1,1], x_T [B,4,H,W], q [B,4·Z])``.
        """
        b, s, h, w = x.shape
        flat = x.reshape(b * s, 1, h, w)
        z = self.encode(flat)
        x_T = self.invert(flat, z, steps, depth=depth)
        recon = self.render(x_T, z, steps, depth=depth)
        return recon.reshape(b, s, h, w), x_T.reshape(b, s, h, w), z.reshape(b, s * self.z_dim)


def build_diffae(cfg: DiffAEConfig) -> DiffAE:
    """A freshly initialised :class:`DiffAE` sized by ``cfg`` (weights from the global RNG)."""
    encoder = SemanticEncoder(cfg.image_size, cfg.encoder_channels, cfg.z_dim)
    unet = ConditionalUNet(
        image_size=cfg.image_size,
        base_channels=cfg.base_channels,
        channel_mults=tuple(cfg.channel_mults),
        num_res_blocks=cfg.num_res_blocks,
        attention_resolutions=tuple(cfg.attention_resolutions),
        z_dim=cfg.z_dim,
    )
    return DiffAE(encoder, unet, make_schedule(cfg.beta_schedule, cfg.timesteps), cfg)


def save_diffae(model: DiffAE, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write config + weights as a plain dict (``torch.load(weights_only=True)`` can read it).

    Args:
        model: a model built by :func:`build_diffae` (its ``config`` is stored).
        path: output file.
        extra: JSON-like metadata (metrics, dataset hash, ...) stored under ``"extra"``.

    Returns:
        ``path`` as a :class:`Path`.
    """
    if model.config is None:
        raise ValueError("save_diffae needs a model built from a DiffAEConfig")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {"format": "diffexplainer-diffae", "version": FORMAT_VERSION,
         "config": model.config.model_dump(mode="json"), "state_dict": state, "extra": dict(extra or {})},
        path,
    )
    return path


def load_diffae(path: str | Path, map_location: str | torch.device = "cpu") -> DiffAE:
    """Load a model written by :func:`save_diffae` (no pickled classes are needed).

    Args:
        path: file written by :func:`save_diffae`.
        map_location: device for the weights.

    Returns:
        The :class:`DiffAE` in eval mode; ``model.extra`` holds the stored metadata.
    """
    blob = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != "diffexplainer-diffae":
        raise ValueError(f"{path}: not a DiffAE checkpoint written by save_diffae")
    model = build_diffae(DiffAEConfig.model_validate(blob["config"]))
    model.load_state_dict(blob["state_dict"])
    model.extra = blob.get("extra", {})
    return model.eval()
