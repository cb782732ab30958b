"""A tiny deterministic gymnasium env whose episodes end at known, different steps."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CountdownEnv(gym.Env):
    """Episode ``k`` of env ``index`` lasts ``lengths[k % len(lengths)]`` steps.

    Observation: ``[index, episode k, step t]`` (float32). Reward: 1 per step and 100 on the last
    step, so a return tells whether the final reward was counted. Terminates unless ``truncate``.
    """

    metadata = {"render_modes": []}

    def __init__(self, index: int, lengths: list[int], truncate: bool = False) -> None:
        self.index, self.lengths, self.truncate = index, lengths, truncate
        self.observation_space = spaces.Box(-1e6, 1e6, (3,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.episode, self.t = -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.index, self.episode, self.t], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        last = self.t >= self.lengths[self.episode % len(self.lengths)]
        reward = 100.0 if last else 1.0
        return self._obs(), reward, last and not self.truncate, last and self.truncate, {}

    @staticmethod
    def expected_return(length: int) -> float:
        return (length - 1) * 1.0 + 100.0


def countdown_vec(
    lengths: list[list[int]], mode: str = "same", truncate: bool = False
) -> gym.vector.SyncVectorEnv:
    """One CountdownEnv per entry of ``lengths``, in SAME_STEP or NEXT_STEP autoreset mode."""
    autoreset = (
        gym.vector.AutoresetMode.SAME_STEP if mode == "same" else gym.vector.AutoresetMode.NEXT_STEP
    )
    fns = [lambda i=i, ls=ls: CountdownEnv(i, ls, truncate) for i, ls in enumerate(lengths)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=autoreset)


class RecordingAgent:
    """Acts 1 always and records every call, to check the protocol the loop follows."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def reset(self, num_envs: int) -> None:
        self.calls.append(("reset", num_envs))

    def act(self, observations: np.ndarray) -> np.ndarray:
        self.calls.append(("act", observations.copy()))
        return np.ones(len(observations), dtype=np.int64)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        self.calls.append(("observe", (rewards.copy(), dones.copy())))
