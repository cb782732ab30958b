"""D4RL HDF5 files: the episode split and every kind of bad file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from seqrl.data.d4rl import load_d4rl
from seqrl.data.sources import load_dataset
from seqrl.errors import DataError
from synth_data import write_d4rl


def flags(n: int, rows: list[int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[rows] = True
    return out


def test_split_at_terminals_timeouts_and_trailing_partial(tmp_path: Path) -> None:
    path = write_d4rl(
        tmp_path / "hopper-medium-v2.hdf5", terminals=flags(10, [2]), timeouts=flags(10, [6])
    )
    dataset = load_d4rl(path)
    np.testing.assert_array_equal(dataset.episode_starts, [0, 3, 7, 10])
    np.testing.assert_array_equal(dataset.terminated, [True, False, False])
    np.testing.assert_array_equal(dataset.truncated, [False, True, True])  # timeout, then partial
    assert dataset.metadata.extra["trailing_partial_episode"] is True
    # T + 1 observations: each episode's rows, then next_observations of its last row
    import h5py

    with h5py.File(path) as f:
        obs, next_obs, rewards = f["observations"][()], f["next_observations"][()], f["rewards"][()]
    np.testing.assert_array_equal(
        dataset[0].observations, np.concatenate([obs[0:3], next_obs[2:3]])
    )
    np.testing.assert_array_equal(
        dataset[2].observations, np.concatenate([obs[7:10], next_obs[9:10]])
    )
    np.testing.assert_array_equal(dataset[1].rewards, rewards[3:7])
    # D4RL reference scores from the file name
    assert dataset.metadata.ref_min_score == pytest.approx(-20.272305)


def test_file_ending_on_a_terminal_has_no_partial_episode(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "x.hdf5", terminals=flags(10, [4, 9]))
    dataset = load_d4rl(path)
    np.testing.assert_array_equal(dataset.episode_starts, [0, 5, 10])
    assert dataset.terminated.all() and dataset.metadata.extra["trailing_partial_episode"] is False


def test_without_next_observations_keeps_t_observations(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "x.hdf5", next_observations=None, terminals=flags(10, [4]))
    dataset = load_d4rl(path)
    assert not dataset.has_final_observation and len(dataset[0].observations) == 5


def test_without_timeouts_needs_the_episode_limit(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "x.hdf5", timeouts=None, terminals=flags(10, [2]))
    with pytest.raises(DataError, match=r"x.hdf5: missing key 'timeouts'; give the episode limit"):
        load_d4rl(path)
    dataset = load_d4rl(path, max_episode_steps=4)
    np.testing.assert_array_equal(dataset.episode_starts, [0, 3, 7, 10])
    np.testing.assert_array_equal(dataset.terminated, [True, False, False])
    # the limit from the env id: Pendulum-v1 has 200 steps, so no split beyond the terminal
    pendulum = write_d4rl(
        tmp_path / "p.hdf5", obs_dim=3, act_dim=1, timeouts=None, terminals=flags(10, [2])
    )
    np.testing.assert_array_equal(
        load_d4rl(pendulum, env_id="Pendulum-v1").episode_starts, [0, 3, 10]
    )


def test_action_space_mismatching_the_env(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "x.hdf5", obs_dim=3, act_dim=2)
    with pytest.raises(
        DataError, match=r"x.hdf5: key 'actions' has shape \(2,\) per step; the env's action space"
    ):
        load_d4rl(path, env_id="Pendulum-v1")
    with pytest.raises(DataError, match=r"x.hdf5: key 'actions'"):
        load_dataset(path, env_id="Pendulum-v1")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"terminals": None}, "missing key 'terminals'"),
        (
            {"rewards": np.zeros(7, np.float32)},
            "key 'rewards' has 7 rows but 'observations' has 10",
        ),
        (
            {
                "observations": np.where(
                    np.arange(10)[:, None] == 4, np.nan, np.zeros((10, 3), np.float32)
                )
            },
            "key 'observations' contains NaN or inf (first at row 4)",
        ),
        (
            {"actions": np.array([[np.inf, 0]] * 10, np.float32)},
            "key 'actions' contains NaN or inf",
        ),
        ({"actions": np.array([["a", "b"]] * 10, dtype="S1")}, "key 'actions' has dtype |S1"),
        ({"terminals": np.full(10, 3)}, "key 'terminals' holds values other than 0 and 1"),
        (
            {
                k: np.zeros((0, 3), np.float32)
                for k in ("observations", "next_observations", "actions")
            }
            | {k: np.zeros(0) for k in ("rewards", "terminals", "timeouts")},
            "key 'observations' is empty",
        ),
    ],
)
def test_bad_files(tmp_path: Path, overrides: dict, message: str) -> None:
    path = write_d4rl(tmp_path / "bad.hdf5", **overrides)
    with pytest.raises(DataError, match=re.escape("bad.hdf5: " + message)):
        load_d4rl(path)


def test_truncated_and_non_hdf5_files(tmp_path: Path) -> None:
    path = write_d4rl(tmp_path / "cut.hdf5", n=5000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.hdf5: unreadable HDF5 file"):
        load_d4rl(path)
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match=r"notes.hdf5: not an HDF5 file"):
        load_d4rl(text)
    with pytest.raises(DataError, match="not an HDF5 file"):
        load_dataset(text)
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "missing.hdf5")


def test_cli_info_on_a_d4rl_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from seqrl.cli import main

    path = write_d4rl(tmp_path / "walker2d-medium-v2.hdf5", timeouts=None, terminals=flags(10, [2]))
    assert main(["datasets", "info", str(path)]) == 1
    assert "missing key 'timeouts'" in capsys.readouterr().err
    assert main(["datasets", "info", str(path), "--max-episode-steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "episodes: 3 (1 terminated, 2 truncated)" in out and "steps: 10" in out
    assert "reference scores: min 1.629008" in out
