"""The typed data at seqrl's seams: trajectories, batches and loss outputs.

Every data source produces :class:`Trajectory` objects, every sampler produces
:class:`TrajectoryBatch` objects, and every trainable component returns a :class:`LossOutput`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from seqrl.errors import DataError


@dataclass
class Trajectory:
    """One episode as time-major numpy arrays.

    Attributes:
        observations: ``(T + 1, *obs_shape)`` when the observation after the last action is known
            (Minari's convention, kept so that round trips are lossless), else ``(T, *obs_shape)``.
            Image observations are ``uint8``.
        actions: ``(T, *act_shape)``; integer dtype for discrete actions.
        rewards: ``(T,)`` float32, the reward received after each action (the last one included).
        terminated: the episode reached a terminal state (a true ending: no bootstrapping).
        truncated: the episode was cut short (time limit, end of data). ``terminated`` wins when
            both are set, so at most one of the two is True.
        infos: optional per-step arrays, each of length ``T`` (or ``T + 1``).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool = False
    truncated: bool = False
    infos: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        steps = len(self.actions)
        if steps == 0:
            raise DataError("trajectory: empty episode (no actions)")
        if len(self.rewards) != steps:
            raise DataError(
                f"trajectory: 'rewards' has {len(self.rewards)} steps but 'actions' has {steps}"
            )
        if len(self.observations) not in (steps, steps + 1):
            raise DataError(
                f"trajectory: 'observations' has {len(self.observations)} entries; "
                f"expected {steps} or {steps + 1} for {steps} actions"
            )
        if self.rewards.ndim != 1:
            raise DataError(f"trajectory: 'rewards' must be 1-D, got shape {self.rewards.shape}")
        if self.terminated and self.truncated:
            self.truncated = False  # terminated wins
        for key, value in self.infos.items():
            if len(value) not in (steps, steps + 1):
                raise DataError(
                    f"trajectory: info '{key}' has {len(value)} entries for {steps} steps"
                )

    def __len__(self) -> int:
        """Number of steps (actions) in the episode."""
        return len(self.actions)

    @property
    def has_final_observation(self) -> bool:
        """Whether the observation after the last action is stored."""
        return len(self.observations) == len(self.actions) + 1

    @property
    def obs(self) -> np.ndarray:
        """The ``T`` observations on which an action was taken, ``(T, *obs_shape)``."""
        return self.observations[: len(self.actions)]

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of rewards, the last step's reward included."""
        return float(np.sum(self.rewards, dtype=np.float64))

    def returns_to_go(self, gamma: float = 1.0) -> np.ndarray:
        """``(T,)`` float32 (discounted) sum of rewards from each step to the end of the episode."""
        rtg = np.zeros(len(self.rewards), dtype=np.float64)
        running = 0.0
        for t in range(len(self.rewards) - 1, -1, -1):
            running = float(self.rewards[t]) + gamma * running
            rtg[t] = running
        return rtg.astype(np.float32)


@dataclass
class TrajectoryBatch:
    """``B`` windows of ``T`` steps as tensors, cut by a sampler.

    Attributes:
        observations: ``(B, T, *obs_shape)``; ``uint8`` images stay ``uint8`` until on the device.
        actions: ``(B, T, *act_shape)`` (``long`` ``(B, T)`` for discrete actions).
        rewards: ``(B, T)`` float.
        returns_to_go: ``(B, T)`` float, already scaled as the sampler was told.
        timesteps: ``(B, T)`` long, the step index within the episode.
        mask: ``(B, T)`` bool, False on padding.
        terminals: ``(B, T)`` bool, True on the last step of a terminated episode.
        extras: optional named tensors of shape ``(B, T, ...)`` (e.g. ``first`` for episode starts).
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    returns_to_go: torch.Tensor
    timesteps: torch.Tensor
    mask: torch.Tensor
    terminals: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrajectoryBatch:
        """A copy of the batch on ``device`` (dtypes unchanged)."""
        moved: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                moved[f.name] = {
                    k: v.to(device, non_blocking=non_blocking) for k, v in value.items()
                }
            else:
                moved[f.name] = value.to(device, non_blocking=non_blocking)
        return TrajectoryBatch(**moved)

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.mask.shape[0])

    @property
    def seq_len(self) -> int:
        """``T``."""
        return int(self.mask.shape[1])


@dataclass
class LossOutput:
    """What every trainable component's ``loss(batch)`` returns.

    Attributes:
        total: scalar tensor to minimise (the shared ``update()`` calls ``backward`` on it).
        metrics: plain floats to log, names without namespace (the trainer adds ``train/``).
    """

    total: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
