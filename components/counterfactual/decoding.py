"""Batched encoding, decoding and scoring of 4-slice stacks.

Every DiffAE call goes through these helpers so that the cost is counted in one place:
one encoder evaluation per slice, and ``steps`` UNet evaluations per slice for each DDIM
inversion or decoding (the count DiME's ~1,800 network evaluations per image is compared
with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from components.counterfactual.protocols import AgentLike, BlackBoxLike, DiffAELike, module_device

__all__ = [
    "NFECount",
    "StackLatents",
    "encode_stacks",
    "inversion_nfe",
    "path_length",
    "decode_stacks",
    "teacher_probabilities",
    "agent_probabilities",
]

N_SLICES = 4


@dataclass
class NFECount:
    """Network evaluations spent on one patient (each counted per slice image).

    Attributes:
        encoder: semantic-encoder evaluations.
        unet: UNet evaluations (DDIM inversion + every decoding, ``steps`` each).
        teacher: teacher forward passes (per 4-slice stack).
        agent: agent forward/backward passes (per latent).
    """

    encoder: int = 0
    unet: int = 0
    teacher: int = 0
    agent: int = 0

    @property
    def diffae(self) -> int:
        """Encoder + UNet evaluations: the figure set beside DiME's ~1,800 per image."""
        return self.encoder + self.unet

    def as_dict(self) -> dict[str, int]:
        """Plain dict with a ``diffae_total`` and a ``per_slice`` figure."""
        return {
            "encoder": self.encoder,
            "unet": self.unet,
            "teacher": self.teacher,
            "agent": self.agent,
            "diffae_total": self.diffae,
            "diffae_per_slice": self.diffae // N_SLICES,
        }


@dataclass
class StackLatents:
    """Encoded patients.

    Attributes:
        original: ``[N,4,H,W]`` in [-1,1], the query stacks.
        recon: ``[N,4,H,W]`` in [-1,1], ``I'_q = D(q)`` decoded from the inverted ``x_T``.
        x_T: ``[N,4,H,W]``, stochastic codes per slice.
        q: ``[N,4*Z]``, concatenated semantic latents.
        nfe: one :class:`NFECount` per patient.
    """

    original: Tensor
    recon: Tensor
    x_T: Tensor
    q: Tensor
    nfe: list[NFECount] = field(default_factory=list)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, max(1, size))]


def path_length(steps: int, depth: float = 1.0) -> int:
    """UNet evaluations of one decoding with ``steps`` DDIM steps at ``depth``: ``ceil(depth*steps)``
    (the same rule as :func:`components.diffusion.ddim.ddim_path`)."""
    if not 0.0 < depth <= 1.0:
        raise ValueError(f"depth must be in (0, 1], got {depth}")
    return max(1, math.ceil(depth * steps - 1e-9))


def inversion_nfe(model: DiffAELike, steps: int, depth: float = 1.0) -> NFECount:
    """Cost of encoding, inverting and reconstructing one patient's 4 slices.

    4 encoder evaluations; per slice ``(1 + k) * L`` UNet evaluations for the inversion
    (``k`` = the model's fixed-point refinements per step, 0 when it has no config;
    ``L`` = :func:`path_length`) and ``L`` for the reconstruction.
    """
    k = int(getattr(getattr(model, "config", None), "inversion_fixed_point_iters", 0) or 0)
    return NFECount(encoder=N_SLICES, unet=(2 + k) * N_SLICES * path_length(steps, depth))


