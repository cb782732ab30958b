"""The envpool backend: the same Atari observations as the gymnasium backend, through one loop."""

from __future__ import annotations

import re

import numpy as np
import pytest
from seqrl.agents import RandomAgent
from seqrl.envs import EnvConfig, atari_preset, make_vec_env, run_episodes
from seqrl.envs.envpool_backend import EnvpoolVectorEnv
from seqrl.errors import UsageError

pytest.importorskip("envpool")

GAME = "ALE/Breakout-v5"  # a random agent loses its 5 lives in about 250 steps


def backends(preset: str, max_frames: int) -> tuple[object, object]:
    """(gymnasium, envpool) one-env vector envs, evaluation settings with one no-op frame."""
    atari = atari_preset(preset)
    atari.noop_max_eval, atari.max_frames_eval = 1, max_frames  # 1..1 no-ops: deterministic
    gym_env = make_vec_env(EnvConfig(id=GAME, num_envs=1, atari=atari))
    pool = make_vec_env(EnvConfig(id=GAME, num_envs=1, atari=atari, backend="envpool"))
    return gym_env, pool


@pytest.mark.parametrize(
    ("preset", "max_frames", "steps", "ends"),
    [("dqn", 108_000, 480, 2), ("iris", 800, 230, 1)],  # game overs; a 200-step frame cap
)
def test_same_observations_as_gymnasium(
    preset: str, max_frames: int, steps: int, ends: int
) -> None:
    gym_env, pool = backends(preset, max_frames)
    assert pool.metadata["autoreset_mode"].value == "NextStep"
    assert pool.single_observation_space == gym_env.single_observation_space
    assert pool.single_action_space == gym_env.single_action_space
    obs_g, _ = gym_env.reset(seed=0)
    obs_e, _ = pool.reset(seed=0)
    np.testing.assert_array_equal(obs_e, obs_g)
    actions = np.random.default_rng(0).integers(4, size=(steps, 1))
    seen_ends, seen_reward = 0, 0.0
    for action in actions:
        obs_g, rew_g, term_g, trunc_g, info_g = gym_env.step(action)
        obs_e, rew_e, term_e, trunc_e, _ = pool.step(action)
        np.testing.assert_array_equal(rew_e, rew_g)
        np.testing.assert_array_equal(term_e, term_g)
        np.testing.assert_array_equal(trunc_e, trunc_g)
        seen_reward += float(rew_g[0])
        if term_g[0] or trunc_g[0]:
            seen_ends += 1
            if term_g[0]:  # equal for these game overs; at the frame cap they differ (docstring)
                np.testing.assert_array_equal(obs_e[0], info_g["final_obs"][0])
            obs_e, rew_e, *_ = pool.step(action)  # NEXT_STEP: this call only resets
            assert rew_e[0] == 0.0
        np.testing.assert_array_equal(obs_e, obs_g)  # pixel-exact
    assert seen_ends == ends and seen_reward > 0  # episode ends and scoring were compared


def test_exact_episode_counts_through_run_episodes() -> None:
    atari = atari_preset("dqn")
    atari.max_frames_eval = 200  # 50 agent steps
    cfg = EnvConfig(id=GAME, num_envs=2, atari=atari, backend="envpool")
    vec = make_vec_env(cfg)
    played = run_episodes(RandomAgent(vec.single_action_space, seed=0), vec, episodes=5, seed=0)
    assert [e.env_index for e in played] == [0, 0, 1, 1, 1]  # quota (5 + i) // 2 per env
    for episode in played:
        assert episode.finished and (episode.terminated or episode.length == 50)
        traj = episode.trajectory
        assert traj is not None and traj.observations.shape == (episode.length + 1, 4, 84, 84)
        assert float(traj.rewards.sum()) == episode.episode_return


def test_reset_seed_reproduces_random_noops() -> None:
    cfg = EnvConfig(id=GAME, num_envs=2, atari=atari_preset("dqn"), backend="envpool")
    vec = make_vec_env(cfg)
    runs = []
    for seed in (3, 3, 4):
        first, _ = vec.reset(seed=seed)
        runs.append(np.stack([first] + [vec.step(np.array([1, 3]))[0] for _ in range(10)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])  # 1..30 random no-op frames differ by seed


@pytest.mark.filterwarnings("ignore:.*precision lowered:UserWarning")  # envpool's float64 bounds
def test_classic_control_runs_through_the_same_loop() -> None:
    vec = make_vec_env(EnvConfig(id="CartPole-v1", num_envs=3, backend="envpool"))
    assert isinstance(vec, EnvpoolVectorEnv) and vec.single_observation_space.shape == (4,)
    played = run_episodes(RandomAgent(vec.single_action_space, seed=0), vec, episodes=4, seed=0)
    assert len(played) == 4 and all(e.terminated or e.truncated for e in played)


@pytest.mark.parametrize(
    ("preset", "train", "change", "match"),
    [
        ("dqn", True, {}, "lost life"),
        ("twm", False, {}, "fire"),
        ("dqn", False, {"noop_max_eval": 0}, "no-op"),
        ("dqn", False, {"frame_skip": 1}, "frame_skip"),
        ("dqn", False, {"max_frames_eval": 1001}, "multiple"),
    ],
)
def test_settings_envpool_cannot_reproduce_are_refused(
    preset: str, train: bool, change: dict, match: str
) -> None:
    atari = atari_preset(preset)
    for key, value in change.items():
        setattr(atari, key, value)
    with pytest.raises(UsageError, match=match):
        make_vec_env(EnvConfig(id=GAME, atari=atari, backend="envpool"), train=train)


def test_training_without_life_loss_and_bad_requests() -> None:
    atari = atari_preset("dqn")
    atari.life_loss = "ignore"
    vec = make_vec_env(EnvConfig(id=GAME, atari=atari, backend="envpool"), train=True)
    assert vec.single_observation_space.shape == (4, 84, 84)
    with pytest.raises(UsageError, match="render"):
        make_vec_env(EnvConfig(id=GAME, backend="envpool"), render_mode="rgb_array")
    with pytest.raises(UsageError, match="does not know"):
        make_vec_env(EnvConfig(id="Taxi-v4", backend="envpool"))


def test_eval_command_runs_on_the_envpool_backend(capsys: pytest.CaptureFixture[str]) -> None:
    from seqrl.cli import main

    assert (
        main(
            [
                "eval",
                "random",
                "--env",
                "CartPole-v1",
                "--episodes",
                "3",
                "--backend",
                "envpool",
                "--quiet",
            ]
        )
        == 0
    )
    assert re.search(r"episodes +3\n", capsys.readouterr().out)
