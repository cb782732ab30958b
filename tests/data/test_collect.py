"""Collection through the shared rollout loop, written as Minari datasets; build-d4rl end to end."""

from __future__ import annotations

import os
from pathlib import Path

import minari
import numpy as np
import pytest
from seqrl.cli import main
from seqrl.data.collect import NoisyAgent, collect, minari_id
from seqrl.data.minari_source import load_minari
from seqrl.errors import UsageError


@pytest.fixture(autouse=True)
def _minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def test_collect_random_writes_a_lossless_minari_dataset() -> None:
    dataset = collect("CartPole-v1", "random", steps=60, name="cartpole-random", num_envs=2, seed=3)
    assert dataset.num_steps == 60  # exactly, episodes still running are kept truncated
    assert dataset.has_final_observation
    back = load_minari("cartpole-random-v0", download=False)
    assert back.metadata.env_id == "CartPole-v1"
    for a, b in zip(dataset, back, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
        assert (a.terminated, a.truncated) == (b.terminated, b.truncated)
    # same seed, same data
    again = collect("CartPole-v1", "random", steps=60, num_envs=2, seed=3)
    np.testing.assert_array_equal(again.actions, dataset.actions)


def test_cli_collect_list_info(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "collect",
        "--env",
        "Pendulum-v1",
        "--policy",
        "random",
        "--steps",
        "30",
        "--name",
        "pend",
        "--noise",
        "0.1",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "wrote Minari dataset 'pend-v0'" in captured.out
    assert "collect:" in captured.err and "/30 [" in captured.err  # the progress bar
    assert main([*argv[:-3], "pend-quiet", "--quiet"]) == 0
    assert "collect:" not in capsys.readouterr().err
    assert "pend-v0" in minari.list_local_datasets()
    assert main(["datasets", "info", "pend-v0"]) == 0
    out = capsys.readouterr().out
    assert "steps: 30" in out and "Pendulum-v1" in out
    assert main(argv) == 2  # the name is taken
    assert "already exists" in capsys.readouterr().err


def test_interrupted_collection_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, _minari_root: Path
) -> None:
    import seqrl.envs

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(seqrl.envs, "rollout", interrupted)
    assert (
        main(
            [
                "collect",
                "--env",
                "CartPole-v1",
                "--policy",
                "random",
                "--steps",
                "10",
                "--name",
                "x",
            ]
        )
        == 130
    )
    assert not _minari_root.exists() or os.listdir(_minari_root) == []


def test_noise_and_names() -> None:
    import gymnasium as gym

    class Zero:
        def reset(self, num_envs: int) -> None: ...
        def act(self, obs: np.ndarray) -> np.ndarray:
            return np.zeros((len(obs), 1), np.float32)

        def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None: ...

    box = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    actions = NoisyAgent(Zero(), box, 0.5, np.random.default_rng(0)).act(np.zeros((2000, 3)))
    assert 0.8 < actions.std() < 1.2 and actions.max() <= 2.0  # std 0.5 * half-range 2

    class ZeroIndex(Zero):
        def act(self, obs: np.ndarray) -> np.ndarray:
            return np.zeros(len(obs), np.int64)

    discrete = NoisyAgent(ZeroIndex(), gym.spaces.Discrete(4), 0.5, np.random.default_rng(0))
    picked = discrete.act(np.zeros((4000, 3)))
    assert picked.shape == (4000,) and picked.dtype == np.int64
    assert 0.3 < np.mean(picked != 0) < 0.45  # half random, of which 3/4 differ from 0
    assert minari_id("a/b") == "a/b-v0" and minari_id("x-v3") == "x-v3"
    with pytest.raises(UsageError, match="not a valid dataset name"):
        minari_id("bad name")


def test_collect_bad_policy_and_env() -> None:
    assert (
        main(
            [
                "collect",
                "--env",
                "CartPole-v1",
                "--policy",
                "nope.pt",
                "--steps",
                "5",
                "--name",
                "y",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "collect",
                "--env",
                "NoSuchEnv-v0",
                "--policy",
                "random",
                "--steps",
                "5",
                "--name",
                "y",
            ]
        )
        != 0
    )


def test_build_d4rl_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "datasets",
        "build-d4rl",
        "--env",
        "Pendulum-v1",
        "--algo",
        "sac",
        "--steps",
        "60",
        "--learning-starts",
        "50",
        "--dataset-steps",
        "30",
        "--prefix",
        "pend",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for kind in ("medium", "medium-replay", "expert"):
        assert f"{kind}: Minari dataset 'pend-{kind}-v0'" in out
    assert (tmp_path / "ckpt" / "medium.zip").is_file() and (
        tmp_path / "ckpt" / "expert.zip"
    ).is_file()
    replay = load_minari("pend-medium-replay-v0", download=False)
    assert replay.num_steps == 30  # the buffer up to the medium checkpoint
    assert (
        replay.actions.min() >= -2.0 and replay.actions.max() <= 2.0
    )  # env bounds, not SB3's [-1, 1]
    assert np.abs(replay.actions).max() > 1.0  # really unscaled
    assert load_minari("pend-expert-v0", download=False).num_steps == 30
    assert "trusted source" in _help(["datasets", "build-d4rl", "--help"], capsys)


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_collect_atari_frames_stay_uint8() -> None:
    dataset = collect(
        "ALE/Pong-v5", "random", steps=12, name="pong-iris", atari_preset="iris", seed=0
    )
    assert dataset.observations.dtype == np.uint8 and dataset.observation_shape == (64, 64, 3)
    back = load_minari("pong-iris-v0", download=False)
    np.testing.assert_array_equal(back.observations, dataset.observations)
    assert back.metadata.env_id == "ALE/Pong-v5"
