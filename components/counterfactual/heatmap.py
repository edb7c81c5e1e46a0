"""Difference heatmaps: counterfactual - reconstruction, red = added, blue = removed.

The colour scale is symmetric around zero (``bwr``: negative blue, zero white, positive
red); the overlay's opacity grows with ``|diff|`` so the slice stays visible where nothing
changed. Rendering uses matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

__all__ = ["CMAP", "difference", "symmetric_limit", "difference_rgba", "overlay_difference"]

CMAP = "bwr"


def difference(counterfactual: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """``counterfactual - reconstruction`` (positive = intensity added), any matching shape."""
    return np.asarray(counterfactual, dtype=np.float32) - np.asarray(reconstruction, dtype=np.float32)


def symmetric_limit(diff: np.ndarray, floor: float = 1e-6) -> float:
    """Colour-scale limit ``v`` so that the scale is ``[-v, v]``: the max ``|diff|``."""
    return max(float(np.max(np.abs(diff))) if np.size(diff) else 0.0, floor)


def difference_rgba(diff: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """RGBA overlay of a difference map.

    Args:
        diff: ``[H,W]`` counterfactual - reconstruction.
        vmax: scale limit (default :func:`symmetric_limit`); the scale is ``[-vmax, vmax]``.

    Returns:
        ``[H,W,4]`` float in [0,1]: red where ``diff > 0``, blue where ``diff < 0``, alpha
        proportional to ``|diff| / vmax``.
    """
    vmax = symmetric_limit(diff) if vmax is None else vmax
    rgba = plt.get_cmap(CMAP)(Normalize(-vmax, vmax, clip=True)(diff))
    rgba[..., 3] = np.clip(np.abs(diff) / vmax, 0.0, 1.0)
    return rgba


def overlay_difference(
    ax: Axes, image: np.ndarray, diff: np.ndarray, vmax: float | None = None, title: str | None = None
) -> None:
    """Draw ``image`` (``[H,W]`` in [-1,1], grey) with the difference overlay on ``ax``."""
    ax.imshow(image, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    ax.imshow(difference_rgba(diff, vmax), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)
