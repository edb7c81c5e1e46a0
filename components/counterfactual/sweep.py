"""Counterfactual generation for a batch of patients (paper §2.3, Eq. 2).

For every patient: encode the 4 slices (``q``), invert each slice to its ``x_T``, reconstruct
``I'_q``; for every class ``i`` shift ``q`` along ``dy'_i/dq`` over the alpha sweep (and along
a random direction of the same size, the control), decode every shifted latent from the same
``x_T``, and score originals, reconstructions and counterfactuals with the teacher.
Indeterminate cases are then pushed to a confident teacher decision by :mod:`.search`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from components.config import CounterfactualConfig
from components.counterfactual.decoding import (
    NFECount,
    agent_probabilities,
    decode_stacks,
    encode_stacks,
    path_length,
    teacher_probabilities,
)
from components.counterfactual.manipulation import agent_gradient, random_directions, shift_latents, step_frame
from components.counterfactual.protocols import AgentLike, BlackBoxLike, DiffAELike
from components.counterfactual.search import AlphaSearch, AlphaSearchResult, run_searches

__all__ = ["SweepResult", "run_sweep", "is_indeterminate", "inversion_rows"]


def inversion_rows(inversions: Sequence[ArrayLike], idx: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Rows ``idx`` of stored ``(recon, x_T, q)`` as tensors: :func:`run_sweep`'s ``precomputed``."""
    recon, x_t, q = (torch.as_tensor(np.asarray(a)[idx]) for a in inversions)
    return recon, x_t, q


