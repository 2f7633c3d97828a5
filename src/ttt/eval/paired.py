"""Paired comparisons of systems scored on the same items: bootstrap over items, pooled over seeds, Holm.

A study (e.g. `benchmarks/reproduce.py`) trains each system with a few seeds and scores every seed on the
same test items (`ttt eval`'s `items.jsonl`). A per-seed mean with a t-test over 3 seeds has 2–4 degrees of
freedom and ignores that the systems answered the *same* items; here every comparison is paired by item:

1. a metric's value per (seed, item): a number (accuracy, stop within ±20 %) averaged over items, or a
   `(numerator, denominator)` pair aggregated as Σnum/Σden (corpus WER), as `ttt eval` does;
2. a system's statistic is that metric over the items, averaged over its seeds (`Values.statistic`);
3. one bootstrap resample draws items (or whole clusters of related items) with replacement — the *same*
   draw for both systems and every seed —
   and the gain is the difference of the two statistics, signed so that positive means "A is better"
   (`paired_gain`); B resamples give the gain's bootstrap distribution;
4. its two-sided p-value is `2 · min(#(gain* ≤ 0), #(gain* ≥ 0)) / B` (capped at 1), and its interval at
   level 1 − a takes the order statistics `k = floor(a·B/2)` in from each end. With these two definitions an
   interval excludes 0 exactly when p ≤ a (`interval_excludes_zero_iff_p_le_a` is tested), so a decision can
   be read off either;
5. the comparisons of a study are corrected together by Holm's step-down procedure (family-wise error ≤ α):
   taken in order of p, the k-th of m is tested with its interval at level 1 − α/(m − k + 1), and it is
   decided when that interval excludes 0 *and* every comparison before it was decided (`holm`).

What the intervals cover: the sampling of test items, for the trained models at hand. Seed-to-seed (training)
variance is averaged over, not estimated; a study should show per-seed values beside the pooled ones.
Percentile intervals are used rather than BCa (`ttt.eval.metrics.bootstrap_ci`, used for one system's
metrics) because the BCa interval has no p-value that decides the same way, which Holm's procedure needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("lower", "higher")


@dataclass
class Values:
    """One system's per-item values of one metric: `num` (seeds × items) and, for a ratio metric, `den`
    (same shape; the statistic is Σnum/Σden per seed). Items are in the same order for every system."""

    num: np.ndarray
    den: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.num = np.atleast_2d(np.asarray(self.num, dtype=np.float64))
        if self.den is not None:
            self.den = np.atleast_2d(np.asarray(self.den, dtype=np.float64))
            if self.den.shape != self.num.shape:
                raise ValueError(f"numerators {self.num.shape} and denominators {self.den.shape} differ in shape")
            if np.any(self.den.sum(axis=1) <= 0):
                raise ValueError("a seed's denominators sum to zero: the ratio is undefined")
        if self.num.size == 0 or not np.all(np.isfinite(self.num)):
            raise ValueError("need finite values for at least one seed and one item")

    @property
    def items(self) -> int:
        return self.num.shape[1]

    def statistic(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The metric averaged over seeds, once per row of `weights` (resamples × items: how often each item
        is drawn); without weights, on the items as they are (a 0-d array)."""
        w = np.ones((1, self.items)) if weights is None else np.asarray(weights, dtype=np.float64)
        num = w @ self.num.T  # resamples × seeds
        if self.den is None:
            per_seed = num / w.sum(axis=1, keepdims=True)
        else:
            den = w @ self.den.T
            full = self.num.sum(axis=1) / self.den.sum(axis=1)  # a resample drawing only zero denominators
            per_seed = np.where(den > 0, num / np.where(den > 0, den, 1.0), full)
        out = per_seed.mean(axis=1)
        return out[0] if weights is None else out


def resample_weights(items: int, n_resamples: int, seed: int = 0, groups=None) -> np.ndarray:
    """Bootstrap draws of `items` items with replacement, as counts per item (n_resamples × items).

    With `groups` (one cluster label per item), whole clusters are drawn with replacement and every item
    weighs its cluster's count: items that share a cluster (the same sentence read by several voices, several
    questions about one fact) are not independent, and resampling them one by one would make intervals too
    narrow (`test_cluster_resampling_keeps_the_error_rate_of_clustered_items`)."""
    if items < 1 or n_resamples < 1:
        raise ValueError(f"need at least one item and one resample, got {items} and {n_resamples}")
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(items, np.full(items, 1.0 / items), size=n_resamples).astype(np.float64)
    if len(groups) != items:
        raise ValueError(f"got {len(groups)} cluster labels for {items} items")
    labels, index = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    counts = rng.multinomial(labels.size, np.full(labels.size, 1.0 / labels.size), size=n_resamples)
    return counts[:, index].astype(np.float64)


