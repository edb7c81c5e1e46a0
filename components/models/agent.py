"""The agent: a linear stand-in for the black box on DiffAE latents (paper §2.2, §3.3).

``q = concat(z_1..z_4) [B,2048]`` → optional standardisation ``(q - mean) / std`` (buffers,
saved with the model) → ``Linear(2048 → F)`` (trainable) → head ``Linear(F → C)``.

- feature mode: ``F`` = the teacher's feature width and the head is a frozen copy of the
  teacher's classification layer, so the agent's logits are the teacher's head applied to
  predicted teacher features;
- output mode (black box without features / head): ``F = C`` and the head starts as the
  identity and is trainable.

The saved file holds only tensors, strings and numbers (``torch.load(weights_only=True)``
reads it), so no pickled classes are needed to load an agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["Agent", "save_agent", "load_agent"]

Mode = Literal["feature", "output"]


class Agent(nn.Module):
    """Linear agent ``q [B,D] -> logits [B,C]``.

    Args:
        latent_dim: D, the length of ``q`` (4 slices × 512 = 2048).
        feature_dim: F, the teacher's feature width (feature mode) or C (output mode).
        num_classes: C.
        mode: ``"feature"`` (frozen teacher head) or ``"output"`` (trainable head).
        normalize: standardise ``q`` with the ``latent_mean`` / ``latent_std`` buffers.
        head: the teacher's ``nn.Linear(F, C)`` to copy in (feature mode); None keeps a
            fresh head (identity when ``F == C``).
    """

    latent_mean: torch.Tensor  # buffers (register_buffer), typed for the checker
    latent_std: torch.Tensor

    def __init__(
        self,
        latent_dim: int = 2048,
        feature_dim: int = 1024,
        num_classes: int = 2,
        mode: Mode = "feature",
        normalize: bool = True,
        head: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("feature", "output"):
            raise ValueError(f"mode must be 'feature' or 'output', got {mode!r}")
        self.latent_dim = int(latent_dim)
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)
        self.mode: Mode = mode
        self.normalize = bool(normalize)
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))
        self.linear = nn.Linear(latent_dim, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)
        with torch.no_grad():
            if head is not None:
                if (head.in_features, head.out_features) != (feature_dim, num_classes):
                    raise ValueError(
                        f"head is Linear({head.in_features},{head.out_features}), "
                        f"expected Linear({feature_dim},{num_classes})"
                    )
                self.head.weight.copy_(head.weight)
                self.head.bias.copy_(head.bias if head.bias is not None else torch.zeros(num_classes))
            elif feature_dim == num_classes:
                self.head.weight.copy_(torch.eye(num_classes))
                self.head.bias.zero_()
        self.head.requires_grad_(mode == "output")

    def config(self) -> dict[str, Any]:
        """Constructor arguments (enough to rebuild the module)."""
        return {
            "latent_dim": self.latent_dim,
            "feature_dim": self.feature_dim,
            "num_classes": self.num_classes,
            "mode": self.mode,
            "normalize": self.normalize,
        }

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-6) -> None:
        """Set the latent statistics ``mean, std [D]`` (std is clamped to >= eps)."""
        with torch.no_grad():
            self.latent_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.latent_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(eps))

    def normalize_latents(self, q: torch.Tensor) -> torch.Tensor:
        """``q [B,D] -> (q - mean) / std`` (identity when ``normalize`` is off)."""
        return (q - self.latent_mean) / self.latent_std if self.normalize else q

    def denormalize_latents(self, u: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_latents`: standardised ``u [B,D] -> q [B,D]``."""
        return u * self.latent_std + self.latent_mean if self.normalize else u

    def features_from_normalized(self, u: torch.Tensor) -> torch.Tensor:
        """Predicted teacher features ``[B,F]`` from standardised latents ``u [B,D]``."""
        return self.linear(u)

    def features(self, q: torch.Tensor) -> torch.Tensor:
        """Predicted teacher features ``[B,F]`` (feature mode) / pre-head outputs (output mode)."""
        return self.linear(self.normalize_latents(q))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """Logits ``[B,C]`` of latents ``q [B,D]``."""
        return self.head(self.features(q))


def save_agent(agent: Agent, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``{"format", "config", "state_dict", "extra"}`` to ``path`` with ``torch.save``.

    ``extra`` may hold plain metadata (strings, numbers, lists, dicts), e.g. the black box's
    content hash and the objective.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "diffexplainer-agent/1",
        "config": agent.config(),
        "state_dict": {k: v.detach().cpu() for k, v in agent.state_dict().items()},
        "extra": dict(extra or {}),
    }
    torch.save(payload, path)
    return path


def load_agent(path: str | Path) -> tuple[Agent, dict[str, Any]]:
    """Read an agent written by :func:`save_agent`; returns ``(agent in eval mode, extra)``."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "diffexplainer-agent/1":
        raise ValueError(f"{path}: not a diffexplainer agent file")
    agent = Agent(**payload["config"])
    agent.load_state_dict(payload["state_dict"])
    return agent.eval(), payload.get("extra", {})
