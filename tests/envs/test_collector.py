"""The online rollout loop: episodes run across calls and reach the replay buffer intact."""

from __future__ import annotations

import numpy as np
import pytest
from countdown_env import CountdownEnv, countdown_vec
from seqrl.agents.baselines import RandomAgent
from seqrl.data.replay import ReplayBuffer
from seqrl.envs.rollout import Collector
from seqrl.errors import UsageError


@pytest.mark.parametrize("mode", ["same", "next"])
def test_episodes_span_calls_and_land_whole_in_replay(mode: str) -> None:
    vec = countdown_vec([[3, 5], [4]], mode=mode)
    buffer = ReplayBuffer(200, 2, vec.single_observation_space, vec.single_action_space)
    collector = Collector(vec, seed=0)
    agent = RandomAgent(vec.single_action_space, seed=0)
    ended = []
    for _ in range(7):  # 7 calls of 3 steps: episodes cross call boundaries
        ended += collector.collect(agent, 3, buffer.add)
    assert collector.steps == buffer.num_steps >= 21
    # env 0 plays 3, 5, 3, 5 ...; env 1 plays 4, 4, ...: every finished episode is whole
    index = buffer.episode_index()
    for s, e, term in zip(index.starts, index.ends, index.terminated, strict=True):
        obs = index.observations[s:e]
        if not term:  # the running episodes at the end
            continue
        np.testing.assert_array_equal(obs[:, 2], np.arange(e - s))  # steps 0..T-1, in order
        assert e - s in (3, 4, 5)
        assert index.rewards[e - 1] == 100.0
    assert sorted(r for r, _ in ended) == sorted(CountdownEnv.expected_return(n) for _, n in ended)
    assert buffer.num_episodes == len(ended)
    # the final observation after the last action is kept for every finished episode
    dataset = buffer.to_dataset()
    assert len(dataset) == buffer.num_episodes
    for trajectory in dataset:
        assert trajectory.observations[-1, 2] == len(trajectory)
    collector.close()


def test_new_agent_is_reset_and_bad_steps() -> None:
    vec = countdown_vec([[3]])
    collector = Collector(vec, seed=0)
    calls = []

    class Probe(RandomAgent):
        def reset(self, num_envs: int) -> None:
            calls.append(num_envs)
            super().reset(num_envs)

    first, second = Probe(vec.single_action_space), Probe(vec.single_action_space)
    collector.collect(first, 2, lambda *a: None)
    collector.collect(first, 2, lambda *a: None)
    collector.collect(second, 2, lambda *a: None)
    assert calls == [1, 1]
    with pytest.raises(UsageError, match="steps"):
        collector.collect(first, 0, lambda *a: None)
