"""Report figures (matplotlib, Agg backend), each saved as a PNG.

* :func:`plot_case_panel`: original, reconstruction and the alpha sweep toward each class;
* :func:`plot_heatmaps`: counterfactual - reconstruction per slice, red = added, blue = removed;
* :func:`plot_score_curve`: teacher (and agent) probability of the target class vs alpha,
  beside the random-direction control;
* :func:`plot_localization`: AUROC / pointing game / relevance mass per method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

from components.counterfactual.heatmap import CMAP, difference, overlay_difference, symmetric_limit  # noqa: E402

__all__ = ["plot_case_panel", "plot_heatmaps", "plot_score_curve", "plot_localization", "plot_reconstructions"]


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _grey(ax: plt.Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)


def plot_case_panel(
    original: np.ndarray,
    recon: np.ndarray,
    counterfactuals: np.ndarray,
    alphas: Sequence[float] | np.ndarray,
    path: str | Path,
    teacher_cf: np.ndarray | None = None,
    teacher_recon: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Original, reconstruction and the sweep toward each class, one row per slice.

    Args:
        original: ``[4,H,W]`` in [-1,1].
        recon: ``[4,H,W]`` in [-1,1].
        counterfactuals: ``[D,A,4,H,W]``, direction d = toward class d.
        alphas: the ``A`` step sizes.
        path: PNG to write.
        teacher_cf: ``[D,A,C]`` teacher probabilities for the column titles (optional).
        teacher_recon: ``[C]`` teacher probabilities of the reconstruction (optional).
        title: figure title.

    Returns:
        The PNG path.
    """
    n_dir, n_alpha, n_slices = counterfactuals.shape[:3]
    cols = 2 + n_dir * n_alpha
    fig, axes = plt.subplots(n_slices, cols, figsize=(1.1 * cols, 1.2 * n_slices), squeeze=False)
    for s in range(n_slices):
        rec_t = f"recon p1={teacher_recon[1]:.2f}" if teacher_recon is not None and s == 0 else None
        _grey(axes[s, 0], original[s], "original" if s == 0 else None)
        _grey(axes[s, 1], recon[s], rec_t or ("reconstruction" if s == 0 else None))
        for d in range(n_dir):
            for a in range(n_alpha):
                t = None
                if s == 0:
                    t = f"to {d}, a={alphas[a]:g}"
                    if teacher_cf is not None:
                        t += f"\np{d}={teacher_cf[d, a, d]:.2f}"
                _grey(axes[s, 2 + d * n_alpha + a], counterfactuals[d, a, s], t)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_heatmaps(
    recon: np.ndarray,
    counterfactuals: np.ndarray,
    alphas: Sequence[float] | np.ndarray,
    path: str | Path,
    title: str = "",
) -> Path:
    """Difference maps ``cf - recon`` overlaid on the reconstruction, one row per slice.

    One symmetric colour scale ``[-v, v]`` for the whole figure (``v`` = max ``|diff|``); red
    where intensity is added, blue where removed.

    Args:
        recon: ``[4,H,W]``.
        counterfactuals: ``[D,A,4,H,W]``.
        alphas: the ``A`` step sizes.
        path: PNG to write.
        title: figure title.

    Returns:
        The PNG path.
    """
    n_dir, n_alpha, n_slices = counterfactuals.shape[:3]
    diff = difference(counterfactuals, recon[None, None])
    vmax = symmetric_limit(diff)
    cols = n_dir * n_alpha
    fig, axes = plt.subplots(n_slices, cols, figsize=(1.1 * cols + 0.8, 1.2 * n_slices), squeeze=False)
    for s in range(n_slices):
        for d in range(n_dir):
            for a in range(n_alpha):
                t = f"to {d}, a={alphas[a]:g}" if s == 0 else None
                overlay_difference(axes[s, d * n_alpha + a], recon[s], diff[d, a, s], vmax, t)
    sm = ScalarMappable(norm=Normalize(-vmax, vmax), cmap=CMAP)
    bar = fig.colorbar(sm, ax=axes, fraction=0.02, pad=0.01)
    bar.set_label("cf - recon (red = added)", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_score_curve(
    alphas: Sequence[float] | np.ndarray,
    teacher_recon: np.ndarray,
    teacher_cf: np.ndarray,
    path: str | Path,
    agent_q: np.ndarray | None = None,
    agent_cf: np.ndarray | None = None,
    teacher_random: np.ndarray | None = None,
    target_confidence: float | None = None,
    title: str = "",
    random_alphas: Sequence[float] | np.ndarray | None = None,
) -> Path:
    """Probability of each direction's target class vs alpha (alpha 0 = reconstruction).

    Args:
        alphas: ``[A]``.
        teacher_recon: ``[C]`` teacher probabilities of the reconstruction.
        teacher_cf: ``[D,A,C]`` teacher probabilities of the counterfactuals.
        path: PNG to write.
        agent_q: ``[C]`` agent probabilities at ``q`` (optional, dashed).
        agent_cf: ``[D,A,C]`` agent probabilities (optional, dashed).
        teacher_random: ``[D,A_r,C]`` random-direction control (optional, dotted).
        target_confidence: drawn as a horizontal line when given.
        title: figure title.
        random_alphas: ``[A_r]`` the control's alphas (default: ``alphas``).

    Returns:
        The PNG path.
    """
    x = np.concatenate([[0.0], np.asarray(alphas, dtype=float)])
    x_r = x if random_alphas is None else np.concatenate([[0.0], np.asarray(random_alphas, dtype=float)])
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for d in range(teacher_cf.shape[0]):
        color = f"C{d}"
        ax.plot(x, np.r_[teacher_recon[d], teacher_cf[d, :, d]], "-o", color=color, label=f"teacher p{d}, toward {d}")
        if agent_q is not None and agent_cf is not None:
            ax.plot(x, np.r_[agent_q[d], agent_cf[d, :, d]], "--", color=color, label=f"agent p{d}")
        if teacher_random is not None:
            ax.plot(x_r, np.r_[teacher_recon[d], teacher_random[d, :, d]], ":", color=color, label=f"random dir p{d}")
    if target_confidence is not None:
        ax.axhline(target_confidence, color="grey", lw=0.8)
    ax.axhline(0.5, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("alpha")
    ax.set_ylabel("probability of target class")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_localization(table: Mapping[str, Mapping[str, float | None]], path: str | Path) -> Path:
    """Grouped bars of ``auroc``, ``pointing_game``, ``relevance_mass`` per method (nulls skipped)."""
    keys = ("auroc", "pointing_game", "relevance_mass")
    names = [n for n, row in table.items() if row]
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * max(1, len(names)), 3.0))
    width = 0.25
    for k, key in enumerate(keys):
        vals = [table[n].get(key) for n in names]
        pos = [i + (k - 1) * width for i, v in enumerate(vals) if v is not None]
        ax.bar(pos, [v for v in vals if v is not None], width, label=key)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_reconstructions(originals: np.ndarray, recons: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Originals above their DDIM-inversion reconstructions, one column per slice.

    Args:
        originals: ``[K,4,H,W]`` in [-1,1].
        recons: ``[K,4,H,W]`` in [-1,1].
        path: PNG file.
        title: figure title.
    """
    k, s = originals.shape[:2]
    fig, axes = plt.subplots(2 * k, s, figsize=(1.4 * s, 1.4 * 2 * k), squeeze=False)
    for i in range(k):
        for j in range(s):
            _grey(axes[2 * i, j], originals[i, j], f"case {i} slice {j}" if i == 0 else None)
            _grey(axes[2 * i + 1, j], recons[i, j], "reconstruction" if i == 0 and j == 0 else None)
    if title:
        fig.suptitle(title, fontsize=8)
    return _save(fig, path)
