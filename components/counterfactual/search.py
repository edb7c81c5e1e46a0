"""Bounded search for the step size that makes the teacher confident.

The agent flips ~100x earlier than the teacher (DESIGN.md §5a), so alpha is chosen by the
teacher's response: double alpha until the teacher's probability of the target class reaches
``target_confidence`` (or alpha reaches ``alpha_cap``), then bisect between the last miss and
the first hit. Searches run in lockstep so that one batched decode serves all of them.

A search can start from evaluations already made elsewhere (``prior``, e.g. the sweep's
teacher probabilities at its fixed alphas, decoded from the same ``x_T`` and the same shift):
the largest prior miss below the smallest prior hit becomes the lower bracket, the smallest
prior hit the upper one, so the search bisects straight away or resumes doubling from the
largest miss. Prior points cost nothing and are not counted in ``n_evals``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AlphaSearch", "AlphaSearchResult", "run_searches"]


@dataclass
class AlphaSearchResult:
    """Outcome of one search.

    Attributes:
        alpha: the smallest alpha found that reached the target (or the cap when capped).
        probability: teacher probability of the target class at ``alpha``.
        reached: the teacher reached ``target_confidence``.
        capped: the search stopped because alpha hit ``alpha_cap`` without reaching it.
        n_evals: teacher evaluations made by the search (each one decode of the 4-slice
            stack); prior points are not counted.
        trace: ``(alpha, probability)`` of the search's own evaluations, in order.
        prior: the ``(alpha, probability)`` points the search started from.
    """

    alpha: float
    probability: float
    reached: bool
    capped: bool
    n_evals: int
    trace: list[tuple[float, float]] = field(default_factory=list)
    prior: list[tuple[float, float]] = field(default_factory=list)

    @property
    def stop_reason(self) -> str:
        """``"reached"``, ``"alpha_cap"`` or ``"max_evals"``."""
        return "reached" if self.reached else ("alpha_cap" if self.capped else "max_evals")

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "stop_reason": self.stop_reason,
            "alpha": self.alpha,
            "probability": self.probability,
            "reached": self.reached,
            "capped": self.capped,
            "n_evals": self.n_evals,
            "trace": [[a, p] for a, p in self.trace],
            "prior": [[a, p] for a, p in self.prior],
        }


class AlphaSearch:
    """Doubling-then-bisection search on ``alpha`` in ``(0, alpha_cap]``.

    Use :meth:`propose` to get the next alpha (``None`` when finished) and :meth:`update` with
    the teacher's probability of the target class there.

    Args:
        target_confidence: probability to reach, in (0.5, 1).
        alpha_start: first alpha tried, ``0 < alpha_start <= alpha_cap``.
        alpha_cap: largest alpha tried.
        max_evals: evaluation budget.
        rel_tol: bisection stops when ``hi - lo <= rel_tol * hi``.
        prior: ``(alpha, probability)`` points already evaluated (free; see module docs).
    """

    def __init__(
        self,
        target_confidence: float,
        alpha_start: float,
        alpha_cap: float,
        max_evals: int = 12,
        rel_tol: float = 0.1,
        prior: Sequence[tuple[float, float]] = (),
    ) -> None:
        if not 0 < alpha_start <= alpha_cap:
            raise ValueError("need 0 < alpha_start <= alpha_cap")
        self.target = target_confidence
        self.cap = alpha_cap
        self.max_evals = max_evals
        self.rel_tol = rel_tol
        self.lo = 0.0
        self.hi: float | None = None
        self.hi_prob = float("nan")
        self.trace: list[tuple[float, float]] = []
        self._next: float | None = min(alpha_start, alpha_cap)
        self._capped = False
        self.prior = [(float(a), float(p)) for a, p in prior if 0 < a <= alpha_cap]
        if self.prior:
            self._start_from_prior()

    def _start_from_prior(self) -> None:
        hits = [a for a, p in self.prior if p >= self.target]
        if hits:
            self.hi = min(hits)
            self.hi_prob = max(p for a, p in self.prior if a == self.hi)
        misses = [a for a, p in self.prior if p < self.target and (self.hi is None or a < self.hi)]
        self.lo = max(misses, default=0.0)
        if self.hi is not None:
            done = self.hi - self.lo <= self.rel_tol * self.hi
            self._next = None if done else 0.5 * (self.lo + self.hi)
        elif self.lo >= self.cap:
            self._capped, self._next = True, None
        else:
            self._next = min(max(2.0 * self.lo, self._next or 0.0), self.cap)

    def propose(self) -> float | None:
        """Next alpha to evaluate, or ``None`` when the search is over."""
        return self._next

    def update(self, probability: float) -> None:
        """Record the teacher's probability of the target class at the proposed alpha."""
        if self._next is None:
            raise RuntimeError("search already finished")
        alpha = self._next
        self.trace.append((alpha, float(probability)))
        hit = probability >= self.target
        if hit:
            self.hi, self.hi_prob = alpha, float(probability)
        else:
            self.lo = alpha
        if len(self.trace) >= self.max_evals:
            self._next = None
        elif self.hi is None:  # doubling phase
            if alpha >= self.cap:
                self._capped, self._next = True, None
            else:
                self._next = min(2.0 * alpha, self.cap)
        elif self.hi - self.lo <= self.rel_tol * self.hi:
            self._next = None
        else:
            self._next = 0.5 * (self.lo + self.hi)

    def result(self) -> AlphaSearchResult:
        """Summary; valid once :meth:`propose` returns ``None`` (or at any time, as-is)."""
        trace, prior = list(self.trace), list(self.prior)
        if self.hi is not None:
            return AlphaSearchResult(self.hi, self.hi_prob, True, False, len(trace), trace, prior)
        seen = prior + trace
        last_alpha, last_prob = max(seen, key=lambda t: t[0]) if seen else (0.0, float("nan"))
        capped = self._capped or last_alpha >= self.cap
        return AlphaSearchResult(last_alpha, last_prob, False, capped, len(trace), trace, prior)


def run_searches(
    searches: Sequence[AlphaSearch],
    evaluate: Callable[[list[int], np.ndarray], np.ndarray],
) -> list[AlphaSearchResult]:
    """Advance several searches in lockstep.

    Args:
        searches: the searches.
        evaluate: ``(indices of active searches, alphas [K]) -> probabilities [K]``; one call
            per round, so a caller can decode all K candidates in one batch.

    Returns:
        One :class:`AlphaSearchResult` per search, in order.
    """
    while True:
        active = [i for i, s in enumerate(searches) if s.propose() is not None]
        if not active:
            break
        alphas = np.array([searches[i].propose() for i in active], dtype=np.float64)
        probs = np.asarray(evaluate(active, alphas), dtype=np.float64)
        for i, p in zip(active, probs):
            searches[i].update(float(p))
    return [s.result() for s in searches]
