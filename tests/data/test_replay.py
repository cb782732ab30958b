"""Replay buffer: N envs ending episodes at different steps, sampling, datasets, save/load."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from seqrl.data.replay import ReplayBuffer
from seqrl.data.sampler import SequenceSampler, WindowSampler
from seqrl.errors import DataError

OBS = gym.spaces.Box(0, 255, (2, 2), np.uint8)
ACT = gym.spaces.Discrete(3)
# env i ends an episode every LENGTHS[i] steps; env 1's ends are truncations
LENGTHS = (3, 5, 4)


def fill(buffer: ReplayBuffer, steps: int) -> dict[int, list[list[int]]]:
    """Step 3 envs; observation value = 10 * env + step within the episode. Returns the episodes."""
    episodes: dict[int, list[list[int]]] = {i: [[]] for i in range(3)}
    t = np.zeros(3, dtype=int)
    for _ in range(steps):
        obs = np.stack([np.full((2, 2), 10 * i + t[i], np.uint8) for i in range(3)])
        ends = (t + 1) == np.array(LENGTHS)
        final = np.stack([np.full((2, 2), 10 * i + t[i] + 1, np.uint8) for i in range(3)])
        buffer.add(
            obs,
            actions=np.array([0, 1, 2]),
            rewards=t.astype(np.float32) + 1,
            terminated=ends & (np.arange(3) != 1),
            truncated=ends & (np.arange(3) == 1),
            final_observations=final,
        )
        for i in range(3):
            episodes[i][-1].append(int(t[i]))
            if ends[i]:
                episodes[i].append([])
        t = np.where(ends, 0, t + 1)
    return episodes


def test_episodes_finalised_per_env_and_contiguous() -> None:
    buffer = ReplayBuffer(capacity=60, num_envs=3, observation_space=OBS, action_space=ACT)
    fill(buffer, 12)
    # 12 steps: env0 ends 4 episodes, env1 2, env2 3
    assert buffer.num_episodes == 4 + 2 + 3 and buffer.num_steps == 36
    index = buffer.episode_index()
    lengths = index.lengths
    assert sorted(lengths[:9].tolist()) == sorted([3] * 4 + [5] * 2 + [4] * 3)
    assert lengths[9:].tolist() == [2]  # env1's running episode (10, 11 -> steps 0, 1)
    for s, e in zip(index.starts, index.ends, strict=True):
        values = index.observations[s:e, 0, 0]
        env = values[0] // 10
        np.testing.assert_array_equal(values, 10 * env + np.arange(e - s))  # one env, in order
    assert index.terminated[:9].sum() == 7  # env1's two are truncations


def test_sampling_and_dataset_export() -> None:
    buffer = ReplayBuffer(capacity=60, num_envs=3, observation_space=OBS, action_space=ACT)
    fill(buffer, 12)
    rng = np.random.default_rng(0)
    batch = SequenceSampler(buffer, seq_len=4).sample(32, rng)
    assert batch.observations.dtype == torch.uint8 and batch.actions.dtype == torch.int64
    real = batch.observations[..., 0, 0][batch.mask]
    assert (real % 10 < 5).all()
    window = WindowSampler(buffer, context=3).sample(8, rng)
    assert window.mask[:, -1].all()
    dataset = buffer.to_dataset("run")
    assert len(dataset) == 9 and dataset.has_final_observation
    for episode in dataset:
        obs = episode.observations[:, 0, 0]
        np.testing.assert_array_equal(obs, obs[0] + np.arange(len(episode) + 1))
        np.testing.assert_array_equal(episode.rewards, np.arange(1, len(episode) + 1))
    with_running = buffer.to_dataset("run", next_observations=np.zeros((3, 2, 2), np.uint8))
    assert len(with_running) == 10 and with_running.truncated[-1]


def test_next_step_autoreset_steps_are_skipped() -> None:
    buffer = ReplayBuffer(capacity=10, num_envs=2, observation_space=OBS, action_space=ACT)
    obs = np.zeros((2, 2, 2), np.uint8)
    buffer.add(obs, np.array([0, 0]), np.ones(2), np.array([True, False]), np.zeros(2, bool))
    buffer.add(
        obs + 1,
        np.array([1, 1]),
        np.ones(2),
        np.zeros(2, bool),
        np.zeros(2, bool),
        active=np.array([False, True]),
    )
    assert buffer.num_steps == 3 and buffer.num_episodes == 1
    assert not buffer.to_dataset().has_final_observation  # no final observation was given


def test_save_load_resumes_exactly(tmp_path: Path) -> None:
    buffer = ReplayBuffer(
        capacity=60, num_envs=3, observation_space=OBS, action_space=ACT, env_id="X-v0"
    )
    fill(buffer, 7)
    weights = buffer.visit_weights()
    SequenceSampler(buffer, seq_len=2, weights=weights).sample(10, np.random.default_rng(0))
    buffer.save(tmp_path / "replay")
    loaded = ReplayBuffer.load(tmp_path / "replay")
    a, b = buffer.episode_index(), loaded.episode_index()
    for key in ("starts", "ends", "terminated"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(loaded.visits, buffer.visits)
    assert loaded.visits.sum() == 10
    # both continue identically
    fill(buffer, 5), fill(loaded, 5)
    for key in ("observations", "actions", "rewards"):
        np.testing.assert_array_equal(getattr(buffer, key), getattr(loaded, key))
    s1 = SequenceSampler(buffer, seq_len=3).sample(16, np.random.default_rng(5))
    s2 = SequenceSampler(loaded, seq_len=3).sample(16, np.random.default_rng(5))
    assert torch.equal(s1.observations, s2.observations) and torch.equal(s1.mask, s2.mask)


def test_full_buffer_and_bad_folder(tmp_path: Path) -> None:
    buffer = ReplayBuffer(capacity=6, num_envs=3, observation_space=OBS, action_space=ACT)
    fill(buffer, 2)
    with pytest.raises(DataError, match="replay: buffer full"):
        fill(buffer, 1)
    with pytest.raises(DataError, match="not a seqrl replay buffer"):
        ReplayBuffer.load(tmp_path)
    with pytest.raises(DataError, match="no finished episodes"):
        ReplayBuffer(capacity=6, num_envs=3, observation_space=OBS, action_space=ACT).to_dataset()


def test_close_episodes_ends_running_ones_truncated() -> None:
    buffer = ReplayBuffer(capacity=60, num_envs=3, observation_space=OBS, action_space=ACT)
    fill(buffer, 4)  # env0: 1 finished + 1 step running, env1: 4 running, env2: 1 finished
    before = buffer.num_episodes
    buffer.close_episodes()
    assert buffer.num_episodes == before + 2  # env2's new episode has no step yet
    index = buffer.episode_index()
    assert len(index.starts) == buffer.num_episodes  # nothing is running any more
    assert not index.terminated[before:].any()
    fill(buffer, 1)  # the next step of each env starts a new episode
    assert buffer.episode_index().lengths[buffer.num_episodes :].tolist() == [1, 1, 1]


def test_load_into_a_larger_buffer_continues_past_the_old_capacity(tmp_path: Path) -> None:
    small = ReplayBuffer(capacity=30, num_envs=3, observation_space=OBS, action_space=ACT)
    big = ReplayBuffer(capacity=60, num_envs=3, observation_space=OBS, action_space=ACT)
    fill(small, 10), fill(big, 10)  # small's lanes are full now
    small.save(tmp_path / "replay")
    grown = ReplayBuffer.load(tmp_path / "replay", capacity=60)
    assert grown.lane == 20
    fill(grown, 8), fill(big, 8)  # beyond the saved capacity
    a, b = grown.episode_index(), big.episode_index()
    for key in ("starts", "ends", "terminated"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    np.testing.assert_array_equal(grown.observations, big.observations)
