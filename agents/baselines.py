"""Baseline agents behind the :class:`~seqrl.protocols.Agent` protocol: random and any SB3 model.

Stable-Baselines3 model files (``.zip``) hold pickled Python objects: loading one runs code from
the file. Load only files from a trusted source (seqrl's own checkpoints never need unpickling).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space
from seqrl.errors import CheckpointError, UsageError


class RandomAgent:
    """Uniformly random actions from ``action_space``, batched over the envs.

    Args:
        action_space: the single env's action space.
        seed: seeds the action sampling (None: nondeterministic).
    """

    def __init__(self, action_space: gym.Space, seed: int | None = None) -> None:
        self.action_space = action_space
        self._rng = np.random.default_rng(seed)
        self._batched: gym.Space | None = None
        self._num_envs = 0

    def reset(self, num_envs: int) -> None:
        """Prepare a batched space for ``num_envs`` envs, seeded from the agent's generator."""
        self._num_envs = num_envs
        self._batched = batch_space(self.action_space, num_envs)
        self._batched.seed(int(self._rng.integers(2**31)))

    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(N, ...)`` observations -> ``(N, *act_shape)`` random actions."""
        n = len(observations)
        if self._batched is None or n != self._num_envs:
            self.reset(n)
        assert self._batched is not None
        return np.asarray(self._batched.sample())

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Nothing to remember."""


SB3_ALGOS = ("ppo", "a2c", "dqn", "sac", "td3", "ddpg")
"""Stable-Baselines3 algorithms :class:`SB3Agent` can load."""


def detect_sb3_algo(path: Path) -> str:
    """The SB3 algorithm that saved the model ``path`` (read from its JSON ``data``, no unpickling)."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError):
        raise CheckpointError(
            f"{path}: not a Stable-Baselines3 model file (.zip with 'data')"
        ) from None
    module = str(data.get("policy_class", {}).get("__module__", ""))
    for algo in ("dqn", "sac", "td3"):
        if f"stable_baselines3.{algo}." in module:
            return algo
    if "stable_baselines3.common.policies" in module:
        return "ppo" if "n_epochs" in data else "a2c"
    raise CheckpointError(f"{path}: unknown SB3 policy class '{module}'; give it as sb3:ALGO:PATH")


class SB3Agent:
    """A Stable-Baselines3 model acting through ``model.predict`` (batched over the envs).

    The file is loaded with SB3's own loader, which unpickles objects: use trusted files only.

    Args:
        path: the model ``.zip``.
        algo: one of :data:`SB3_ALGOS`; None reads it from the file.
        deterministic: greedy / mean actions (True) or sampled ones.
        device: torch device for the policy.
    """

    def __init__(
        self,
        path: str | Path,
        algo: str | None = None,
        deterministic: bool = True,
        device: str = "cpu",
    ) -> None:
        import stable_baselines3 as sb3

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such SB3 model file")
        algo = (algo or detect_sb3_algo(path)).lower()
        if algo not in SB3_ALGOS:
            raise UsageError(f"unknown SB3 algorithm '{algo}' (choose from {', '.join(SB3_ALGOS)})")
        try:
            self.model: Any = getattr(sb3, algo.upper()).load(path, device=device)
        except Exception as exc:  # SB3 raises many kinds on a bad file
            first = (
                str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            )
            raise CheckpointError(f"{path}: cannot load as SB3 {algo.upper()} ({first})") from None
        self.deterministic = deterministic
        self.observation_space: gym.Space = self.model.observation_space
        self.action_space: gym.Space = self.model.action_space

    def reset(self, num_envs: int) -> None:
        """SB3 feed-forward policies keep no per-env state."""

    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(N, ...)`` observations -> ``(N, *act_shape)`` actions from ``model.predict``."""
        actions, _ = self.model.predict(observations, deterministic=self.deterministic)
        return np.asarray(actions)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Nothing to remember."""
