"""DQN-Replay checkpoints (gzipped numpy arrays) on small synthetic files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from seqrl.data.dqn_replay import load_dqn_replay
from seqrl.data.sampler import WindowSampler
from seqrl.data.sources import load_dataset
from seqrl.errors import DataError


def write_ckpt(
    directory: Path, n: int, steps: int = 12, terminal_rows: tuple[int, ...] = (3, 8), **over
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "observation": (np.arange(steps, dtype=np.uint8)[:, None, None] + 100 * n)
        .repeat(84, 1)
        .repeat(84, 2),
        "action": (np.arange(steps) % 4).astype(np.int32),
        "reward": np.ones(steps, np.float32),
        "terminal": np.isin(np.arange(steps), terminal_rows).astype(np.uint8),
    }
    arrays.update(over)
    for key, value in arrays.items():
        with gzip.open(directory / f"$store$_{key}_ckpt.{n}.gz", "wb") as fh:
            np.save(fh, value)


def test_reads_checkpoints_and_splits_episodes(tmp_path: Path) -> None:
    logs = tmp_path / "Breakout" / "1" / "replay_logs"
    write_ckpt(logs, 0)
    write_ckpt(logs, 1, terminal_rows=(11,))
    dataset = load_dqn_replay(logs, game="Breakout")
    # ckpt 0: [0..3] [4..8] [9..11 partial]; ckpt 1: [0..11]
    np.testing.assert_array_equal(dataset.episode_starts, [0, 4, 9, 12, 24])
    np.testing.assert_array_equal(dataset.terminated, [True, True, False, True])
    np.testing.assert_array_equal(dataset.truncated, [False, False, True, False])
    assert dataset.observations.dtype == np.uint8 and dataset.observations.shape == (24, 84, 84)
    assert dataset.actions.dtype == np.int64 and dataset.metadata.env_id == "ALE/Breakout-v5"
    assert dataset.metadata.name == "dqn-replay-Breakout"
    # only the chosen checkpoints, and a step budget
    assert load_dqn_replay(logs, checkpoints=[1]).num_steps == 12
    assert load_dqn_replay(logs, max_steps=10).num_steps == 10
    assert load_dataset(logs).num_steps == 24  # resolved by folder contents


def test_cache_and_frame_stacked_windows(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_ckpt(logs, 0)
    cached = load_dqn_replay(logs, cache=tmp_path / "cache")
    assert isinstance(cached.observations, np.memmap)
    assert (tmp_path / "cache" / "seqrl_dataset.json").is_file()
    batch = WindowSampler(cached, context=3, frame_stack=4).sample(8, np.random.default_rng(0))
    assert batch.observations.shape == (8, 3, 4, 84, 84) and batch.observations.dtype == torch.uint8


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no DQN-Replay files"):
        load_dqn_replay(tmp_path)
    write_ckpt(tmp_path / "a", 0, reward=np.ones(5, np.float32))
    with pytest.raises(
        DataError, match=r"\$store\$_\*_ckpt.0.gz: key 'reward' has 5 rows but 'observation' has 12"
    ):
        load_dqn_replay(tmp_path / "a")
    write_ckpt(tmp_path / "b", 0, action=np.ones(12, np.float32))
    with pytest.raises(DataError, match="key 'action' has dtype float32; expected integers"):
        load_dqn_replay(tmp_path / "b")
    write_ckpt(tmp_path / "c", 0)
    (tmp_path / "c" / "$store$_terminal_ckpt.0.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match=r"terminal_ckpt.0.gz: unreadable gzipped numpy array"):
        load_dqn_replay(tmp_path / "c")
    (tmp_path / "c" / "$store$_terminal_ckpt.0.gz").unlink()
    with pytest.raises(DataError, match=r"missing key '\$store\$_terminal_ckpt.0.gz'"):
        load_dqn_replay(tmp_path / "c")
    write_ckpt(tmp_path / "d", 0, observation=np.zeros((12, 84, 84), np.float32))
    with pytest.raises(DataError, match="key 'observation' has float32"):
        load_dqn_replay(tmp_path / "d")


def test_env_check_on_atari_compares_actions_only(tmp_path: Path) -> None:
    write_ckpt(tmp_path / "ok", 0)  # actions 0..3, Breakout has 4
    assert load_dataset(tmp_path / "ok", env_id="ALE/Breakout-v5").num_steps == 12
    write_ckpt(tmp_path / "bad", 0, action=(np.arange(12) % 6).astype(np.int32))
    with pytest.raises(
        DataError,
        match=r"bad: key 'actions' holds values in \[0, 5\]; the env's action space is Discrete\(4\)",
    ):
        load_dataset(tmp_path / "bad", env_id="ALE/Breakout-v5")
