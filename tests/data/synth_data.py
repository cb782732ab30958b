"""Synthetic data for the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.types import Trajectory


def make_trajectories(
    lengths: tuple[int, ...] = (5, 8, 3), obs_dim: int = 3, seed: int = 0
) -> list[Trajectory]:
    """Episodes of float observations (T + 1) and 2-D Box actions; odd lengths terminated."""
    rng = np.random.default_rng(seed)
    return [
        Trajectory(
            observations=rng.normal(size=(t + 1, obs_dim)).astype(np.float32),
            actions=rng.uniform(-1, 1, size=(t, 2)).astype(np.float32),
            rewards=rng.normal(size=t).astype(np.float32),
            terminated=bool(t % 2),
            truncated=not t % 2,
        )
        for t in lengths
    ]


def make_dataset(
    lengths: tuple[int, ...] = (5, 8, 3), obs_dim: int = 3, seed: int = 0
) -> TrajectoryDataset:
    """A :class:`TrajectoryDataset` of :func:`make_trajectories` with Box spaces."""
    metadata = DatasetMetadata(
        name="synthetic",
        observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    )
    return TrajectoryDataset.from_trajectories(make_trajectories(lengths, obs_dim, seed), metadata)


def write_d4rl(
    path: Path, n: int = 10, obs_dim: int = 3, act_dim: int = 2, **overrides: object
) -> Path:
    """A D4RL-style HDF5 file with ``n`` rows; ``overrides`` replace (or, as None, drop) keys."""
    rng = np.random.default_rng(1)
    data: dict[str, object] = {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": np.arange(n, dtype=np.float32),
        "terminals": np.zeros(n, dtype=bool),
        "timeouts": np.zeros(n, dtype=bool),
    }
    data.update(overrides)
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            if value is not None:
                f.create_dataset(key, data=value)
    return path