@torch.no_grad()
def encode_stacks(
    model: DiffAELike,
    x: Tensor,
    steps: int,
    batch_size: int,
    precomputed: tuple[Tensor, Tensor, Tensor] | None = None,
    depth: float = 1.0,
) -> StackLatents:
    """Encode, invert and reconstruct patients with ``model.reconstruct_stack``.

    Args:
        model: the DiffAE.
        x: ``[N,4,H,W]`` in [-1,1]; not modified.
        steps: DDIM steps for inversion and decoding.
        batch_size: slices per call (``batch_size // 4`` patients, at least one).
        precomputed: ``(recon [N,4,H,W], x_T [N,4,H,W], q [N,4Z])`` of these very stacks from
            an earlier ``reconstruct_stack`` with the same model and ``steps`` (e.g. the
            reconstruction gate's cache); used instead of recomputing. Their cost is still
            counted, once, in the NFE of each patient.
        depth: fraction of the DDIM path inverted and decoded (``x_T`` is then ``x_{t0}``).

    Returns:
        :class:`StackLatents` on the model's device; NFE per patient as :func:`inversion_nfe`.
    """
    device = module_device(model)
    if precomputed is not None:
        recon, x_t, q = (torch.as_tensor(t, dtype=torch.float32).to(device) for t in precomputed)
        if recon.shape != x.shape or x_t.shape != x.shape or q.shape[0] != x.shape[0]:
            raise ValueError(f"precomputed reconstructions {list(recon.shape)} / {list(x_t.shape)} / "
                             f"{list(q.shape)} do not match the stacks {list(x.shape)}")
        recons, codes, latents = [recon], [x_t], [q]
    else:
        per_call = max(1, batch_size // N_SLICES)
        recons, codes, latents = [], [], []
        for part in _chunks(x.shape[0], per_call):
            recon, x_t, q = model.reconstruct_stack(x[part].to(device), steps, depth=depth)
            recons.append(recon)
            codes.append(x_t)
            latents.append(q)
    nfe = [inversion_nfe(model, steps, depth) for _ in range(x.shape[0])]
    return StackLatents(
        original=x.to(device),
        recon=torch.cat(recons),
        x_T=torch.cat(codes),
        q=torch.cat(latents),
        nfe=nfe,
    )


@torch.no_grad()
def decode_stacks(
    model: DiffAELike, x_T: Tensor, q: Tensor, steps: int, batch_size: int, depth: float = 1.0
) -> Tensor:
    """Decode 4-slice stacks from their stochastic codes and (shifted) latents.

    Slice ``k`` of row ``n`` is rendered from ``x_T[n, k]`` with ``z = q[n, k*Z:(k+1)*Z]``.

    Args:
        model: the DiffAE.
        x_T: ``[M,4,H,W]`` stochastic codes (repeat a patient's code for several latents).
        q: ``[M,4*Z]`` latents.
        steps: DDIM steps.
        batch_size: slices per ``render`` call.
        depth: the codes' depth (as the inversion that made them).

    Returns:
        ``[M,4,H,W]`` in [-1,1] (costs ``4 * path_length(steps, depth)`` UNet evaluations per row).
    """
    m, s, h, w = x_T.shape
    if q.shape[0] != m or q.shape[1] % s:
        raise ValueError(f"q {tuple(q.shape)} does not match x_T {tuple(x_T.shape)}")
    device = module_device(model)
    codes = x_T.reshape(m * s, 1, h, w)
    z = q.reshape(m * s, q.shape[1] // s)
    out = [
        model.render(codes[part].to(device), z[part].to(device), steps, depth=depth)
        for part in _chunks(m * s, batch_size)
    ]
    if not out:
        return x_T.new_zeros((0, s, h, w))
    return torch.cat(out).reshape(m, s, h, w)


@torch.no_grad()
def teacher_probabilities(bb: BlackBoxLike, x: Tensor, batch_size: int) -> Tensor:
    """Softmax of the teacher's logits.

    Args:
        bb: black box, ``[B,4,H,W] in [-1,1] -> logits [B,C]``.
        x: ``[N,4,H,W]`` in [-1,1].
        batch_size: slices per call (``batch_size // 4`` stacks, at least one).

    Returns:
        ``[N,C]`` probabilities on the CPU.
    """
    device = module_device(bb)
    per_call = max(1, batch_size // N_SLICES)
    out = [torch.softmax(bb(x[p].to(device)).float(), dim=1).cpu() for p in _chunks(x.shape[0], per_call)]
    return torch.cat(out) if out else torch.zeros((0, 2))


@torch.no_grad()
def agent_probabilities(agent: AgentLike, q: Tensor) -> Tensor:
    """Softmax of the agent's logits: ``q [N,4Z] -> [N,C]`` on the CPU."""
    device = module_device(agent)
    return torch.softmax(agent(q.to(device)).float(), dim=1).cpu()
