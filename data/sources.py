"""One entry point for every source: :func:`load_dataset` resolves a name or a path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqrl.data.d4rl import is_hdf5, load_d4rl
from seqrl.data.dataset import FORMAT_FILE, TrajectoryDataset, check_spaces
from seqrl.data.dqn_replay import dqn_replay_checkpoints, load_dqn_replay
from seqrl.data.minari_source import load_minari, minari_root
from seqrl.errors import DataError


def load_dataset(
    name_or_path: str | Path,
    env_id: str | None = None,
    max_episode_steps: int | None = None,
    download: bool = True,
    mmap: bool = True,
) -> TrajectoryDataset:
    """Load a dataset from whatever ``name_or_path`` names.

    - a folder with ``seqrl_dataset.json``: seqrl's own format (memory-mapped when ``mmap``);
    - an HDF5 file: a D4RL file (``env_id`` / ``max_episode_steps`` as in :func:`load_d4rl`);
    - a folder of ``$store$_*_ckpt.N.gz`` files: DQN-Replay;
    - a Minari dataset folder (holding ``data/``) or any other string: a Minari dataset id.

    With ``env_id``, the data's spaces are checked against the env's (:func:`check_env`).
    """
    path = Path(name_or_path)
    if path.is_dir() and (path / FORMAT_FILE).is_file():
        dataset = TrajectoryDataset.load(path, mmap=mmap)
    elif path.is_file():
        if not is_hdf5(path):
            raise DataError(f"{path}: not an HDF5 file nor a seqrl dataset folder")
        return load_d4rl(path, env_id=env_id, max_episode_steps=max_episode_steps)
    elif path.is_dir() and dqn_replay_checkpoints(path):
        dataset = load_dqn_replay(path)
    elif (
        path.is_dir()
        and (path / "data").is_dir()
        and path.resolve().is_relative_to(minari_root().resolve())
    ):
        dataset = load_minari(
            str(path.resolve().relative_to(minari_root().resolve())), download=False
        )
    elif path.is_dir():
        raise DataError(f"{path}: folder holds no seqrl, Minari or DQN-Replay dataset")
    elif str(name_or_path).startswith(("/", ".", "~")) or path.suffix in (".hdf5", ".h5"):
        raise DataError(f"{path}: no such file")
    else:
        dataset = load_minari(str(name_or_path), download=download)
    if env_id is not None:
        check_env(dataset, env_id)
    return dataset


def check_env(dataset: TrajectoryDataset, env_id: str) -> None:
    """Check the dataset's spaces against the env's; :class:`DataError` names the file and key.

    For Atari ids only the action space is checked: the observation shape depends on the
    preprocessing protocol (84x84 gray frames for DQN-Replay, 64x64 RGB for IRIS, ...).
    """
    import gymnasium as gym
    from seqrl.envs import check_env_id, is_atari

    check_env_id(env_id)
    env = gym.make(env_id)
    try:
        observation_space = None if is_atari(env_id) else env.observation_space
        check_spaces(dataset, observation_space, env.action_space)
    finally:
        env.close()


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset under Minari's root, as ``seqrl datasets list`` shows it."""

    dataset_id: str
    episodes: int
    steps: int
    env_id: str | None
    path: Path


def list_datasets() -> list[DatasetEntry]:
    """The Minari datasets under :func:`minari_root` (seqrl's collections included), by id."""
    import minari

    entries = []
    for dataset_id, meta in sorted(minari.list_local_datasets().items()):
        spec = meta.get("env_spec")
        env_id = None
        if isinstance(spec, str):
            import json

            try:
                env_id = json.loads(spec).get("id")
            except (json.JSONDecodeError, AttributeError):
                env_id = None
        entries.append(
            DatasetEntry(
                dataset_id=dataset_id,
                episodes=int(meta.get("total_episodes", 0)),
                steps=int(meta.get("total_steps", 0)),
                env_id=env_id,
                path=minari_root() / dataset_id,
            )
        )
    return entries
