"""The rollout loop: exact episode counts, no bias to short episodes, final reward and observation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from countdown_env import CountdownEnv, RecordingAgent, countdown_vec
from seqrl.agents import RandomAgent
from seqrl.envs import EnvConfig, evaluate, make_vec_env, rollout, run_episodes
from seqrl.errors import UsageError

LENGTHS = [[1, 2], [5], [3, 7, 4]]  # env i's episodes end at different steps


def expected_episodes(lengths: list[list[int]], episodes: int) -> list[tuple[int, int]]:
    """(env, length) of the episodes the quota rule keeps, in (env, time) order."""
    n = len(lengths)
    out = []
    for i, ls in enumerate(lengths):
        for k in range((episodes + i) // n):
            out.append((i, ls[k % len(ls)]))
    return out


@pytest.mark.parametrize("mode", ["same", "next"])
@pytest.mark.parametrize("episodes", [1, 2, 7, 10])
def test_exact_episode_counts_and_returns(mode: str, episodes: int) -> None:
    vec = countdown_vec(LENGTHS, mode)
    played = run_episodes(RecordingAgent(), vec, episodes=episodes)
    want = expected_episodes(LENGTHS, episodes)
    assert len(played) == episodes
    assert [(e.env_index, e.length) for e in played] == want
    for ep in played:
        assert ep.episode_return == CountdownEnv.expected_return(ep.length)  # final reward included
        assert ep.terminated and not ep.truncated and ep.finished
        traj = ep.trajectory
        assert traj is not None and len(traj) == ep.length
        assert traj.observations.shape == (ep.length + 1, 3)  # final observation kept
        np.testing.assert_array_equal(
            traj.observations[:, 2], np.arange(ep.length + 1)
        )  # steps 0..T
        assert np.all(traj.observations[:, 0] == ep.env_index)
        assert np.all(traj.observations[:, 1] == traj.observations[0, 1])  # one episode, no mixing
        assert traj.episode_return == ep.episode_return
        assert ep.wall_time >= 0


def test_no_bias_toward_short_episodes() -> None:
    # env 0 ends every step, env 1 after 10: "the first 4 episodes to end" would all be short
    vec = countdown_vec([[1], [10]])
    played = run_episodes(RecordingAgent(), vec, episodes=4)
    assert sorted(e.length for e in played) == [1, 1, 10, 10]


def test_next_step_mode_matches_same_step() -> None:
    same = rollout(RecordingAgent(), countdown_vec(LENGTHS, "same"), episodes=9)
    nxt = rollout(RecordingAgent(), countdown_vec(LENGTHS, "next"), episodes=9)
    assert len(same) == len(nxt) == 9
    for a, b in zip(same, nxt, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.rewards, b.rewards)


def test_agent_protocol_dones() -> None:
    agent = RecordingAgent()
    run_episodes(agent, countdown_vec([[2], [3]]), episodes=2)
    assert agent.calls[0] == ("reset", 2)
    observes = [c[1] for c in agent.calls if c[0] == "observe"]
    acts = [c[1] for c in agent.calls if c[0] == "act"]
    # env 0 ends at step 2, env 1 at step 3; the observation after a done starts a new episode
    np.testing.assert_array_equal(observes[1][1], [True, False])
    np.testing.assert_array_equal(acts[2][0], [0, 1, 0])
    np.testing.assert_array_equal(observes[1][0], [100.0, 1.0])


def test_truncation_flag() -> None:
    played = run_episodes(RecordingAgent(), countdown_vec([[4], [6]], truncate=True), episodes=2)
    assert all(e.truncated and not e.terminated for e in played)
    assert all(e.trajectory is not None and e.trajectory.truncated for e in played)


@pytest.mark.parametrize("mode", ["same", "next"])
@pytest.mark.parametrize("steps", [1, 10, 23])
def test_steps_mode(mode: str, steps: int) -> None:
    played = run_episodes(RecordingAgent(), countdown_vec(LENGTHS, mode), steps=steps)
    assert sum(e.length for e in played) == steps
    for ep in played:
        assert ep.trajectory is not None
        assert ep.trajectory.observations.shape == (ep.length + 1, 3)
        if not ep.finished:
            assert ep.truncated and not ep.terminated
            assert ep.episode_return == ep.length  # no final bonus: cut short
        else:
            assert ep.episode_return == CountdownEnv.expected_return(ep.length)
    unfinished = [e for e in played if not e.finished]
    assert len({e.env_index for e in unfinished}) == len(unfinished)  # at most one per env


def test_record_false_keeps_statistics_only() -> None:
    played = run_episodes(RecordingAgent(), countdown_vec(LENGTHS), episodes=5, record=False)
    assert all(e.trajectory is None for e in played)
    assert [(e.env_index, e.length) for e in played] == expected_episodes(LENGTHS, 5)


def test_long_run_trims_store() -> None:
    # many short episodes in env 0 while env 1 plays one long one: arrays stay correct
    played = run_episodes(RecordingAgent(), countdown_vec([[1], [700]]), episodes=2)
    long = played[1].trajectory
    assert long is not None and long.observations.shape == (701, 3)
    np.testing.assert_array_equal(long.observations[:, 2], np.arange(701))


def test_bad_arguments() -> None:
    vec = countdown_vec([[2]])
    with pytest.raises(UsageError, match="episodes must be >= 1"):
        run_episodes(RecordingAgent(), vec, episodes=0)
    with pytest.raises(UsageError, match="exactly one"):
        run_episodes(RecordingAgent(), vec, episodes=1, steps=1)
    with pytest.raises(UsageError, match="exactly one"):
        run_episodes(RecordingAgent(), vec)
    disabled = gym.vector.SyncVectorEnv(
        [lambda: CountdownEnv(0, [2])], autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )
    with pytest.raises(UsageError, match="autoreset"):
        run_episodes(RecordingAgent(), disabled, episodes=1)


def test_evaluate_cartpole_seeded() -> None:
    cfg = EnvConfig(id="CartPole-v1", num_envs=3)
    a = evaluate(RandomAgent(gym.spaces.Discrete(2), seed=1), cfg, episodes=7, seed=5)
    b = evaluate(RandomAgent(gym.spaces.Discrete(2), seed=1), cfg, episodes=7, seed=5)
    assert a.episodes == 7 and len(a.lengths) == 7
    np.testing.assert_array_equal(a.returns, b.returns)  # seeded: reproducible
    np.testing.assert_array_equal(a.returns, a.lengths)  # CartPole: +1 per step, last included
    low, high = a.ci95
    assert low <= a.mean <= high
    assert a.ref is None and a.normalized is None
    d = a.to_dict()
    assert d["episodes"] == 7 and d["return_mean"] == pytest.approx(a.mean)


def test_rollout_time_limit_truncates() -> None:
    vec = make_vec_env(EnvConfig(id="CartPole-v1", max_episode_steps=5), num_envs=2)
    trajs = rollout(RandomAgent(vec.single_action_space, seed=0), vec, episodes=4, seed=0)
    assert len(trajs) == 4
    assert all(len(t) <= 5 for t in trajs)
    assert all(t.truncated for t in trajs if len(t) == 5 and not t.terminated)
    assert any(t.truncated for t in trajs)
