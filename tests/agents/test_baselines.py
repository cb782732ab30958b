"""Baseline agents (random, SB3) and the policy-spec loader."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from seqrl.agents import POLICY_LOADERS, EnvSpaces, RandomAgent, SB3Agent, load_policy
from seqrl.agents.baselines import detect_sb3_algo
from seqrl.agents.policies import check_spaces, space_to_dict
from seqrl.checkpoint import Checkpoint, save_checkpoint
from seqrl.envs import EnvConfig, evaluate, make_vec_env
from seqrl.errors import CheckpointError, UsageError

CARTPOLE = EnvSpaces(
    "CartPole-v1", spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Discrete(2)
)


@pytest.mark.parametrize(
    "space",
    [spaces.Discrete(5), spaces.Box(-2.0, 1.0, (3,), np.float32), spaces.MultiDiscrete([2, 3])],
)
def test_random_agent_shapes_and_seed(space: gym.Space) -> None:
    agent = RandomAgent(space, seed=4)
    agent.reset(6)
    actions = agent.act(np.zeros((6, 4)))
    assert actions.shape == (6, *space.shape)
    assert all(space.contains(a) for a in actions)
    again = RandomAgent(space, seed=4)
    again.reset(6)
    np.testing.assert_array_equal(again.act(np.zeros((6, 4))), actions)
    assert not all(np.array_equal(agent.act(np.zeros((6, 4))), actions) for _ in range(3))


@pytest.fixture(scope="module")
def ppo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stable_baselines3 import PPO

    path = tmp_path_factory.mktemp("sb3") / "ppo_cartpole.zip"
    PPO("MlpPolicy", "CartPole-v1", seed=0, n_steps=64, batch_size=32, device="cpu").save(path)
    return path


def test_sb3_agent_acts_like_the_model(ppo_path: Path) -> None:
    from stable_baselines3 import PPO

    agent = SB3Agent(ppo_path)
    assert detect_sb3_algo(ppo_path) == "ppo"
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    agent.reset(5)
    expected, _ = PPO.load(ppo_path, device="cpu").predict(obs, deterministic=True)
    np.testing.assert_array_equal(agent.act(obs), expected)
    result = evaluate(
        load_policy(f"sb3:{ppo_path}", CARTPOLE),
        EnvConfig(id="CartPole-v1", num_envs=2),
        episodes=2,
    )
    assert result.episodes == 2


def test_sb3_detects_other_algorithms(tmp_path: Path) -> None:
    from stable_baselines3 import DQN

    path = tmp_path / "dqn.zip"
    DQN("MlpPolicy", "CartPole-v1", learning_starts=0, buffer_size=100, device="cpu").save(path)
    assert detect_sb3_algo(path) == "dqn"
    agent = load_policy(f"sb3:dqn:{path}", CARTPOLE)
    assert agent.act(np.zeros((3, 4), np.float32)).shape == (3,)


def test_sb3_space_mismatch(ppo_path: Path) -> None:
    vec = make_vec_env(EnvConfig(id="MountainCar-v0"))
    with pytest.raises(
        UsageError, match=r"observation space Box\(4,\), but MountainCar-v0 has Box\(2,\)"
    ):
        load_policy(f"sb3:{ppo_path}", vec)


def test_check_spaces_rules() -> None:
    image_hwc = spaces.Box(0, 255, (84, 84, 4), np.uint8)
    image_chw = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    env = EnvSpaces("x", image_hwc, spaces.Discrete(6))
    check_spaces(image_chw, spaces.Discrete(6), env, "p")  # SB3 transposes images itself
    with pytest.raises(UsageError, match=r"action space Discrete\(4\)"):
        check_spaces(image_hwc, spaces.Discrete(4), env, "p")
    with pytest.raises(UsageError, match="observation space"):
        check_spaces(spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Discrete(6), env, "p")
    assert space_to_dict(spaces.Discrete(3)) == {"type": "Discrete", "n": 3}


def fake_factory(
    checkpoint: Checkpoint, env: EnvSpaces, device: str, arg: str | None = None
) -> RandomAgent:
    """A registry target: proves dispatch on ``checkpoint.algo``."""
    agent = RandomAgent(env.action_space, seed=int(checkpoint.step))
    agent.loaded_from = checkpoint.algo  # type: ignore[attr-defined]
    return agent


def test_checkpoint_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(POLICY_LOADERS, "fake", f"{__name__}:fake_factory")
    extra = {
        "observation_space": space_to_dict(CARTPOLE.observation_space),
        "action_space": space_to_dict(CARTPOLE.action_space),
    }
    path = save_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.pt",
        algo="fake",
        config={},
        step=7,
        state={},
        extra=extra,
    )
    agent = load_policy(str(path), CARTPOLE)
    assert agent.loaded_from == "fake"  # type: ignore[attr-defined]
    assert load_policy(str(tmp_path / "run"), CARTPOLE) is not None  # a run directory works too
    wrong = EnvSpaces(
        "Pendulum-v1", spaces.Box(-8, 8, (3,), np.float32), spaces.Box(-2, 2, (1,), np.float32)
    )
    with pytest.raises(UsageError, match="was trained on observation space"):
        load_policy(str(path), wrong)
    other = save_checkpoint(tmp_path / "b.pt", algo="unknown-algo", config={}, step=0, state={})
    with pytest.raises(
        CheckpointError, match="no agent for checkpoints of algorithm 'unknown-algo'"
    ):
        load_policy(str(other), CARTPOLE)
    monkeypatch.setitem(POLICY_LOADERS, "broken", "seqrl.agents.no_such_module:f")
    broken = save_checkpoint(tmp_path / "c.pt", algo="broken", config={}, step=0, state={})
    with pytest.raises(CheckpointError, match="is unavailable"):
        load_policy(str(broken), CARTPOLE)


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not 'random'"):
        load_policy("nonsense", CARTPOLE)
    with pytest.raises(CheckpointError, match="no such SB3 model"):
        load_policy(f"sb3:{tmp_path / 'missing.zip'}", CARTPOLE)
    assert isinstance(load_policy("random", CARTPOLE, seed=1), RandomAgent)
