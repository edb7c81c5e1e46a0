"""Figure of the counterfactual attribution map (:mod:`components.counterfactual.attribution`).

One row per direction, one column per slice: the reconstruction in grey with the attribution
overlaid on a symmetric ``bwr`` scale (red = evidence against the direction's class that the
counterfactual removed, blue = evidence for it). The scale is shared by the whole figure, so
a black box that relies on little gets a pale figure; its sum (logit units) is in the row title.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from components.counterfactual.heatmap import overlay_difference, symmetric_limit  # noqa: E402

__all__ = ["plot_attribution"]


def plot_attribution(recon: np.ndarray, attribution: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Write the attribution panel.

    Args:
        recon: ``[4,H,W]`` reconstruction in [-1,1].
        attribution: ``[D,4,H,W]`` signed attribution (logit units), direction d = toward class d.
        path: PNG to write.
        title: figure title.

    Returns:
        The PNG path.
    """
    attr = np.asarray(attribution, dtype=np.float32)
    n_dir, n_slices = attr.shape[:2]
    vmax = symmetric_limit(attr)
    fig, axes = plt.subplots(n_dir, n_slices, figsize=(1.3 * n_slices, 1.4 * n_dir), squeeze=False)
    for d in range(n_dir):
        for s in range(n_slices):
            label = f"to {d}: sum {attr[d].sum():+.2f} logit" if s == 0 else f"slice {s}"
            overlay_difference(axes[d, s], recon[s], attr[d, s], vmax, label)
    fig.suptitle(title or "counterfactual attribution (red = evidence the counterfactual removed)", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
