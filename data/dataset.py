"""The dataset type every source returns: episodes stored as flat, time-major arrays.

A :class:`TrajectoryDataset` keeps all episodes back to back in one array per field (the layout
of D4RL files and of a replay buffer), plus the episode offsets. Indexing it gives a
:class:`~seqrl.types.Trajectory` whose arrays are views, so nothing is copied; samplers cut
windows straight from the flat arrays. Image observations stay ``uint8``; a dataset saved in
seqrl's own format (:meth:`TrajectoryDataset.save`) is memory-mapped on load, so a large Atari
dataset costs page cache, not heap.

Native format (a folder)::

    NAME/seqrl_dataset.json   metadata, spaces, shapes and dtypes
    NAME/observations.npy     (sum of T_e [+ 1], *obs_shape)
    NAME/actions.npy          (sum of T_e, *act_shape)
    NAME/rewards.npy          (sum of T_e,) float32
    NAME/episode_starts.npy   (E + 1,) int64 offsets into actions
    NAME/terminated.npy, NAME/truncated.npy   (E,) bool
    NAME/info.<key>.npy       optional infos, rows as observations (the header maps keys to files)

Optional per-step infos (``dataset.infos``) follow the observations' row layout; see
:mod:`seqrl.data.infos` for the convention and how sources are converted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from seqrl.data.infos import InfoAssembler, info_file_names, is_info_dtype, record_conversions
from seqrl.errors import DataError
from seqrl.io import atomic_dir
from seqrl.types import Trajectory

Source = Literal["minari", "d4rl", "dqn-replay", "seqrl", "replay-buffer", "memory"]

FORMAT_FILE = "seqrl_dataset.json"
FORMAT_VERSION = 1
ARRAY_FILES = ("observations", "actions", "rewards", "episode_starts", "terminated", "truncated")


@dataclass
class DatasetMetadata:
    """What a dataset is: where it came from and the spaces of the env it was collected in.

    Attributes:
        name: a short name (Minari id, file stem, ...).
        source: which reader produced it.
        location: the file, folder or Minari id it was read from ("" for in-memory data).
        env_id: the gymnasium id of the env, if known.
        observation_space / action_space: gymnasium spaces, if known.
        ref_min_score / ref_max_score: returns of a random and an expert policy, for normalized
            scores ``100 * (R - min) / (max - min)``, where known.
        extra: anything else worth keeping (algorithm name, D4RL split notes, ...); JSON-serializable.
    """

    name: str
    source: Source = "memory"
    location: str = ""
    env_id: str | None = None
    observation_space: gym.Space | None = None
    action_space: gym.Space | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable dict (spaces serialized with Minari's space serializer)."""
        from minari.serialization import serialize_space

        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "env_id": self.env_id,
            "observation_space": None
            if self.observation_space is None
            else serialize_space(self.observation_space),
            "action_space": None
            if self.action_space is None
            else serialize_space(self.action_space),
            "ref_min_score": self.ref_min_score,
            "ref_max_score": self.ref_max_score,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetMetadata:
        """Inverse of :meth:`to_json`."""
        from minari.serialization import deserialize_space

        spaces = {
            key: None if data.get(key) is None else deserialize_space(data[key])
            for key in ("observation_space", "action_space")
        }
        return cls(
            name=data["name"],
            source=data.get("source", "seqrl"),
            location=data.get("location", ""),
            env_id=data.get("env_id"),
            ref_min_score=data.get("ref_min_score"),
            ref_max_score=data.get("ref_max_score"),
            extra=dict(data.get("extra") or {}),
            **spaces,
        )


