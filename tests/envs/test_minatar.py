"""MinAtar ids: routing, image observations, seeding, time limits, errors and the CLI."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from seqrl.cli import main
from seqrl.config import from_dict, to_dict
from seqrl.envs.config import EnvConfig, MinAtarConfig
from seqrl.envs.evaluate import evaluate
from seqrl.envs.factory import check_env_id, make_env, make_vec_env
from seqrl.envs.minatar import MINATAR_GAMES, MinAtarImage, is_minatar, register_minatar
from seqrl.errors import ConfigError, SeqrlError, UsageError

pytest.importorskip("minatar")

BREAKOUT = "MinAtar/Breakout-v1"


def minatar_env(env_id: str = BREAKOUT, **kwargs: object) -> gym.Env:
    return make_env(EnvConfig(id=env_id, minatar=MinAtarConfig(**kwargs)))  # type: ignore[arg-type]


def play(env: gym.Env, seed: int, steps: int) -> list[tuple[np.ndarray, float, bool]]:
    """Observations, rewards and ends of ``steps`` steps with seeded random actions."""
    actions = np.random.default_rng(123).integers(env.action_space.n, size=steps)
    obs, _ = env.reset(seed=seed)
    out = [(obs, 0.0, False)]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(int(a))
        out.append((obs, float(reward), terminated or truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((obs, 0.0, False))
    return out


@pytest.mark.filterwarnings("ignore:.*out of date")  # gymnasium: v0 next to v1
def test_ids_route_to_minatar() -> None:
    assert is_minatar(BREAKOUT) and not is_minatar("ALE/Breakout-v5")
    check_env_id(BREAKOUT)
    for game in MINATAR_GAMES:
        register_minatar(f"MinAtar/{game}-v0")
    env = minatar_env()
    assert isinstance(env, MinAtarImage)
    assert env.spec is not None and env.spec.id == BREAKOUT
    assert env.action_space == gym.spaces.Discrete(3)  # v1: Breakout's minimal set
    assert make_env(EnvConfig(id="MinAtar/Breakout-v0")).action_space == gym.spaces.Discrete(6)


@pytest.mark.parametrize(
    ("render", "size", "shape", "dtype"),
    [
        ("gray", 64, (64, 64), np.uint8),
        ("rgb", 64, (64, 64, 3), np.uint8),
        ("gray", 21, (21, 21), np.uint8),
        ("state", 64, (10, 10, 10), np.bool_),
    ],
)
def test_observation_space_per_render_mode(
    render: str, size: int, shape: tuple[int, ...], dtype: type
) -> None:
    env = minatar_env("MinAtar/Seaquest-v1", render=render, size=size)
    assert env.observation_space.shape == shape and env.observation_space.dtype == dtype
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        assert obs.shape == shape and obs.dtype == dtype
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(env.action_space.sample())
    vec = make_vec_env(
        EnvConfig(id="MinAtar/Seaquest-v1", num_envs=2, minatar=MinAtarConfig(render, size))
    )
    obs, _ = vec.reset(seed=0)
    vec.close()
    assert obs.shape == (2, *shape) and obs.dtype == dtype


@pytest.mark.parametrize(
    ("render", "palette"), [("gray", "minatar"), ("rgb", "minatar"), ("rgb", "bright")]
)
def test_each_channel_gets_its_own_colour(render: str, palette: str) -> None:
    env = minatar_env("MinAtar/Seaquest-v1", render=render, size=64, palette=palette)
    channels = env.env.observation_space.shape[-1]
    state = np.zeros((10, 10, channels), dtype=bool)
    for c in range(channels):
        state[c, c, c] = True  # channel c at cell (c, c)
    state[0, 9, [2, 7]] = True  # two channels in one cell: the higher one is drawn
    image = env.observation(state)
    assert image.shape[:2] == (64, 64)
    rows = np.arange(64) * 10 // 64  # nearest-neighbour cell of each pixel row / column
    colours = []
    for c in range(channels):
        block = image[np.ix_(rows == c, rows == c)].reshape(-1, *image.shape[2:])
        assert (block == block[0]).all()  # a cell is one colour
        colours.append(block[0].tobytes())
    assert len(set(colours)) == channels
    background = image[np.ix_(rows == 9, rows == 0)]
    assert not background.any()
    assert bytes(np.zeros_like(image[0, 0]).tobytes()) not in colours
    overlap = image[np.ix_(rows == 0, rows == 9)].reshape(-1, *image.shape[2:])[0]
    assert overlap.tobytes() == colours[7]
    # the cells fill the whole image: 10 cells of 6 or 7 pixels, no border
    assert sorted(set(np.bincount(rows))) == [6, 7]


def test_bright_palette_keeps_every_object_far_from_the_background() -> None:
    state = np.zeros((10, 10, 4), dtype=bool)
    state[9, 4, 0] = True  # Breakout's paddle, channel 0: MinAtar's darkest colour
    paddle = {}
    for palette in ("minatar", "bright"):
        env = minatar_env(render="rgb", size=10, palette=palette)
        paddle[palette] = env.observation(state)[9, 4]
    assert paddle["minatar"].max() < 100  # RGB 22, 61, 78
    assert paddle["bright"].max() == 255
    for channels, game in ((4, "Breakout"), (10, "Seaquest")):
        env = minatar_env(f"MinAtar/{game}-v1", render="rgb", size=10, palette="bright")
        state = np.zeros((10, 10, channels), dtype=bool)
        for c in range(channels):
            state[0, c, c] = True
        row = env.observation(state)[0, :channels].astype(int)  # (C, 3)
        assert (row.max(axis=1) == 255).all()
        gaps = np.abs(row[:, None] - row[None]).max(axis=-1) + 255 * np.eye(channels, dtype=int)
        assert gaps.min() >= 100  # any two objects differ by 100 in some channel


def test_seeded_reset_reproduces_the_episode() -> None:
    env_a = minatar_env("MinAtar/Asterix-v1")
    env_b = minatar_env("MinAtar/Asterix-v1")
    first = play(env_a, seed=7, steps=60)
    again = play(env_b, seed=7, steps=60)
    after_play = play(env_a, seed=7, steps=60)  # same env, sticky-action state reset
    for run in (again, after_play):
        assert len(run) == len(first)
        for (o1, r1, d1), (o2, r2, d2) in zip(first, run, strict=True):
            assert np.array_equal(o1, o2) and r1 == r2 and d1 == d2
    other = play(minatar_env("MinAtar/Asterix-v1"), seed=8, steps=60)
    n = min(len(first), len(other))
    assert any(not np.array_equal(first[i][0], other[i][0]) for i in range(n))


def test_config_reaches_the_game() -> None:
    env = minatar_env("MinAtar/Asterix-v1", sticky_action_prob=0.0, difficulty_ramping=False)
    game = env.unwrapped.game
    assert game.sticky_action_prob == 0.0 and game.env.ramping is False
    assert minatar_env().unwrapped.game.sticky_action_prob == 0.1  # MinAtar's default


def test_max_episode_steps_truncates() -> None:
    env = make_env(EnvConfig(id="MinAtar/Freeway-v1", max_episode_steps=5))
    env.reset(seed=0)
    ends = [env.step(0)[2:4] for _ in range(5)]
    assert ends[-1] == (False, True) and not any(any(e) for e in ends[:-1])


def test_render_rgb_array_is_the_rgb_image() -> None:
    cfg = EnvConfig(id=BREAKOUT, minatar=MinAtarConfig(render="rgb", size=32))
    env = make_env(cfg, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (32, 32, 3)
    assert np.array_equal(frame, obs)


def test_minatar_config_round_trip_and_validation() -> None:
    cfg = EnvConfig(id=BREAKOUT, minatar=MinAtarConfig(render="rgb", size=84))
    assert from_dict(EnvConfig, to_dict(cfg)) == cfg
    assert from_dict(EnvConfig, {"id": BREAKOUT}).minatar == MinAtarConfig()
    with pytest.raises(ConfigError, match="minatar.size"):
        MinAtarConfig(size=8)
    with pytest.raises(ConfigError, match="minatar.sticky_action_prob"):
        MinAtarConfig(sticky_action_prob=1.5)
    with pytest.raises(ConfigError, match="minatar.palette"):
        MinAtarConfig(palette="neon")  # type: ignore[arg-type]


def test_unknown_game_and_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match=r"unknown MinAtar environment 'MinAtar/Pong-v1'"):
        make_env(EnvConfig(id="MinAtar/Pong-v1"))
    with pytest.raises(UsageError, match="'MinAtar/Breakout-v7'"):
        check_env_id("MinAtar/Breakout-v7")
    register_minatar(BREAKOUT)
    monkeypatch.delitem(gym.registry, BREAKOUT)
    monkeypatch.setitem(sys.modules, "minatar.gym", None)  # import fails as if not installed
    with pytest.raises(SeqrlError, match=r"'MinAtar/Breakout-v1' needs minatar \(pip install"):
        check_env_id(BREAKOUT)


def test_cli_eval_random_breakout(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "random", "--env", BREAKOUT, "--episodes", "3", "--quiet"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert BREAKOUT in out and "episodes  3" in out


def test_cli_unknown_game_is_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "random", "--env", "MinAtar/Pong-v1", "--episodes", "1", "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip().count("\n") == 0 and "MinAtar/Pong-v1" in err


def test_evaluate_does_not_apply_atari_scores() -> None:
    from seqrl.agents.policies import EnvSpaces, load_policy

    vec = make_vec_env(EnvConfig(id=BREAKOUT, num_envs=2))
    agent = load_policy("random", EnvSpaces.of(vec, BREAKOUT), device="cpu", seed=0)
    result = evaluate(agent, vec, 4, seed=0)
    vec.close()
    assert result.ref is None
