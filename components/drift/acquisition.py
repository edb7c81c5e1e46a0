"""Drift of a cohort's acquisition: what the scans were, not what the model sees.

The latent test (:mod:`components.drift.latent`) asks whether the DiffAE's view of the images
moved; ingestion deliberately normalises scanner differences away (rescale intercept, matrix,
field of view, noise at the model's resolution), so a scanner change can leave the latents
where they were. This test compares what ingestion *measured* per patient before normalising
(``patients.csv``: matrix size, pixel and slice spacing, the measured air and lung HU) with a
two-sample Kolmogorov-Smirnov test per field (``scipy.stats.ks_2samp``; exact / asymptotic
p-values as scipy chooses, conservative for discrete fields such as the matrix size) and a
Bonferroni-combined p-value over the fields. It says *that* and *where* acquisition changed; it
does not say whether that matters to the models (the latent test does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

__all__ = ["ACQUISITION_FIELDS", "AcquisitionDrift", "acquisition_drift"]

#: ``patients.csv`` columns compared (what the scanner and protocol decide).
ACQUISITION_FIELDS = ("rows", "cols", "pixel_spacing_mm", "slice_spacing_mm", "hu_air", "hu_lung")


@dataclass
class AcquisitionDrift:
    """Result of :func:`acquisition_drift` (JSON-ready through :meth:`to_dict`).

    Attributes:
        p_value: Bonferroni-combined p-value, ``min(1, k * min_f p_f)`` over the k fields tested.
        drift: ``p_value < alpha``.
        alpha: decision level.
        n_reference / n_current: patients with status ``ok`` in each table.
        fields: per field ``{field, statistic, p_value, reference_median, current_median}``;
            fields missing or constant-and-equal in both tables are listed in ``skipped``.
        skipped: field -> why it was not tested.
        method: what was computed, in words.
    """

    p_value: float
    drift: bool
    alpha: float
    n_reference: int
    n_current: int
    fields: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def changed(self) -> list[str]:
        """Fields whose own p-value, Bonferroni-adjusted, is below ``alpha``."""
        k = max(len(self.fields), 1)
        return [f["field"] for f in self.fields if min(1.0, k * f["p_value"]) < self.alpha]


def _usable(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"] if "status" in table.columns else table


def acquisition_drift(
    reference: pd.DataFrame, current: pd.DataFrame, alpha: float = 0.01,
    fields: tuple[str, ...] = ACQUISITION_FIELDS,
) -> AcquisitionDrift:
    """Two-sample KS test per acquisition field of two ingested cohorts' ``patients.csv``.

    Args:
        reference / current: ``patients.csv`` tables (rows with ``status != "ok"`` are ignored).
        alpha: decision level of the combined p-value, in (0, 1).
        fields: numeric columns to compare.

    Returns:
        :class:`AcquisitionDrift`; with no testable field, ``p_value`` 1.0 and ``drift`` False.

    Raises:
        ValueError: ``alpha`` outside (0, 1) or an empty table.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    ref, cur = _usable(reference), _usable(current)
    if ref.empty or cur.empty:
        raise ValueError(f"no usable patients (reference {len(ref)}, current {len(cur)})")
    rows: list[dict[str, Any]] = []
    pvals: list[float] = []
    skipped: dict[str, str] = {}
    for name in fields:
        if name not in ref.columns or name not in cur.columns:
            skipped[name] = "missing in one table"
            continue
        a = pd.to_numeric(ref[name], errors="coerce").dropna().to_numpy(np.float64)
        b = pd.to_numeric(cur[name], errors="coerce").dropna().to_numpy(np.float64)
        if a.size < 2 or b.size < 2:
            skipped[name] = f"fewer than 2 values (reference {a.size}, current {b.size})"
            continue
        if np.ptp(a) == 0 and np.ptp(b) == 0 and a[0] == b[0]:
            skipped[name] = f"constant and equal ({a[0]:g})"
            continue
        res = ks_2samp(a, b)
        pvals.append(float(res.pvalue))
        rows.append({"field": name, "statistic": float(res.statistic), "p_value": pvals[-1],
                     "reference_median": float(np.median(a)), "current_median": float(np.median(b))})
    p = min(1.0, len(pvals) * min(pvals)) if pvals else 1.0
    return AcquisitionDrift(
        p_value=float(p), drift=bool(p < alpha), alpha=alpha, n_reference=len(ref), n_current=len(cur),
        fields=rows, skipped=skipped,
        method=f"two-sample Kolmogorov-Smirnov per patients.csv field (scipy.stats.ks_2samp), Bonferroni over "
               f"{len(rows)} field(s)",
    )