@dataclass
class EpisodeIndex:
    """Where each episode lies in flat step arrays: what samplers read (datasets and replay buffers).

    Attributes:
        observations / actions / rewards: flat storage; step ``s`` of episode ``e`` is row
            ``starts[e] + s`` of ``actions``/``rewards`` and row ``starts[e] + s + obs_offsets[e]``
            of ``observations``.
        starts / ends: ``(E,)`` int64 flat step range ``[start, end)`` of each episode.
        obs_offsets: ``(E,)`` int64.
        terminated: ``(E,)`` bool, the episode ended in a terminal state.
        version: changes whenever the data changes (samplers cache derived arrays per version).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    obs_offsets: np.ndarray
    terminated: np.ndarray
    version: int = 0

    @property
    def lengths(self) -> np.ndarray:
        """``(E,)`` steps per episode."""
        return self.ends - self.starts


class TrajectoryDataset(Sequence[Trajectory]):
    """Episodes stored back to back; ``dataset[i]`` is episode ``i`` as a :class:`Trajectory` (views).

    Args:
        observations: ``(S + E, *obs_shape)`` when every episode keeps the observation after its
            last action (``has_final_observation``), else ``(S, *obs_shape)``; ``S`` = total steps,
            ``E`` = episodes. May be a ``np.memmap``.
        actions: ``(S, *act_shape)``; integer for discrete actions.
        rewards: ``(S,)`` float32.
        episode_starts: ``(E + 1,)`` int64, episode ``e`` is steps ``starts[e]:starts[e + 1]``.
        terminated / truncated: ``(E,)`` bool (terminated wins).
        metadata: where the data came from.
        infos: optional per-step infos, one flat numeric or bool array per key with as many rows
            as ``observations`` (row ``i`` belongs to observation row ``i``; see
            :mod:`seqrl.data.infos`). May be ``np.memmap``. Kept sorted by key.
    """

    def __init__(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        episode_starts: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        metadata: DatasetMetadata,
        infos: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.episode_starts = np.asarray(episode_starts, dtype=np.int64)
        self.terminated = np.asarray(terminated, dtype=bool)
        self.truncated = np.asarray(truncated, dtype=bool) & ~self.terminated
        self.metadata = metadata
        self.infos: dict[str, np.ndarray] = dict(
            sorted((infos or {}).items(), key=lambda kv: str(kv[0]))
        )
        self._validate()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_trajectories(
        cls, trajectories: Sequence[Trajectory], metadata: DatasetMetadata
    ) -> TrajectoryDataset:
        """Concatenate episodes (copies once). All must agree on keeping the final observation.

        ``Trajectory.infos`` are kept: every episode must have the same keys (nested dicts are
        flattened as ``a/b``), numeric or bool arrays of ``T`` or ``T + 1`` rows with the same
        per-step shape, else a :class:`DataError` names the key. Rows are converted to the
        observations' layout (:mod:`seqrl.data.infos`); dtypes are promoted across episodes.
        """
        where = metadata.location or metadata.name
        if len(trajectories) == 0:
            raise DataError(f"{where}: empty dataset (no episodes)")
        finals = {t.has_final_observation for t in trajectories}
        if len(finals) > 1:
            raise DataError(
                f"{where}: some episodes keep the observation after the last action and others do "
                "not; drop it from all (observations[:T]) or keep it in all"
            )
        lengths = np.array([len(t) for t in trajectories], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        final = finals.pop()
        dtypes: dict[str, np.dtype] = {}
        for t in trajectories:
            for key, value in t.infos.items():
                dtype = np.asarray(value).dtype
                if isinstance(value, Mapping) or not is_info_dtype(dtype):
                    continue  # the assembler names the key
                dtypes[key] = np.result_type(dtypes.get(key, dtype), dtype)
        rows = int(lengths.sum()) + (len(trajectories) if final else 0)
        assembler = InfoAssembler(where, rows, final, strict=True, dtypes=dtypes)
        for t in trajectories:
            assembler.add(t.infos, len(t))
        infos = assembler.result()
        metadata.extra.pop("infos_final_row_repeated", None)
        record_conversions(metadata.extra, assembler.repeated, {})
        return cls(
            observations=np.concatenate([t.observations for t in trajectories]),
            actions=np.concatenate([t.actions for t in trajectories]),
            rewards=np.concatenate([t.rewards for t in trajectories]).astype(
                np.float32, copy=False
            ),
            episode_starts=starts,
            terminated=np.array([t.terminated for t in trajectories]),
            truncated=np.array([t.truncated for t in trajectories]),
            metadata=metadata,
            infos=infos,
        )

    def _validate(self) -> None:
        where = self.metadata.location or self.metadata.name
        starts = self.episode_starts
        if len(starts) < 2:
            raise DataError(f"{where}: empty dataset (no episodes)")
        if starts[0] != 0 or np.any(np.diff(starts) <= 0):
            raise DataError(f"{where}: key 'episode_starts' must start at 0 and strictly increase")
        steps, episodes = int(starts[-1]), len(starts) - 1
        if len(self.actions) != steps:
            raise DataError(
                f"{where}: key 'actions' has {len(self.actions)} rows for {steps} steps"
            )
        if self.rewards.shape != (steps,):
            raise DataError(
                f"{where}: key 'rewards' has shape {self.rewards.shape}; expected ({steps},)"
            )
        if len(self.observations) not in (steps, steps + episodes):
            raise DataError(
                f"{where}: key 'observations' has {len(self.observations)} rows; expected {steps} "
                f"(one per step) or {steps + episodes} (plus one final observation per episode)"
            )
        for key in ("terminated", "truncated"):
            if getattr(self, key).shape != (episodes,):
                raise DataError(
                    f"{where}: key '{key}' must have one entry per episode ({episodes})"
                )
        for key, value in self.infos.items():
            if not isinstance(key, str) or not key:
                raise DataError(f"{where}: info {key!r}: names must be non-empty strings")
            if not is_info_dtype(value.dtype):
                raise DataError(
                    f"{where}: info '{key}' has dtype {value.dtype}; expected numbers or bool"
                )
            if value.ndim == 0 or len(value) != len(self.observations):
                raise DataError(
                    f"{where}: info '{key}' has shape {value.shape}; expected "
                    f"{len(self.observations)} rows, one per observation row"
                )

    # -- sequence protocol --------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of episodes."""
        return len(self.episode_starts) - 1

    def __getitem__(self, index: int) -> Trajectory:  # type: ignore[override]
        """Episode ``index`` as a :class:`Trajectory` of views into the flat arrays."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"episode {index} out of range ({len(self)} episodes)")
        e = index % len(self)
        start, end = int(self.episode_starts[e]), int(self.episode_starts[e + 1])
        offset = e if self.has_final_observation else 0
        extra = 1 if self.has_final_observation else 0
        return Trajectory(
            observations=self.observations[start + offset : end + offset + extra],
            actions=self.actions[start:end],
            rewards=self.rewards[start:end],
            terminated=bool(self.terminated[e]),
            truncated=bool(self.truncated[e]),
            infos={
                key: value[start + offset : end + offset + extra]
                for key, value in self.infos.items()
            },
        )

    def __iter__(self) -> Iterator[Trajectory]:
        for e in range(len(self)):
            yield self[e]

    def __repr__(self) -> str:
        return (
            f"TrajectoryDataset({self.metadata.name!r}, source={self.metadata.source}, "
            f"episodes={len(self)}, steps={self.num_steps}, obs={self.observation_shape} "
            f"{self.observations.dtype}, actions={self.action_shape} {self.actions.dtype})"
        )

    # -- properties ---------------------------------------------------------------------------

    @property
    def num_steps(self) -> int:
        """Total number of steps (actions) over all episodes."""
        return int(self.episode_starts[-1])

    @property
    def has_final_observation(self) -> bool:
        """Whether each episode keeps the observation after its last action (``T + 1`` rows)."""
        return len(self.observations) != self.num_steps

    @property
    def episode_lengths(self) -> np.ndarray:
        """``(E,)`` int64 steps per episode."""
        return np.diff(self.episode_starts)

    @property
    def observation_offsets(self) -> np.ndarray:
        """``(E,)`` int64: the observation of step ``s`` of episode ``e`` is row ``s + offsets[e]``."""
        if self.has_final_observation:
            return np.arange(len(self), dtype=np.int64)
        return np.zeros(len(self), dtype=np.int64)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one observation."""
        return tuple(self.observations.shape[1:])

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action (``()`` for discrete actions)."""
        return tuple(self.actions.shape[1:])

    @property
    def discrete_actions(self) -> bool:
        """Whether actions are integer indices."""
        return np.issubdtype(self.actions.dtype, np.integer)

    @property
    def episode_returns(self) -> np.ndarray:
        """``(E,)`` float64 undiscounted return of each episode (the last reward included)."""
        sums = np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts[:-1])
        return sums

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays, infos included (for a memory-mapped dataset: bytes on disk)."""
        arrays = sum(int(getattr(self, k).nbytes) for k in ARRAY_FILES)
        return arrays + sum(int(v.nbytes) for v in self.infos.values())

    def episode_index(self) -> EpisodeIndex:
        """The flat layout, for samplers."""
        return EpisodeIndex(
            observations=self.observations,
            actions=self.actions,
            rewards=self.rewards,
            starts=self.episode_starts[:-1],
            ends=self.episode_starts[1:],
            obs_offsets=self.observation_offsets,
            terminated=self.terminated,
            version=0,
        )

    def returns_to_go(self) -> np.ndarray:
        """``(S,)`` float32 undiscounted sum of rewards from each step to its episode's end."""
        cs = np.cumsum(self.rewards, dtype=np.float64)
        ends = np.repeat(self.episode_starts[1:] - 1, self.episode_lengths)
        return (cs[ends] - cs + self.rewards).astype(np.float32)

    # -- native format ------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the dataset to the folder ``path`` (atomically: a temp folder renamed at the end)."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            for key in ARRAY_FILES:
                np.save(tmp / f"{key}.npy", np.asarray(getattr(self, key)), allow_pickle=False)
            info_files = info_file_names(list(self.infos))
            for key, file_name in info_files.items():
                np.save(tmp / file_name, np.asarray(self.infos[key]), allow_pickle=False)
            header = {
                "format": "seqrl-dataset",
                "version": FORMAT_VERSION,
                "episodes": len(self),
                "steps": self.num_steps,
                "metadata": self.metadata.to_json(),
                "infos": info_files,
            }
            (tmp / FORMAT_FILE).write_text(json.dumps(header, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> TrajectoryDataset:
        """Read a folder written by :meth:`save`; arrays are memory-mapped read-only when ``mmap``."""
        path = Path(path)
        header_file = path / FORMAT_FILE
        if not header_file.is_file():
            raise DataError(f"{path}: not a seqrl dataset (no {FORMAT_FILE})")
        try:
            header = json.loads(header_file.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{header_file}: not valid JSON ({exc.msg})") from None
        if header.get("format") != "seqrl-dataset":
            raise DataError(f"{header_file}: key 'format' is not 'seqrl-dataset'")
        arrays: dict[str, np.ndarray] = {}
        for key in ARRAY_FILES:
            file = path / f"{key}.npy"
            if not file.is_file():
                raise DataError(f"{path}: missing key '{key}' ({file.name})")
            try:
                arrays[key] = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise DataError(f"{file}: unreadable array ({exc})") from None
        infos: dict[str, np.ndarray] = {}
        info_files = header.get("infos") or {}  # absent in folders written before infos
        if not isinstance(info_files, dict):
            raise DataError(f"{header_file}: key 'infos' must map info names to file names")
        for key, file_name in info_files.items():
            if (
                not isinstance(file_name, str)
                or Path(file_name).name != file_name
                or not file_name.startswith("info.")
                or not file_name.endswith(".npy")
            ):
                raise DataError(f"{header_file}: info '{key}' has a bad file name {file_name!r}")
            file = path / file_name
            if not file.is_file():
                raise DataError(f"{path}: missing info '{key}' ({file_name})")
            try:
                infos[key] = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise DataError(f"{file}: unreadable array ({exc})") from None
        metadata = DatasetMetadata.from_json(header["metadata"])
        metadata.source = "seqrl"
        metadata.location = str(path)
        return cls(metadata=metadata, infos=infos, **arrays)


def check_spaces(
    dataset: TrajectoryDataset,
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
) -> None:
    """Raise :class:`DataError` naming the file and key if the data does not fit the env's spaces."""
    where = dataset.metadata.location or dataset.metadata.name
    if action_space is not None:
        if isinstance(action_space, gym.spaces.Discrete):
            if not dataset.discrete_actions or dataset.action_shape != ():
                raise DataError(
                    f"{where}: key 'actions' has shape {dataset.action_shape} {dataset.actions.dtype}; "
                    f"the env's action space is {action_space}"
                )
            n = int(action_space.n)
            lo, hi = int(np.min(dataset.actions)), int(np.max(dataset.actions))
            if lo < action_space.start or hi >= action_space.start + n:
                raise DataError(
                    f"{where}: key 'actions' holds values in [{lo}, {hi}]; the env's action space "
                    f"is {action_space}"
                )
        elif isinstance(action_space, gym.spaces.Box):
            if dataset.action_shape != tuple(action_space.shape):
                raise DataError(
                    f"{where}: key 'actions' has shape {dataset.action_shape} per step; the env's "
                    f"action space is {action_space}"
                )
    if observation_space is not None and isinstance(observation_space, gym.spaces.Box):
        if dataset.observation_shape != tuple(observation_space.shape):
            raise DataError(
                f"{where}: key 'observations' has shape {dataset.observation_shape} per step; the "
                f"env's observation space is {observation_space}"
            )
