"""TrajectoryDataset: construction, views, native save/load (memory-mapped), statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.data.stats import dataset_stats, observation_stats
from seqrl.errors import DataError
from seqrl.types import Trajectory
from synth_data import make_dataset, make_trajectories


def test_episodes_are_views_of_the_flat_arrays() -> None:
    trajectories = make_trajectories((5, 8, 3))
    dataset = make_dataset((5, 8, 3))
    assert len(dataset) == 3 and dataset.num_steps == 16 and dataset.has_final_observation
    for original, episode in zip(trajectories, dataset, strict=True):
        np.testing.assert_array_equal(original.observations, episode.observations)
        np.testing.assert_array_equal(original.actions, episode.actions)
        assert episode.terminated == original.terminated and episode.truncated == original.truncated
        assert np.shares_memory(episode.observations, dataset.observations)
    assert dataset[-1].actions.shape == (3, 2)


def test_returns_and_returns_to_go() -> None:
    dataset = make_dataset((5, 8, 3))
    expected = [t.episode_return for t in make_trajectories((5, 8, 3))]
    np.testing.assert_allclose(dataset.episode_returns, expected, rtol=1e-6)
    rtg = dataset.returns_to_go()
    for e, trajectory in enumerate(dataset):
        s, t = dataset.episode_starts[e], dataset.episode_starts[e + 1]
        np.testing.assert_allclose(rtg[s:t], trajectory.returns_to_go(), rtol=1e-5, atol=1e-6)


def test_save_load_is_memory_mapped_and_identical(tmp_path: Path) -> None:
    dataset = make_dataset()
    dataset.metadata.env_id = "Pendulum-v1"
    dataset.metadata.ref_min_score, dataset.metadata.ref_max_score = -1.0, 2.0
    dataset.save(tmp_path / "ds")
    loaded = TrajectoryDataset.load(tmp_path / "ds")
    assert isinstance(loaded.observations, np.memmap)
    for name in ("observations", "actions", "rewards", "episode_starts", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(dataset, name))
    assert loaded.metadata.env_id == "Pendulum-v1" and loaded.metadata.ref_max_score == 2.0
    assert loaded.metadata.action_space == dataset.metadata.action_space
    assert not list(tmp_path.glob(".*"))  # no temp folder left


def test_image_dataset_stays_uint8_and_costs_no_heap(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, size=(201, 8, 8, 3), dtype=np.uint8)
    trajectory = Trajectory(
        frames, np.zeros(200, np.int64), np.ones(200, np.float32), terminated=True
    )
    dataset = TrajectoryDataset.from_trajectories([trajectory], DatasetMetadata("atari"))
    dataset.save(tmp_path / "atari")
    loaded = TrajectoryDataset.load(tmp_path / "atari")
    assert loaded.observations.dtype == np.uint8 and isinstance(loaded.observations, np.memmap)
    raw = frames.nbytes + 200 * 8 + 200 * 4
    assert loaded.nbytes <= 1.2 * raw


def test_stats_and_observation_normalisation() -> None:
    dataset = make_dataset((5, 8, 3))
    stats = dataset_stats(dataset)
    assert (stats.episodes, stats.steps, stats.terminated, stats.truncated) == (3, 16, 2, 1)
    assert (stats.length_min, stats.length_max) == (3, 8)
    obs = np.concatenate([t.obs for t in dataset])  # final observations excluded
    norm = observation_stats(dataset, chunk=4)
    np.testing.assert_allclose(norm.mean, obs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.std, obs.std(0) + 1e-6, rtol=1e-5)
    assert any("episodes: 3" in line for line in stats.lines())


def test_mixed_final_observations_and_empty_are_errors() -> None:
    trajectories = make_trajectories((3, 4))
    trajectories[1] = Trajectory(
        trajectories[1].obs, trajectories[1].actions, trajectories[1].rewards
    )
    with pytest.raises(DataError, match="some episodes keep"):
        TrajectoryDataset.from_trajectories(trajectories, DatasetMetadata("x"))
    with pytest.raises(DataError, match="empty dataset"):
        TrajectoryDataset.from_trajectories([], DatasetMetadata("x"))


def test_native_bad_input(tmp_path: Path) -> None:
    make_dataset().save(tmp_path / "ds")
    (tmp_path / "ds" / "rewards.npy").unlink()
    with pytest.raises(DataError, match=r"ds: missing key 'rewards'"):
        TrajectoryDataset.load(tmp_path / "ds")
    make_dataset().save(tmp_path / "ds2")
    np.save(tmp_path / "ds2" / "actions.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(DataError, match=r"ds2: key 'actions' has 3 rows for 16 steps"):
        TrajectoryDataset.load(tmp_path / "ds2")
    header = tmp_path / "ds2" / "seqrl_dataset.json"
    header.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="key 'format'"):
        TrajectoryDataset.load(tmp_path / "ds2")
    with pytest.raises(DataError, match="not a seqrl dataset"):
        TrajectoryDataset.load(tmp_path)
