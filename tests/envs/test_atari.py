"""The Atari 100k wrapper stack, checked against ALE stepped directly at frameskip 1."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
import pytest
from seqrl.agents import RandomAgent
from seqrl.envs import AtariConfig, EnvConfig, atari_preset, make_env, make_vec_env, rollout
from seqrl.envs.atari import game_name, is_atari, register_ale

GAME = "ALE/Breakout-v5"  # 5 lives, lost quickly by a random agent; actions NOOP FIRE RIGHT LEFT


def raw_ale(env_id: str = GAME) -> gym.Env:
    register_ale()
    return gym.make(env_id, frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")


def random_actions(n: int, seed: int = 0, k: int = 4) -> list[int]:
    return [int(a) for a in np.random.default_rng(seed).integers(k, size=n)]


def test_frame_skip_and_max_pool_against_ale() -> None:
    cfg = AtariConfig(noop_max_eval=0, frame_stack=1, screen_size=84, color="gray")
    env = make_env(EnvConfig(id=GAME, atari=cfg), train=False)
    raw = raw_ale()
    obs, info = env.reset(seed=3)
    raw.reset(seed=3)
    assert info["episode_frame_number"] == 0
    pooled_differs = False
    for t, action in enumerate(random_actions(60)):
        obs, reward, terminated, truncated, info = env.step(action)
        frames, total = [], 0.0
        for _ in range(4):
            frame, r, *_ = raw.step(action)
            frames.append(frame)
            total += r
        pooled = np.maximum(frames[-2], frames[-1])
        pooled_differs |= not np.array_equal(pooled, frames[-1])
        expected = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(obs, expected)
        assert reward == total
        assert info["episode_frame_number"] == 4 * (t + 1)
    assert pooled_differs  # the max-pool did something on this game, so the check has teeth


def test_v4_and_v5_ids_give_the_same_game() -> None:
    cfg = AtariConfig(noop_max_eval=0, frame_stack=1)
    envs = [
        make_env(EnvConfig(id=i, atari=cfg)) for i in ("ALE/Breakout-v5", "BreakoutNoFrameskip-v4")
    ]
    for env in envs:
        base = env.unwrapped
        assert base._frameskip == 1 and base.ale.getFloat("repeat_action_probability") == 0.0
    outs = [
        [env.reset(seed=1)[0]] + [env.step(a)[0] for a in random_actions(40, 1)] for env in envs
    ]
    np.testing.assert_array_equal(np.stack(outs[0]), np.stack(outs[1]))


@pytest.mark.parametrize(
    ("train", "noop_max", "allowed"), [(True, 30, range(1, 31)), (False, 1, [1]), (False, 0, [0])]
)
def test_noop_starts(train: bool, noop_max: int, allowed: object) -> None:
    cfg = AtariConfig(noop_max_train=noop_max, noop_max_eval=noop_max, frame_stack=1)
    env = make_env(EnvConfig(id=GAME, atari=cfg), train=train)
    env.reset(seed=0)  # seed once; later resets draw new no-op counts from the env's generator
    frames = {env.reset()[1]["episode_frame_number"] for _ in range(8 if noop_max == 30 else 2)}
    assert frames <= set(allowed)  # type: ignore[operator]
    if noop_max == 30:
        assert len(frames) > 3  # random number of no-ops


def play_until_life_lost(env: gym.Env, seed: int = 0) -> tuple[int, dict, bool]:
    env.reset(seed=seed)
    for t, action in enumerate(random_actions(2000, seed)):
        _, _, terminated, truncated, info = env.step(action)
        if info["lives"] < 5 or terminated or truncated:
            return t, info, terminated
    raise AssertionError("no life lost")


def test_life_loss_terminal_in_training_only_without_reset() -> None:
    cfg = AtariConfig(noop_max_train=0, noop_max_eval=0, frame_stack=1)
    train_env = make_env(EnvConfig(id=GAME, atari=cfg), train=True)
    t_train, info, terminated = play_until_life_lost(train_env)
    assert terminated and info["lives"] == 4 and info["game_over"] is False
    frame = info["episode_frame_number"]
    _, info = train_env.reset()  # the game continues: no reset of the emulator
    assert info["lives"] == 4
    assert info["episode_frame_number"] == frame + 4  # one no-op agent step
    eval_env = make_env(EnvConfig(id=GAME, atari=cfg), train=False)
    t_eval, info, terminated = play_until_life_lost(eval_env)
    assert t_eval == t_train and info["lives"] == 4 and not terminated  # same game, no terminal


def test_real_game_over_resets_in_training() -> None:
    cfg = AtariConfig(noop_max_train=0, frame_stack=1)
    env = make_env(EnvConfig(id=GAME, atari=cfg), train=True)
    env.reset(seed=0)
    actions = iter(random_actions(20000, 2))
    for _life in range(5):
        while True:
            _, _, terminated, truncated, info = env.step(next(actions))
            if terminated or truncated:
                break
        env.reset()
    assert info["game_over"] is True and info["lives"] == 0
    _, info = env.reset(seed=1)
    assert info["lives"] == 5 and info["episode_frame_number"] == 0


def test_frame_cap_truncates() -> None:
    # the 108k cap is ALE's max_num_frames_per_episode; a small cap tests the mechanism cheaply
    for train in (True, False):
        cfg = AtariConfig(
            noop_max_train=0,
            noop_max_eval=0,
            frame_stack=1,
            max_frames_train=100,
            max_frames_eval=100,
        )
        env = make_env(EnvConfig(id="ALE/Pong-v5", atari=cfg), train=train)
        env.reset(seed=0)
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated) and steps < 30:
            _, _, terminated, truncated, info = env.step(0)
            steps += 1
        assert truncated and not terminated
        assert steps == 25 and info["episode_frame_number"] == 100
    assert atari_preset("dqn").max_frames_eval == 108_000


def test_max_episode_steps_caps_agent_steps() -> None:
    # EnvConfig.max_episode_steps holds for Atari ids too (it was ignored there): agent steps,
    # on top of the protocol's frame cap
    env = make_env(EnvConfig(id="ALE/Pong-v5", max_episode_steps=7), train=False)
    env.reset(seed=0)
    truncated, steps = False, 0
    while not truncated:
        _, _, terminated, truncated, _ = env.step(0)
        steps += 1
        assert not terminated
    assert steps == 7


@pytest.mark.parametrize(
    ("preset", "shape"), [("dqn", (4, 84, 84)), ("iris", (64, 64, 3)), ("twm", (4, 64, 64))]
)
def test_preset_observations(preset: str, shape: tuple[int, ...]) -> None:
    env = make_env(EnvConfig(id="ALE/Pong-v5", atari=atari_preset(preset)), train=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == shape and obs.shape == shape and obs.dtype == np.uint8


def test_twm_presses_fire() -> None:
    env = make_env(EnvConfig(id=GAME, atari=atari_preset("twm")), train=False)
    _, info = env.reset(seed=0)
    assert info["episode_frame_number"] == 8  # no eval no-ops, FIRE then action 2 (4 frames each)


def test_vector_atari_rollout_keeps_final_stack() -> None:
    cfg = EnvConfig(id=GAME, num_envs=2, atari=AtariConfig(noop_max_train=0, max_frames_train=200))
    vec = make_vec_env(cfg, train=True)
    trajs = rollout(RandomAgent(vec.single_action_space, seed=0), vec, episodes=3, seed=0)
    assert len(trajs) == 3
    for traj in trajs:
        assert traj.observations.shape[1:] == (4, 84, 84) and traj.observations.dtype == np.uint8
        assert traj.observations.shape[0] == len(traj) + 1
        assert traj.terminated or traj.truncated


def test_ids() -> None:
    assert (
        is_atari("ALE/Pong-v5") and is_atari("PongNoFrameskip-v4") and not is_atari("CartPole-v1")
    )
    assert (
        game_name("ALE/MsPacman-v5") == "MsPacman"
        and game_name("MsPacmanNoFrameskip-v4") == "MsPacman"
    )
