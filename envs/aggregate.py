"""Aggregate normalized scores across games and seeds with rliable (Agarwal et al. 2021,
arXiv 2108.13264): mean, median, interquartile mean and optimality gap with stratified bootstrap
confidence intervals.

Scores come as a ``(runs, games)`` matrix (one row per seed). Mean and median are taken over the
per-game means across runs, the IQM and the optimality gap over all ``runs x games`` scores, as
rliable defines them (an IQM computed from per-game means is a different, biased number).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from seqrl.errors import UsageError


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class AggregateScores:
    """rliable's aggregates of a ``(runs, games)`` score matrix.

    Attributes:
        mean, median: of the per-game means across runs.
        iqm: interquartile (25%-trimmed) mean over all runs x games.
        optimality_gap: mean shortfall below ``gamma`` (1.0: human level for HNS) over all runs x
            games.
        runs, games: the matrix shape.
    """

    mean: Interval
    median: Interval
    iqm: Interval
    optimality_gap: Interval
    runs: int
    games: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: each metric as ``{"value", "low", "high"}``."""
        out: dict[str, object] = {"runs": self.runs, "games": self.games}
        for name in ("mean", "median", "iqm", "optimality_gap"):
            iv = getattr(self, name)
            out[name] = {"value": iv.value, "low": iv.low, "high": iv.high}
        return out


def _metrics(scores: np.ndarray, gamma: float) -> np.ndarray:
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_mean(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_iqm(scores),
            metrics.aggregate_optimality_gap(scores, gamma),
        ]
    )


def aggregate_scores(
    scores: np.ndarray,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    gamma: float = 1.0,
) -> AggregateScores:
    """Aggregate a ``(runs, games)`` matrix of normalized scores with stratified bootstrap CIs.

    Args:
        scores: one row per run (seed), one column per game; normalized scores (e.g. HNS).
        reps: bootstrap resamples (rliable's default 50000 takes seconds per call).
        confidence: size of the confidence interval.
        seed: seeds the bootstrap, so the intervals are reproducible.
        gamma: the score the optimality gap counts shortfalls below: 1 for human-normalized
            Atari scores, 100 for D4RL scores (on their 0-100 scale).
    """
    from rliable import library as rly

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.size == 0:
        raise UsageError(
            f"scores must be a non-empty (runs, games) matrix, got shape {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise UsageError("scores contain NaN or inf")
    # rliable resamples with the global np.random (its random_state argument is not used for
    # the resampling), so seed that and put it back afterwards
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        point, intervals = rly.get_interval_estimates(
            {"x": scores},
            lambda x: _metrics(x, gamma),
            reps=reps,
            confidence_interval_size=confidence,
        )
    finally:
        np.random.set_state(saved)
    values, (lows, highs) = point["x"], intervals["x"]
    names = ("mean", "median", "iqm", "optimality_gap")
    ivs = {
        n: Interval(float(values[k]), float(lows[k]), float(highs[k])) for k, n in enumerate(names)
    }
    return AggregateScores(**ivs, runs=scores.shape[0], games=scores.shape[1])


def score_matrix(scores: Iterable[tuple[str, float]]) -> tuple[np.ndarray, list[str]]:
    """``(game, score)`` pairs, one per run and game, -> a ``(runs, games)`` matrix and its games.

    Every game needs the same number of runs (UsageError otherwise); runs keep their given order.
    """
    per_game: dict[str, list[float]] = defaultdict(list)
    for game, score in scores:
        per_game[game].append(float(score))
    if not per_game:
        raise UsageError("no scores to aggregate")
    counts = {game: len(v) for game, v in per_game.items()}
    if len(set(counts.values())) != 1:
        raise UsageError(f"every game needs the same number of runs, got {counts}")
    games = sorted(per_game)
    return np.array([per_game[g] for g in games]).T, games
