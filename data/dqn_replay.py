"""DQN-Replay Atari data (Agarwal et al. 2020, arXiv 1907.04543), as the Decision Transformer's
Atari experiments read it (``gs://atari-replay-datasets``, via dopamine's replay buffer).

A game's folder ``.../Breakout/1/replay_logs/`` holds, per checkpoint ``N``, gzipped ``np.save``
files ``$store$_observation_ckpt.N.gz`` (steps, 84, 84) uint8, ``$store$_action_ckpt.N.gz``
(steps,) int32, ``$store$_reward_ckpt.N.gz`` (steps,) float32 and ``$store$_terminal_ckpt.N.gz``
(steps,) uint8. Row ``i`` is one step: the frame seen, the action taken on it, the reward and
whether the episode ended with it. Frames are single 84x84 grayscale images kept as ``uint8``;
samplers stack the last 4 per step (``frame_stack=4``) instead of storing 4 copies.

Checkpoint files are read in full (decompressed once into memory, ``uint8``); with ``cache``,
the result is saved in seqrl's format and memory-mapped on later loads.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.data.validate import check_array
from seqrl.errors import DataError

KEYS = ("observation", "action", "reward", "terminal")
_PATTERN = re.compile(r"^\$store\$_observation_ckpt\.(\d+)\.gz$")


def dqn_replay_checkpoints(directory: str | Path) -> list[int]:
    """The checkpoint numbers with an observation file in ``directory``, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = (_PATTERN.match(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def _read(file: Path) -> np.ndarray:
    if not file.is_file():
        raise DataError(f"{file.parent}: missing key '{file.name}'")
    try:
        with gzip.open(file, "rb") as fh:
            return np.load(fh, allow_pickle=False)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"{file}: unreadable gzipped numpy array ({exc})") from None


def load_dqn_replay(
    directory: str | Path,
    checkpoints: Sequence[int] | None = None,
    max_steps: int | None = None,
    game: str | None = None,
    cache: str | Path | None = None,
) -> TrajectoryDataset:
    """Read DQN-Replay checkpoints into one dataset of single-frame ``uint8`` observations.

    Args:
        directory: the ``replay_logs`` folder.
        checkpoints: which checkpoint numbers to read, in order (default: all found).
        max_steps: stop after this many steps (the DT paper uses 500k of the 50M).
        game: e.g. ``Breakout``, for the metadata (env id ``ALE/Breakout-v5``); default: the
            game folder of the published layout ``<Game>/<run>/replay_logs``, if it is one.
        cache: a folder: load from it if it holds a seqrl dataset, else save the result there.

    Each checkpoint's trailing unfinished episode is kept, flagged truncated (checkpoints are not
    consecutive in time, so episodes never continue across them).
    """
    directory = Path(directory)
    if cache is not None and (Path(cache) / "seqrl_dataset.json").is_file():
        return TrajectoryDataset.load(cache)
    available = dqn_replay_checkpoints(directory)
    if not available:
        raise DataError(f"{directory}: no DQN-Replay files ($store$_observation_ckpt.N.gz)")
    chosen = list(checkpoints) if checkpoints is not None else available
    parts: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    starts: list[np.ndarray] = []
    terminated: list[np.ndarray] = []
    total = 0
    for n in chosen:
        if n not in available:
            raise DataError(f"{directory}: no checkpoint {n} (found {available})")
        arrays = {k: _read(directory / f"$store$_{k}_ckpt.{n}.gz") for k in KEYS}
        where = str(directory / f"$store$_*_ckpt.{n}.gz")  # the key names the file
        obs = arrays["observation"]
        if obs.dtype != np.uint8 or obs.ndim != 3:
            raise DataError(
                f"{where}: key 'observation' has {obs.dtype} {obs.shape}; expected uint8 (N, H, W)"
            )
        rows = len(obs)
        check_array(where, "action", arrays["action"], "index", rows=rows, reference="observation")
        check_array(where, "reward", arrays["reward"], "number", rows=rows, reference="observation")
        check_array(
            where, "terminal", arrays["terminal"], "flag", rows=rows, reference="observation"
        )
        if max_steps is not None:
            rows = min(rows, max_steps - total)
        term = arrays["terminal"][:rows].astype(bool)
        ends = np.flatnonzero(term) + 1
        local = np.concatenate([[0], ends]).astype(np.int64)
        if local[-1] < rows:  # trailing unfinished episode
            local = np.append(local, rows)
        starts.append(local[:-1] + total)
        terminated.append(term[local[1:] - 1])
        for k in KEYS:
            parts[k].append(arrays[k][:rows])
        total += rows
        if max_steps is not None and total >= max_steps:
            break
    actions = np.concatenate(parts["action"]).astype(np.int64)
    episode_terminated = np.concatenate(terminated)
    if game is None and directory.name == "replay_logs" and directory.parent.name.isdigit():
        game = directory.parent.parent.name  # the published layout: <Game>/<run>/replay_logs
    metadata = DatasetMetadata(
        name=f"dqn-replay-{game or directory.name}",
        source="dqn-replay",
        location=str(directory),
        env_id=f"ALE/{game}-v5" if game else None,
        observation_space=gym.spaces.Box(0, 255, parts["observation"][0].shape[1:], np.uint8),
        action_space=gym.spaces.Discrete(int(actions.max()) + 1),
        extra={"checkpoints": chosen, "frame_stack": 4},
    )
    dataset = TrajectoryDataset(
        observations=np.concatenate(parts["observation"]),
        actions=actions,
        rewards=np.concatenate(parts["reward"]).astype(np.float32),
        episode_starts=np.concatenate([*starts, [total]]),
        terminated=episode_terminated,
        truncated=~episode_terminated,
        metadata=metadata,
    )
    if cache is not None:
        dataset.save(cache)
        return TrajectoryDataset.load(cache)
    return dataset
