"""Summary statistics of a dataset and observation normalisation constants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from seqrl.data.dataset import TrajectoryDataset


@dataclass(frozen=True)
class DatasetStats:
    """Counts, sizes and the return distribution of a dataset (returns are undiscounted sums)."""

    episodes: int
    steps: int
    terminated: int
    truncated: int
    length_min: int
    length_mean: float
    length_max: int
    return_mean: float
    return_std: float
    return_min: float
    return_median: float
    return_max: float
    nbytes: int

    def lines(self) -> list[str]:
        """Human-readable ``key: value`` lines, as ``seqrl datasets info`` prints them."""
        return [
            f"episodes: {self.episodes} ({self.terminated} terminated, {self.truncated} truncated)",
            f"steps: {self.steps}",
            f"episode length: min {self.length_min}, mean {self.length_mean:.1f}, max {self.length_max}",
            f"return: mean {self.return_mean:.3f}, std {self.return_std:.3f}, min {self.return_min:.3f}, "
            f"median {self.return_median:.3f}, max {self.return_max:.3f}",
            f"size: {format_bytes(self.nbytes)}",
        ]


def dataset_stats(dataset: TrajectoryDataset) -> DatasetStats:
    """Compute :class:`DatasetStats` (one pass over rewards; observations are not read)."""
    lengths = dataset.episode_lengths
    returns = dataset.episode_returns
    return DatasetStats(
        episodes=len(dataset),
        steps=dataset.num_steps,
        terminated=int(dataset.terminated.sum()),
        truncated=int(dataset.truncated.sum()),
        length_min=int(lengths.min()),
        length_mean=float(lengths.mean()),
        length_max=int(lengths.max()),
        return_mean=float(returns.mean()),
        return_std=float(returns.std()),
        return_min=float(returns.min()),
        return_median=float(np.median(returns)),
        return_max=float(returns.max()),
        nbytes=dataset.nbytes,
    )


@dataclass(frozen=True)
class ObservationStats:
    """Per-feature mean and standard deviation of the observations, ``(*obs_shape,)`` float32.

    ``normalize(x) = (x - mean) / std``; ``std`` already includes the small constant the DT code
    adds (``std + 1e-6``), so it is never zero.
    """

    mean: np.ndarray
    std: np.ndarray

    def normalize(self, observations: np.ndarray) -> np.ndarray:
        """``(..., *obs_shape)`` -> float32 normalised observations."""
        return ((observations - self.mean) / self.std).astype(np.float32)


def observation_stats(
    dataset: TrajectoryDataset, eps: float = 1e-6, chunk: int = 65536
) -> ObservationStats:
    """Mean and std over the observations on which actions were taken (chunked, float64 sums).

    Matches the Decision Transformer code (``np.mean``/``np.std`` over all states, ``std + 1e-6``);
    final observations after the last action are excluded, as D4RL's ``observations`` key has none.
    """
    obs = dataset.observations
    if dataset.has_final_observation:
        # rows to skip: the final observation of each episode
        keep = np.ones(len(obs), dtype=bool)
        keep[dataset.episode_starts[1:] + np.arange(len(dataset))] = False
    else:
        keep = None
    total = np.zeros(dataset.observation_shape, dtype=np.float64)
    total_sq = np.zeros(dataset.observation_shape, dtype=np.float64)
    count = 0
    for lo in range(0, len(obs), chunk):
        block = np.asarray(obs[lo : lo + chunk], dtype=np.float64)
        if keep is not None:
            block = block[keep[lo : lo + chunk]]
        total += block.sum(axis=0)
        total_sq += np.square(block).sum(axis=0)
        count += len(block)
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    return ObservationStats(
        mean=mean.astype(np.float32), std=(np.sqrt(var) + eps).astype(np.float32)
    )


def format_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"