def _signed(better: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if better not in DIRECTIONS:
        raise ValueError(f"better must be one of {DIRECTIONS}, got {better!r}")
    return a - b if better == "higher" else b - a


@dataclass
class Gain:
    """A paired comparison: `estimate` is A's advantage over B on all items (positive: A better), `boot`
    its bootstrap distribution, `p` the two-sided bootstrap p-value."""

    estimate: float
    boot: np.ndarray
    items: int

    @property
    def p(self) -> float:
        below, above = int(np.sum(self.boot <= 0)), int(np.sum(self.boot >= 0))
        return min(1.0, 2.0 * min(below, above) / self.boot.size)

    def interval(self, confidence: float) -> tuple[float, float]:
        """Percentile interval of the gain: order statistics floor((1 − confidence)·B/2) in from each end."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        ordered = np.sort(self.boot)
        k = int(np.floor((1 - confidence) * ordered.size / 2 + 1e-9))
        k = min(k, (ordered.size - 1) // 2)
        return float(ordered[k]), float(ordered[ordered.size - 1 - k])


def paired_gain(a: Values, b: Values, better: str, n_resamples: int = 10_000, seed: int = 0, groups=None) -> Gain:
    """A vs B on the same items, each item (or cluster of items, `groups`) drawn the same number of times for
    both systems and all seeds."""
    if a.items != b.items:
        raise ValueError(f"systems are scored on different numbers of items ({a.items} vs {b.items}); pair them first")
    weights = resample_weights(a.items, n_resamples, seed, groups)
    estimate = float(_signed(better, a.statistic(), b.statistic()))
    return Gain(estimate, _signed(better, a.statistic(weights), b.statistic(weights)), a.items)


def holm(p_values: list[float] | np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Holm's step-down correction: (adjusted p-values, the confidence level each hypothesis is tested at,
    which are rejected). The k-th smallest p of m is compared with α/(m − k + 1); testing stops at the first
    that fails, and the adjusted p is max over j ≤ k of min(1, (m − j + 1)·p_(j))."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise ValueError("p-values must be a 1-D sequence of numbers in [0, 1]")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = p.size
    order = np.argsort(p, kind="stable")
    factors = m - np.arange(m)  # m, m-1, ..., 1 for the sorted p-values
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(factors * p[order]))
    levels = np.empty(m)
    levels[order] = 1 - alpha / factors
    return adjusted, levels, adjusted <= alpha


@dataclass
class Decision:
    """One comparison after the correction: its gain, interval at its Holm level, and the outcome
    ("better": A decided better, "worse": A decided worse, "open": not decided)."""

    name: str
    estimate: float
    items: int
    p: float
    p_holm: float
    confidence: float
    low: float
    high: float
    outcome: str


def decide(gains: dict[str, Gain], alpha: float = 0.05) -> dict[str, Decision]:
    """Holm over every comparison in `gains` together; each outcome follows from its interval."""
    names = list(gains)
    if not names:
        return {}
    adjusted, levels, rejected = holm([gains[n].p for n in names], alpha)
    out = {}
    for name, p_adj, level, rej in zip(names, adjusted, levels, rejected):
        g = gains[name]
        low, high = g.interval(level)
        outcome = "open" if not rej else "better" if low > 0 else "worse" if high < 0 else "open"
        out[name] = Decision(name, g.estimate, g.items, g.p, float(p_adj), float(level), low, high, outcome)
    return out


VERDICT_RULE = ("A claim is *supported* when every comparison it names is decided in its favour, *contradicted* "
                "when at least one is decided against it, and *not resolved* otherwise.")


def verdict(outcomes: list[str]) -> str:
    """A claim's verdict from its comparisons' outcomes (`VERDICT_RULE`)."""
    if not outcomes:
        return "not measured"
    if "worse" in outcomes:
        return "contradicted"
    if all(o == "better" for o in outcomes):
        return "supported"
    return "not resolved"
