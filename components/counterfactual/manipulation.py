"""Latent manipulation of paper Eq. 2: ``q_{i+-} = q +- alpha * dy'_i/dq``.

Where the agent standardises its input (``u = (q - mean) / std``), stepping along
``dy'/dq`` divides by ``std`` and produced off-manifold edits (DESIGN.md §5a); the step is then
taken in the standardised coordinates ``u`` instead (:func:`step_frame`) and mapped back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from components.counterfactual.protocols import AgentLike, module_device
from components.errors import UserError

__all__ = ["agent_gradient", "random_directions", "shift_latents", "step_frame"]

Frame = tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]


def _identity(t: Tensor) -> Tensor:
    return t


def step_frame(agent: AgentLike, space: Literal["auto", "latent", "standardized"] = "auto") -> Frame:
    """Coordinates the latent step is taken in: ``(to_step, to_latent)`` maps.

    Args:
        agent: the agent; standardised stepping needs ``normalize_latents`` /
            ``denormalize_latents`` (and ``normalize`` not False).
        space: ``"latent"`` (plain q), ``"standardized"`` (the agent's u), or ``"auto"``
            (standardised when the agent standardises its input).

    Returns:
        ``(q -> u, u -> q)``; identities for the latent space.

    Raises:
        UserError: ``"standardized"`` requested but the agent has no standardisation.
    """
    has = callable(getattr(agent, "normalize_latents", None)) and callable(
        getattr(agent, "denormalize_latents", None)
    )
    active = has and bool(getattr(agent, "normalize", True))
    if space == "latent" or (space == "auto" and not active):
        return _identity, _identity
    if not has:
        raise UserError("counterfactual.step_space 'standardized' needs an agent with normalize_latents()")
    return agent.normalize_latents, agent.denormalize_latents  # type: ignore[attr-defined]  # checked above

_EPS = 1e-12


def agent_gradient(
    agent: AgentLike,
    q: Tensor,
    target_class: int,
    score: Literal["probability", "logit"] = "probability",
    to_latent: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """``dy'_i/dq`` for every row of ``q`` (or ``dy'_i/du`` in step coordinates ``u``).

    With ``score="probability"``, ``y'_i`` is the agent's softmax probability and the gradient
    is computed in the exact factored form
    ``dp_i/dq = p_i (1 - p_i) * d(l_i - sum_{j != i} w_j l_j)/dq`` with ``w`` the softmax over
    the other classes' logits (held fixed), so that its direction survives saturated logits;
    where ``p_i (1 - p_i)`` underflows, that direction is kept with a tiny norm.

    Args:
        agent: ``q [B,4Z] -> logits [B,C]``, differentiable.
        q: ``[B,4Z]`` latents; not modified.
        target_class: class index ``i``.
        score: ``"probability"`` or ``"logit"``.
        to_latent: map from the coordinates ``q`` is given in to the agent's input (the second
            map of :func:`step_frame`); None = identity.

    Returns:
        ``[B,4Z]`` gradient, detached, on ``q``'s device.
    """
    device = module_device(agent)
    q_var = q.detach().to(device).clone().requires_grad_(True)
    with torch.enable_grad():
        logits = agent(q_var if to_latent is None else to_latent(q_var)).float()
        i = target_class
        if score == "logit":
            target = logits[:, i]
        else:
            others = logits.detach().clone()
            others[:, i] = float("-inf")
            weights = torch.softmax(others, dim=1)  # w_j over j != i, w_i = 0
            target = logits[:, i] - (weights * logits).sum(dim=1)
        (grad,) = torch.autograd.grad(target.sum(), q_var)
    if score == "probability":
        log_all = torch.logsumexp(logits.detach(), dim=1)
        log_p = logits.detach()[:, i] - log_all
        log_not_p = torch.logsumexp(others, dim=1) - log_all
        scale = torch.exp(log_p + log_not_p)[:, None]  # p_i (1 - p_i)
        grad = torch.where(scale > 0, grad * scale, grad * _EPS)
    return grad.detach().to(q.device)


def random_directions(like: Tensor, generator: torch.Generator) -> Tensor:
    """Random unit directions in latent space, one per row.

    Args:
        like: ``[B,D]`` tensor giving shape, dtype and device.
        generator: seeded CPU generator.

    Returns:
        ``[B,D]`` rows of unit L2 norm.
    """
    return _unit(torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like))


def _unit(d: Tensor) -> Tensor:
    """Rows scaled to unit norm; tiny (even subnormal) rows keep their direction, zero rows stay 0."""
    peak = d.abs().amax(dim=1, keepdim=True)
    d = torch.where(peak > 0, d / torch.where(peak > 0, peak, torch.ones_like(peak)), d)
    norm = d.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, d / torch.where(norm > 0, norm, torch.ones_like(norm)), d)


def shift_latents(q: Tensor, direction: Tensor, alphas: Tensor, normalized: bool) -> Tensor:
    """Shifted latents ``q + alpha * step(direction)`` for every alpha.

    Args:
        q: ``[B,D]`` latents.
        direction: ``[B,D]`` (e.g. ``dy'_i/dq``; negate it for ``q_{i-}``).
        alphas: ``[A]`` step sizes.
        normalized: step ``alpha * ||q|| * direction / ||direction||`` (alpha is a fraction
            of the latent norm); otherwise ``alpha * direction``.

    Returns:
        ``[B,A,D]``; alpha 0 returns ``q``.
    """
    step = direction
    if normalized:
        step = _unit(direction) * q.norm(dim=1, keepdim=True)
    alphas = alphas.to(q)
    return q[:, None, :] + alphas[None, :, None] * step[:, None, :]
