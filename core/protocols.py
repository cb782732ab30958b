"""The small protocols at seqrl's seams: agents and world models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from seqrl.types import LossOutput, TrajectoryBatch


@runtime_checkable
class Agent(Protocol):
    """Anything that acts in ``N`` environments at once. The rollout loop knows only this.

    The loop calls ``reset(N)`` once, then alternates ``act`` and ``observe``. When
    ``dones[i]`` is True the episode of env ``i`` has ended and the next observation of env ``i``
    starts a new episode: the agent drops that env's context.
    """

    def reset(self, num_envs: int) -> None:
        """Start fresh contexts for ``num_envs`` environments."""
        ...

    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(N, *obs_shape)`` observations -> ``(N, *act_shape)`` actions."""
        ...

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Rewards ``(N,)`` received for the last actions and whether each episode ended ``(N,)``."""
        ...


@dataclass
class ImaginedStep:
    """One step of imagination for a batch of ``B`` rollouts.

    Attributes:
        features: ``(B, ...)`` what the actor-critic sees (latent state, decoded frame, ...).
        rewards: ``(B,)`` predicted rewards.
        continues: ``(B,)`` predicted probability (or sample) that the episode continues.
    """

    features: torch.Tensor
    rewards: torch.Tensor
    continues: torch.Tensor


@dataclass
class TrainingSpec:
    """How the world-model loop trains one component: its batches and its Adam optimizer."""

    batch_size: int  # sequences per update
    seq_len: int  # trained steps per sequence
    burn_in: int  # real context steps before them (memory)
    lr: float
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float | None = None


@runtime_checkable
class WorldModel(Protocol):
    """A learned environment model; the actor-critic trains on any of them."""

    def loss(self, batch: TrajectoryBatch) -> LossOutput:
        """Training loss on a batch of real sequences."""
        ...

    def imagine_start(self, context: TrajectoryBatch) -> tuple[Any, torch.Tensor]:
        """Burn in on real context ``(B, T)``; returns (state, features ``(B, T, *F)`` of every
        context step). Uses the observations of all ``T`` steps but the actions and rewards of
        the first ``T - 1`` only: the state waits for the action of the last step."""
        ...

    def imagine_step(self, state: Any, actions: torch.Tensor) -> tuple[Any, ImaginedStep]:
        """Advance every imagined rollout by one step given ``(B,)`` or ``(B, act_dim)`` actions."""
        ...
