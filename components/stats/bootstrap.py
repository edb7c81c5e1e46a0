"""One-sided bootstrap confidence bounds for gate metrics (scipy.stats.bootstrap, BCa).

A gate decides on the pessimistic end of a one-sided interval, not on a point value: with
~25 positive cases the standard error of an F1 score is ~0.056 (DESIGN.md §5), so a point
threshold near the true value passes or fails at random. Every bound here comes from
``scipy.stats.bootstrap`` with the BCa method, a seeded generator and, where several arrays
describe the same cases (labels and scores; challenger and champion), paired resampling of
cases.

Degenerate data (every resample gives the same value, e.g. 120 of 120 decisions kept) has no
BCa interval; the bound is then the percentile bound, which equals the point. That is the
bootstrap's known optimism on all-or-nothing samples and is recorded as ``degenerate``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import bootstrap

__all__ = ["Bound", "BootstrapSettings", "one_sided_bound", "mean_bound", "paired_difference_bound",
           "independent_difference_bound", "mean_interval", "statistic_interval"]


@dataclass(frozen=True)
class BootstrapSettings:
    """How bounds are computed (recorded in every decision record).

    Attributes:
        confidence: one-sided confidence level (0.95 = the bound is exceeded by the true
            value with probability 0.95).
        n_resamples: bootstrap resamples.
        seed: seed of the numpy generator handed to scipy.
        method: scipy's interval method.
    """

    confidence: float = 0.95
    n_resamples: int = 2000
    seed: int = 0
    method: str = "BCa"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Bound:
    """A point estimate and its one-sided bound.

    Attributes:
        point: the statistic on the observed cases (nan when undefined).
        bound: the one-sided bound: lower when ``greater_is_better``, else upper.
        greater_is_better: which side ``bound`` is on.
        n: number of cases resampled.
        degenerate: the bootstrap distribution had no spread (percentile bound used).
    """

    point: float
    bound: float
    greater_is_better: bool
    n: int
    degenerate: bool = False

    @property
    def lower(self) -> float | None:
        """The lower bound (None when the bound is an upper one)."""
        return self.bound if self.greater_is_better else None

    @property
    def upper(self) -> float | None:
        """The upper bound (None when the bound is a lower one)."""
        return None if self.greater_is_better else self.bound


def _finite(x: float) -> bool:
    return bool(np.isfinite(x))


def one_sided_bound(
    statistic: Callable[..., np.ndarray | float],
    samples: Sequence[ArrayLike],
    settings: BootstrapSettings = BootstrapSettings(),
    greater_is_better: bool = True,
    paired: bool = True,
    vectorized: bool = False,
) -> Bound:
    """One-sided bootstrap bound of ``statistic(*samples)``.

    Args:
        statistic: maps the (resampled) arrays, one per entry of ``samples`` and each ``[n]``
            along axis 0, to a float. With ``vectorized`` it takes ``axis`` and reduces along
            it (scipy then scores many resamples per call: much faster).
        samples: arrays over the same ``n`` cases when ``paired`` (e.g. labels and scores).
        settings: confidence, resamples, seed, method.
        greater_is_better: True gives a lower bound (``alternative="greater"``), False an
            upper bound (``alternative="less"``).
        paired: resample the same case indices in every array.

    Returns:
        :class:`Bound`. With fewer than 2 cases or an undefined point the bound is nan.
    """
    arrays = [np.asarray(s) for s in samples]
    n = int(len(arrays[0])) if arrays else 0
    point = float(statistic(*arrays, axis=-1) if vectorized else statistic(*arrays)) if n else float("nan")
    if n < 2 or not _finite(point):
        return Bound(point, float("nan"), greater_is_better, n)
    kwargs = dict(
        paired=paired, vectorized=vectorized, confidence_level=settings.confidence, n_resamples=settings.n_resamples,
        alternative="greater" if greater_is_better else "less",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning / nan jackknife: handled below
        res = bootstrap(tuple(arrays), statistic, method=settings.method, rng=np.random.default_rng(settings.seed),
                        **kwargs)
    ci = res.confidence_interval
    value = float(ci.low if greater_is_better else ci.high)
    degenerate = False
    if not _finite(value):
        dist = np.asarray(res.bootstrap_distribution, dtype=float)
        dist = dist[np.isfinite(dist)]
        degenerate = bool(dist.size and np.ptp(dist) == 0)
        if dist.size:
            q = 1.0 - settings.confidence if greater_is_better else settings.confidence
            value = float(np.quantile(dist, q))
    return Bound(point, value, greater_is_better, n, degenerate)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def mean_bound(
    values: ArrayLike, settings: BootstrapSettings = BootstrapSettings(), greater_is_better: bool = True
) -> Bound:
    """Bound of the mean of per-case ``values [n]`` (nan entries are dropped first)."""
    v = np.asarray(values, dtype=float)
    return one_sided_bound(_mean, [v[np.isfinite(v)]], settings, greater_is_better, vectorized=True)


def paired_difference_bound(
    statistic: Callable[..., np.ndarray | float],
    challenger: Sequence[ArrayLike],
    champion: Sequence[ArrayLike],
    settings: BootstrapSettings = BootstrapSettings(),
    greater_is_better: bool = True,
    vectorized: bool = False,
) -> Bound:
    """Bound of ``statistic(*challenger) - statistic(*champion)`` over the same cases.

    Both models' arrays are resampled with the same case indices, so case difficulty cancels
    (non-inferiority: challenger minus champion, lower bound >= -delta).

    Args:
        statistic: as in :func:`one_sided_bound`, applied to each model's arrays.
        challenger: arrays ``[n]`` of the new model (e.g. teacher decisions, agent scores).
        champion: arrays ``[n]`` of the current champion on the same cases.
        settings: bootstrap settings.
        greater_is_better: of the statistic; the bound is on the pessimistic side.
        vectorized: ``statistic`` takes ``axis`` (see :func:`one_sided_bound`).
    """
    k = len(challenger)
    if len(champion) != k:
        raise ValueError("challenger and champion need the same number of arrays")

    def diff(*arrays: np.ndarray, **kw: int) -> np.ndarray | float:
        return np.asarray(statistic(*arrays[:k], **kw)) - np.asarray(statistic(*arrays[k:], **kw))

    return one_sided_bound(diff, [*challenger, *champion], settings, greater_is_better, paired=True,
                           vectorized=vectorized)


def independent_difference_bound(
    challenger: ArrayLike, champion: ArrayLike, settings: BootstrapSettings = BootstrapSettings(),
    greater_is_better: bool = True,
) -> Bound:
    """Bound of ``mean(challenger) - mean(champion)`` over two *different* sets of cases.

    Each sample is resampled on its own (``scipy.stats.bootstrap`` with ``paired=False``): for
    per-case values that exist on different cases for the two models, e.g. flips over the cases
    each model's own black box calls indeterminate. Wider than a paired bound on shared cases,
    because case difficulty no longer cancels.

    Args:
        challenger: ``[n1]`` per-case values of the new model.
        champion: ``[n2]`` per-case values of the current champion.
        settings: bootstrap settings.
        greater_is_better: of the mean; the bound is on the pessimistic side.

    Returns:
        :class:`Bound` with ``n = n1`` (nan bound when either sample has fewer than 2 cases).
    """
    a, b = np.asarray(challenger, dtype=float), np.asarray(champion, dtype=float)
    if a.size < 2 or b.size < 2:
        point = float(a.mean() - b.mean()) if a.size and b.size else float("nan")
        return Bound(point, float("nan"), greater_is_better, int(a.size))

    def diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    return one_sided_bound(diff, [a, b], settings, greater_is_better, paired=False, vectorized=True)


def mean_interval(
    values: ArrayLike, settings: BootstrapSettings = BootstrapSettings(), paired_with: ArrayLike | None = None
) -> tuple[float, float, float]:
    """Two-sided interval ``(point, low, high)`` of the mean of per-case ``values [n]``.

    With ``paired_with [n]`` it is the interval of ``mean(values - paired_with)``, cases
    resampled together. BCa at ``settings.confidence`` (two-sided), the percentile interval
    when BCa is undefined; a constant sample (up to rounding) gives ``(c, c, c)``; nan with fewer than 2
    finite cases. Benchmarks report figures this way (point beside its interval).
    """
    v = np.asarray(values, dtype=float)
    if paired_with is not None:
        v = v - np.asarray(paired_with, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float(v.mean()) if v.size else float("nan"), float("nan"), float("nan"))
    if np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())):  # constant up to rounding: no spread
        point = float(v.mean())
        return point, point, point
    return statistic_interval(_mean, [v], settings)


def statistic_interval(
    statistic: Callable[..., np.ndarray], samples: Sequence[ArrayLike], settings: BootstrapSettings = BootstrapSettings()
) -> tuple[float, float, float]:
    """Two-sided interval ``(point, low, high)`` of a vectorised ``statistic(*samples, axis=-1)``
    over cases resampled together (every sample ``[n]``, paired), e.g. a ratio of sums.

    BCa at ``settings.confidence``, the percentile interval when BCa is undefined; a statistic
    with no spread over resamples gives ``(point, point, point)``; nan with fewer than 2 cases.
    """
    arrays = [np.asarray(a, dtype=float) for a in samples]
    n = int(arrays[0].size) if arrays else 0
    point = float(statistic(*arrays, axis=-1)) if n else float("nan")
    if n < 2 or not _finite(point):
        return point, float("nan"), float("nan")
    for method in (settings.method, "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap(tuple(arrays), statistic, paired=True, vectorized=True, confidence_level=settings.confidence,
                            n_resamples=settings.n_resamples, method=method, rng=np.random.default_rng(settings.seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if _finite(low) and _finite(high):
            return point, low, high
        dist = np.asarray(res.bootstrap_distribution, dtype=float)
        if dist.size and np.all(np.isfinite(dist)) and np.ptp(dist) <= 1e-12 * max(1.0, float(np.abs(dist).max())):
            return point, point, point
    return point, float("nan"), float("nan")