@dataclass
class SweepResult:
    """Counterfactual sweep over N patients, D = C target classes, A alphas.

    Direction ``d`` means "increase the agent's score of class d" (``q_{d+}``; for two
    classes ``q_{0+}`` and ``q_{1-}`` coincide). Images are float32 in [-1,1].

    Attributes:
        alphas: ``[A]`` step sizes (fractions of ``||q||`` when normalized).
        original: ``[N,4,H,W]`` query stacks.
        recon: ``[N,4,H,W]`` reconstructions ``I'_q``.
        q: ``[N,4Z]`` latents.
        counterfactuals: ``[N,D,A,4,H,W]``.
        teacher_original / teacher_recon: ``[N,C]`` teacher probabilities.
        teacher_cf: ``[N,D,A,C]``.
        agent_q: ``[N,C]`` agent probabilities at ``q``.
        agent_cf: ``[N,D,A,C]``.
        random_cf, teacher_random, agent_random: the random-direction control (shapes as the
            counterfactual arrays with ``A_r`` alphas) or ``None`` when disabled.
        random_alphas: ``[A_r]`` the control's step sizes (all of ``alphas`` or the largest),
            ``None`` when disabled.
        indeterminate: ``[N]`` bool, reconstruction's teacher probability within the band.
        searches: per patient, ``{class: AlphaSearchResult}`` (empty when determinate).
        nfe: per patient :class:`NFECount`.
    """

    alphas: np.ndarray
    original: np.ndarray
    recon: np.ndarray
    q: np.ndarray
    counterfactuals: np.ndarray
    teacher_original: np.ndarray
    teacher_recon: np.ndarray
    teacher_cf: np.ndarray
    agent_q: np.ndarray
    agent_cf: np.ndarray
    random_cf: np.ndarray | None
    teacher_random: np.ndarray | None
    agent_random: np.ndarray | None
    indeterminate: np.ndarray
    searches: list[dict[int, AlphaSearchResult]]
    nfe: list[NFECount]
    random_alphas: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes C (= number of directions D)."""
        return int(self.teacher_recon.shape[1])


def is_indeterminate(probs: np.ndarray, band: float) -> np.ndarray:
    """``[N,C]`` probabilities -> ``[N]`` bool: top probability within ``band`` of 0.5."""
    return np.asarray(probs).max(axis=1) <= 0.5 + band


def _np(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def run_sweep(
    model: DiffAELike,
    agent: AgentLike,
    bb: BlackBoxLike,
    x: Tensor,
    cfg: CounterfactualConfig,
    search: bool = True,
    precomputed: tuple[Tensor, Tensor, Tensor] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Generate and score counterfactuals for a batch of patients.

    Args:
        model: DiffAE (eval mode).
        agent: agent on latents, ``[B,4Z] -> [B,C]``.
        bb: teacher, ``[B,4,H,W] -> [B,C]`` (eval mode).
        x: ``[N,4,H,W]`` in [-1,1]; not modified.
        cfg: alphas, direction normalisation, step space, DDIM steps, batch size, random
            control, search. With a standardising agent (``step_space`` auto) the step, its
            normalisation and the random control live in the agent's standardised coordinates.
        search: run the bounded alpha search on indeterminate cases (when
            ``cfg.search_max_evals > 0``).
        precomputed: ``(recon, x_T, q)`` of ``x`` from an earlier inversion with the same
            model and ``cfg.ddim_steps`` (see :func:`.decoding.encode_stacks`).
        progress: optional callback, one line per phase and per search round.

    Returns:
        :class:`SweepResult`.
    """
    steps, bs, depth = cfg.ddim_step_count, cfg.batch_size, cfg.ddim_depth
    path = path_length(steps, depth)
    say = progress or (lambda _msg: None)
    say(f"{'reusing' if precomputed is not None else 'computing'} DDIM inversions of {x.shape[0]} cases")
    lat = encode_stacks(model, x, steps, bs, precomputed, depth=depth)
    n = lat.q.shape[0]
    alphas = torch.tensor(cfg.alphas, dtype=torch.float32)
    gen = torch.Generator().manual_seed(cfg.seed)

    t_orig = teacher_probabilities(bb, lat.original, bs)
    t_recon = teacher_probabilities(bb, lat.recon, bs)
    a_q = agent_probabilities(agent, lat.q)
    n_cls = a_q.shape[1]
    to_step, to_latent = step_frame(agent, cfg.step_space)
    with torch.no_grad():
        u = to_step(lat.q)
    grads = [agent_gradient(agent, u, d, cfg.agent_score, to_latent) for d in range(n_cls)]

    @torch.no_grad()
    def shifted(directions: list[Tensor], steps_at: Tensor) -> Tensor:  # -> [N,D,A',4Z] latents
        return torch.stack(
            [to_latent(shift_latents(u, g, steps_at, cfg.normalized_direction)) for g in directions], dim=1
        )

    # the random control at every alpha, or only at the largest (its flips are "any alpha",
    # which the largest step decides in practice; issue #13 measured the difference)
    r_alphas = alphas if cfg.random_control_alphas == "all" else alphas[-1:]
    groups = [shifted(grads, alphas)]
    if cfg.random_control:
        rand = [random_directions(u, gen) * g.norm(dim=1, keepdim=True) for g in grads]
        groups.append(shifted(rand, r_alphas))
    flat = [grp.reshape(n, -1, grp.shape[-1]) for grp in groups]  # [N, D*A', 4Z] each
    q_all = torch.cat(flat, dim=1)
    rows = q_all.shape[1]
    say(f"sweep: decoding {n} cases x {rows} (direction, alpha) stacks, {path} DDIM steps each")
    x_t_rep = lat.x_T[:, None].expand(n, rows, *lat.x_T.shape[1:]).reshape(n * rows, *lat.x_T.shape[1:])
    imgs_all = decode_stacks(model, x_t_rep, q_all.reshape(n * rows, -1), steps, bs, depth=depth)
    probs_t_all = teacher_probabilities(bb, imgs_all, bs).reshape(n, rows, n_cls)
    probs_a_all = agent_probabilities(agent, q_all.reshape(n * rows, -1)).reshape(n, rows, n_cls)
    imgs_all = imgs_all.reshape(n, rows, *imgs_all.shape[1:])

    def split(t: Tensor) -> list[Tensor]:  # rows -> one [N,D,A',...] per group
        sizes = [f.shape[1] for f in flat]
        return [part.reshape(n, n_cls, -1, *t.shape[2:]) for part in torch.split(t, sizes, dim=1)]

    imgs_g, probs_t_g, probs_a_g = split(imgs_all), split(probs_t_all), split(probs_a_all)
    probs_t = probs_t_g[0]

    for c in lat.nfe:
        c.unet += rows * 4 * path
        c.teacher += 2 + rows
        c.agent += 1 + n_cls + rows

    indet = is_indeterminate(_np(t_recon), cfg.indeterminate_band)
    searches: list[dict[int, AlphaSearchResult]] = [{} for _ in range(n)]
    if search and cfg.search_max_evals > 0 and indet.any():
        jobs = [(i, d) for i in np.flatnonzero(indet) for d in range(n_cls)]
        sweep_t = _np(probs_t)
        state = [  # each search starts from the sweep's teacher probabilities on its direction
            AlphaSearch(cfg.target_confidence, cfg.search_alpha_start, cfg.alpha_cap,
                        cfg.search_max_evals, cfg.search_rel_tol,
                        prior=list(zip(cfg.alphas, sweep_t[i, d, :, d].tolist())))
            for i, d in jobs
        ]

        rounds = [0]

        def evaluate(active: list[int], alpha_values: np.ndarray) -> np.ndarray:
            rounds[0] += 1
            say(f"alpha search round {rounds[0]}: {len(active)} of {len(jobs)} searches still running")
            idx = [jobs[k] for k in active]
            with torch.no_grad():
                q_rows = to_latent(torch.cat([
                    shift_latents(u[i : i + 1], grads[d][i : i + 1],
                                  torch.tensor([a], dtype=torch.float32), cfg.normalized_direction)[:, 0]
                    for (i, d), a in zip(idx, alpha_values)
                ]))
            cand = decode_stacks(model, lat.x_T[[i for i, _ in idx]], q_rows, steps, bs, depth=depth)
            p = teacher_probabilities(bb, cand, bs)
            for i, _ in idx:
                lat.nfe[i].unet += 4 * path
                lat.nfe[i].teacher += 1
            return np.array([p[k, d].item() for k, (_, d) in enumerate(idx)])

        for (i, d), res in zip(jobs, run_searches(state, evaluate)):
            searches[i][d] = res

    rnd = cfg.random_control
    return SweepResult(
        alphas=np.asarray(cfg.alphas, dtype=np.float64),
        original=_np(lat.original),
        recon=_np(lat.recon),
        q=_np(lat.q),
        counterfactuals=_np(imgs_g[0]),
        teacher_original=_np(t_orig),
        teacher_recon=_np(t_recon),
        teacher_cf=_np(probs_t_g[0]),
        agent_q=_np(a_q),
        agent_cf=_np(probs_a_g[0]),
        random_cf=_np(imgs_g[1]) if rnd else None,
        teacher_random=_np(probs_t_g[1]) if rnd else None,
        agent_random=_np(probs_a_g[1]) if rnd else None,
        random_alphas=np.asarray(cfg.alphas if cfg.random_control_alphas == "all" else cfg.alphas[-1:],
                                 dtype=np.float64) if rnd else None,
        indeterminate=indet,
        searches=searches,
        nfe=lat.nfe,
    )
