"""Replay buffer for online agents: steps from N envs in, sampler batches and datasets out.

Storage is one preallocated flat array per field, split into ``num_envs`` lanes of
``capacity // num_envs`` rows: env ``i`` writes its steps one after another into lane ``i``, so
every episode (finished or still running) is a contiguous range and the samplers of
:mod:`seqrl.data.sampler` read the buffer exactly as they read a dataset. Vector envs step in
lockstep, so lanes fill evenly; a full lane is an error (Atari 100k keeps all its data).

``save``/``load`` write and read the whole state (running episodes and visit counts included),
so a run resumes from its checkpoint plus the replay data on disk. ``to_dataset`` turns the
finished episodes into a :class:`~seqrl.data.dataset.TrajectoryDataset` (an Atari 100k run's
own data can later train a Decision Transformer).
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from seqrl.data.dataset import DatasetMetadata, EpisodeIndex, TrajectoryDataset
from seqrl.data.sampler import VisitWeights
from seqrl.errors import DataError
from seqrl.io import atomic_dir

STATE_FILE = "seqrl_replay.json"


class ReplayBuffer:
    """Steps of ``num_envs`` parallel envs, grouped into episodes as they end.

    Args:
        capacity: total steps held (``capacity // num_envs`` per env).
        num_envs: envs stepped together.
        observation_space / action_space: the env's single (not batched) spaces.
        env_id: recorded in the metadata of saved datasets.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        observation_space: gym.Space,
        action_space: gym.Space,
        env_id: str | None = None,
    ) -> None:
        if num_envs < 1 or capacity < num_envs:
            raise DataError(f"replay: need capacity >= num_envs >= 1, got {capacity}, {num_envs}")
        self.num_envs = num_envs
        self.lane = capacity // num_envs
        self.observation_space = observation_space
        self.action_space = action_space
        self.env_id = env_id
        rows = self.lane * num_envs
        obs_shape = tuple(observation_space.shape or ())
        act_shape = tuple(action_space.shape or ())
        act_dtype = np.int64 if isinstance(action_space, gym.spaces.Discrete) else np.float32
        self.observations = np.zeros((rows, *obs_shape), dtype=observation_space.dtype)
        self.actions = np.zeros((rows, *act_shape), dtype=act_dtype)
        self.rewards = np.zeros(rows, dtype=np.float32)
        self.visits = np.zeros(rows, dtype=np.int64)
        self._fill = np.zeros(num_envs, dtype=np.int64)  # rows written per lane
        self._begin = np.zeros(num_envs, dtype=np.int64)  # lane row where the running episode began
        self._starts: list[int] = []  # finished episodes, flat [start, end), in order of finishing
        self._ends: list[int] = []
        self._terminated: list[bool] = []
        self._finals: list[np.ndarray | None] = []  # observation after the last action, if given
        self._version = 0

    # -- writing ------------------------------------------------------------------------------

    def add(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_observations: np.ndarray | None = None,
        active: np.ndarray | None = None,
    ) -> None:
        """Record one step of every env: ``obs_t`` (N, ...), ``a_t`` (N, ...), ``r_t`` (N,).

        Args:
            terminated / truncated: ``(N,)`` bool, the episode ended with this step.
            final_observations: ``(N, ...)`` the observation after this step's action, read for
                the envs whose episode ended (kept so saved datasets have ``T + 1`` observations).
            active: ``(N,)`` bool, envs whose step is real (False for the dummy step a
                next-step-autoreset vector env takes after an episode ends); default all.
        """
        active_mask = (
            np.ones(self.num_envs, dtype=bool) if active is None else np.asarray(active, bool)
        )
        lanes = np.flatnonzero(active_mask)
        if np.any(self._fill[lanes] >= self.lane):
            raise DataError(
                f"replay: buffer full ({self.lane} steps per env x {self.num_envs} envs); "
                "give a larger capacity"
            )
        rows = lanes * self.lane + self._fill[lanes]
        self.observations[rows] = np.asarray(observations)[lanes]
        self.actions[rows] = np.asarray(actions)[lanes]
        self.rewards[rows] = np.asarray(rewards, dtype=np.float32)[lanes]
        self._fill[lanes] += 1
        ended = (np.asarray(terminated, bool) | np.asarray(truncated, bool)) & active_mask
        for i in np.flatnonzero(ended):
            self._starts.append(int(i * self.lane + self._begin[i]))
            self._ends.append(int(i * self.lane + self._fill[i]))
            self._terminated.append(bool(terminated[i]))
            final = None if final_observations is None else np.array(final_observations[i])
            self._finals.append(final)
            self._begin[i] = self._fill[i]
        self._version += 1

    def close_episodes(self) -> None:
        """End every running episode as truncated (e.g. before a resumed run resets its envs)."""
        for i in np.flatnonzero(self._fill > self._begin):
            self._starts.append(int(i * self.lane + self._begin[i]))
            self._ends.append(int(i * self.lane + self._fill[i]))
            self._terminated.append(False)
            self._finals.append(None)
            self._begin[i] = self._fill[i]
        self._version += 1

    # -- reading ------------------------------------------------------------------------------

    @property
    def num_steps(self) -> int:
        """Steps held (finished and running episodes)."""
        return int(self._fill.sum())

    @property
    def num_episodes(self) -> int:
        """Finished episodes."""
        return len(self._starts)

    def episode_index(self) -> EpisodeIndex:
        """Finished episodes, then each env's running episode (if it has a step), for samplers."""
        lanes = np.flatnonzero(self._fill > self._begin)
        starts = np.array(
            self._starts + list(lanes * self.lane + self._begin[lanes]), dtype=np.int64
        )
        ends = np.array(self._ends + list(lanes * self.lane + self._fill[lanes]), dtype=np.int64)
        terminated = np.array(self._terminated + [False] * len(lanes), dtype=bool)
        return EpisodeIndex(
            observations=self.observations,
            actions=self.actions,
            rewards=self.rewards,
            starts=starts,
            ends=ends,
            obs_offsets=np.zeros(len(starts), dtype=np.int64),
            terminated=terminated,
            version=self._version,
        )

    def visit_weights(self, temperature: float = 20.0) -> VisitWeights:
        """TWM's sampling weights over this buffer, counting into :attr:`visits` (saved with it)."""
        weights = VisitWeights(0, temperature)
        weights.visits = self.visits
        return weights

    def to_dataset(
        self, name: str = "replay", next_observations: np.ndarray | None = None
    ) -> TrajectoryDataset:
        """The finished episodes (copied) as a dataset, in the order they finished.

        With ``next_observations`` (N, ...), the envs' current observations, each running episode
        is included too, flagged truncated. Observations are ``T + 1`` per episode when every
        included episode's final observation is known, else ``T``.
        """
        starts, ends = list(self._starts), list(self._ends)
        terminated, finals = list(self._terminated), list(self._finals)
        if next_observations is not None:
            for i in np.flatnonzero(self._fill > self._begin):
                starts.append(int(i * self.lane + self._begin[i]))
                ends.append(int(i * self.lane + self._fill[i]))
                terminated.append(False)
                finals.append(np.array(next_observations[i]))
        if not starts:
            raise DataError("replay: no finished episodes to save")
        keep_final = all(f is not None for f in finals)
        lengths = np.array(ends) - np.array(starts)
        steps = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        if keep_final:
            obs_parts = []
            for s, e, f in zip(starts, ends, finals, strict=True):
                assert f is not None  # keep_final
                obs_parts.extend([self.observations[s:e], f[None]])
            observations = np.concatenate(obs_parts)
        else:
            observations = self.observations[steps]
        metadata = DatasetMetadata(
            name=name,
            source="replay-buffer",
            env_id=self.env_id,
            observation_space=self.observation_space,
            action_space=self.action_space,
        )
        term = np.array(terminated, dtype=bool)
        return TrajectoryDataset(
            observations=observations,
            actions=self.actions[steps],
            rewards=self.rewards[steps],
            episode_starts=np.concatenate([[0], np.cumsum(lengths)]),
            terminated=term,
            truncated=~term,
            metadata=metadata,
        )

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the buffer's whole state to the folder ``path`` (atomically)."""
        from minari.serialization import serialize_space

        path = Path(path)
        with atomic_dir(path) as tmp:
            used = np.concatenate(
                [np.arange(i * self.lane, i * self.lane + f) for i, f in enumerate(self._fill)]
            )
            for key in ("observations", "actions", "rewards", "visits"):
                np.save(tmp / f"{key}.npy", getattr(self, key)[used], allow_pickle=False)
            has_final = [f is not None for f in self._finals]
            finals = [f for f in self._finals if f is not None]
            final_array = (
                np.stack(finals)
                if finals
                else np.zeros((0, *self.observations.shape[1:]), self.observations.dtype)
            )
            np.save(tmp / "final_observations.npy", final_array, allow_pickle=False)
            state = {
                "format": "seqrl-replay",
                "version": 1,
                "capacity": self.lane * self.num_envs,
                "num_envs": self.num_envs,
                "env_id": self.env_id,
                "observation_space": serialize_space(self.observation_space),
                "action_space": serialize_space(self.action_space),
                "fill": self._fill.tolist(),
                "begin": self._begin.tolist(),
                "starts": self._starts,
                "ends": self._ends,
                "terminated": self._terminated,
                "has_final": has_final,
                "data_version": self._version,
            }
            (tmp / STATE_FILE).write_text(json.dumps(state))
        return path

    @classmethod
    def load(cls, path: str | Path, capacity: int | None = None) -> ReplayBuffer:
        """Read a folder written by :meth:`save`; ``capacity`` may enlarge the buffer (a resumed
        run with a larger budget)."""
        from minari.serialization import deserialize_space

        path = Path(path)
        state_file = path / STATE_FILE
        if not state_file.is_file():
            raise DataError(f"{path}: not a seqrl replay buffer (no {STATE_FILE})")
        try:
            state = json.loads(state_file.read_text())
            saved = int(state["capacity"])
            num_envs = int(state["num_envs"])
            buffer = cls(
                capacity=max(saved, capacity or 0),
                num_envs=num_envs,
                observation_space=deserialize_space(state["observation_space"]),
                action_space=deserialize_space(state["action_space"]),
                env_id=state.get("env_id"),
            )
        except (json.JSONDecodeError, KeyError) as exc:
            raise DataError(f"{state_file}: malformed replay state ({exc})") from None
        fill = np.array(state["fill"], dtype=np.int64)
        used = np.concatenate(
            [np.arange(i * buffer.lane, i * buffer.lane + f) for i, f in enumerate(fill)]
        )
        for key in ("observations", "actions", "rewards", "visits"):
            file = path / f"{key}.npy"
            if not file.is_file():
                raise DataError(f"{path}: missing key '{key}' ({file.name})")
            array = np.load(file, allow_pickle=False)
            if len(array) != len(used):
                raise DataError(
                    f"{file}: key '{key}' has {len(array)} rows; the state says {len(used)}"
                )
            getattr(buffer, key)[used] = array
        finals = iter(np.load(path / "final_observations.npy", allow_pickle=False))
        buffer._fill = fill
        buffer._begin = np.array(state["begin"], dtype=np.int64)
        old_lane = saved // num_envs

        def moved(flat: int) -> int:  # the same lane and offset in the (maybe larger) buffer
            return (flat // old_lane) * buffer.lane + flat % old_lane if old_lane else flat

        buffer._starts = [moved(int(x)) for x in state["starts"]]
        buffer._ends = [moved(int(x) - 1) + 1 for x in state["ends"]]
        buffer._terminated = [bool(x) for x in state["terminated"]]
        buffer._finals = [next(finals) if has else None for has in state["has_final"]]
        buffer._version = int(state["data_version"])
        return buffer
