"""``seqrl train dt`` / ``eval`` / ``rollout`` in-process on tiny data, and what a DT learns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from seqrl.cli import main
from seqrl.data import DatasetMetadata, TrajectoryDataset
from seqrl.envs import EnvConfig, make_vec_env, rollout

TINY = [
    "--model.backbone.width",
    "32",
    "--model.backbone.depth",
    "2",
    "--model.backbone.heads",
    "2",
    "--model.context",
    "8",
    "--model.backbone.window",
    "24",
    "--train_context",
    "8",
    "--model.max_timestep",
    "600",
    "--optim.batch_size",
    "16",
    "--optim.warmup_steps",
    "10",
    "--optim.lr",
    "1e-3",
    "--optim.clip_norm",
    "1.0",
    "--loop.log_every",
    "10",
    "--quiet",
]


class Balancer:
    """A scripted CartPole controller, with probability ``eps`` of a random action."""

    def __init__(self, eps: float, seed: int) -> None:
        self.eps, self.rng = eps, np.random.default_rng(seed)

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        good = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
        noise = self.rng.integers(0, 2, size=len(obs))
        return np.where(self.rng.random(len(obs)) < self.eps, noise, good)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        pass


@pytest.fixture(scope="module")
def cartpole_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mixed-quality CartPole episodes: a good controller at three noise levels."""
    episodes = []
    vec = make_vec_env(EnvConfig(id="CartPole-v1", num_envs=4))
    for i, eps in enumerate((0.0, 0.3, 1.0)):
        episodes += rollout(Balancer(eps, i), vec, episodes=4, seed=10 * i)
    md = DatasetMetadata(
        name="cartpole-mixed",
        env_id="CartPole-v1",
        observation_space=vec.single_observation_space,
        action_space=vec.single_action_space,
    )
    vec.close()
    return TrajectoryDataset.from_trajectories(episodes, md).save(
        tmp_path_factory.mktemp("data") / "cartpole"
    )


def train_argv(data: Path, run: Path) -> list[str]:
    """``seqrl train dt`` on the CartPole data: 400 updates, evaluated toward a return of 500."""
    return [
        *("train", "dt", "--dataset", str(data), "--run-dir", str(run), *TINY),
        *("--model.action_head", "categorical", "--loop.steps", "400"),
        *("--loop.checkpoint_every", "200", "--eval.targets", "500", "--eval.episodes", "4"),
        *("--eval.max_episode_steps", "500"),
    ]


def test_train_eval_rollout_resume(
    cartpole_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = train_argv(cartpole_data, run)
    assert main(argv) == 0
    out = capsys.readouterr().out
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = [m for m in metrics if "eval/return_target_500" in m][-1]
    # random CartPole play scores about 22; the DT imitates the good controller it is asked for
    # (5 seeds of this run: 151-353)
    assert final["eval/return_target_500"] > 100, out
    losses = [m["train/loss"] for m in metrics if "train/loss" in m]
    assert losses[-1] < 0.7 * losses[0]
    assert list(run.glob("events.out.tfevents.*")) and (run / "config.json").exists()

    ckpt = run / "checkpoints" / "last.pt"
    results = tmp_path / "eval.json"
    assert (
        main(["eval", str(ckpt), "--env", "CartPole-v1", "--episodes", "2", "--out", str(results)])
        == 0
    )
    assert json.loads(results.read_text())["episodes"] == 2
    assert main(["eval", f"{ckpt}@100", "--env", "CartPole-v1", "--episodes", "2"]) == 0
    assert main(["eval", f"{ckpt}@high", "--env", "CartPole-v1", "--episodes", "2"]) == 2
    assert "target return 'high' is not a number" in capsys.readouterr().err
    video = tmp_path / "dt.gif"
    assert (
        main(
            ["rollout", str(ckpt), "--env", "CartPole-v1", "--episodes", "1", "--video", str(video)]
        )
        == 0
    )
    assert video.stat().st_size > 0

    # resume: more steps on the same run continue from the checkpoint
    assert (
        main(["train", "dt", "--resume", "--run-dir", str(run), "--loop.steps", "420", "--quiet"])
        == 0
    )
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 420


def test_bad_input(cartpole_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "dt", "--dataset", str(cartpole_data), *TINY, "--loop.steps", "1"]
    assert main([*base, "--env", "Pendulum-v1", "--run-dir", str(tmp_path / "a")]) != 0
    assert "action" in capsys.readouterr().err  # the dataset's spaces do not match the env's
    assert main([*base, "--run-dir", str(tmp_path / "b")]) != 0  # tanh head on discrete actions
    assert (
        "does not fit discrete actions (use --model.action_head categorical)"
        in capsys.readouterr().err
    )
    # stacking vector observations that the env gives one at a time: refused before training
    stacked = [*base, "--model.action_head", "categorical", "--frame_stack", "2"]
    assert main([*stacked, "--run-dir", str(tmp_path / "c")]) == 2
    expected = "--frame_stack 2: CartPole-v1 gives observations (4,), but the model sees (2, 4)"
    assert expected in capsys.readouterr().err
    from seqrl.checkpoint import save_checkpoint

    # a checkpoint of another algorithm: where a DT's is expected, and one no agent reads
    other = tmp_path / "other"
    save_checkpoint(other / "checkpoints" / "last.pt", algo="twm", config={}, step=0, state={})
    (other / "config.json").write_text("{}")
    assert main(["train", "dt", "--resume", "--run-dir", str(other), "--quiet"]) == 1
    assert "checkpoint of 'twm', expected 'dt'" in capsys.readouterr().err
    save_checkpoint(tmp_path / "ppo.pt", algo="ppo", config={}, step=0, state={})
    eval_argv = ["--env", "CartPole-v1", "--episodes", "1"]
    assert main(["eval", str(tmp_path / "ppo.pt"), *eval_argv]) == 1
    assert "no agent for checkpoints of algorithm 'ppo'" in capsys.readouterr().err
    assert main(["eval", str(other), *eval_argv]) == 1  # a twm checkpoint without its weights
    assert "twm checkpoint holds no world_model or actor_critic weights" in capsys.readouterr().err


def test_demo_end_to_end_on_a_tiny_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "demo",
        "--levels",
        "halfcheetah_sac_60k@0.0",
        "halfcheetah_sac_8k@0.0",
        "--steps_per_level",
        "1000",
        "--updates",
        "20",
        "--episodes",
        "1",
        "--cache",
        str(tmp_path / "cache"),
        "--runs",
        str(tmp_path / "runs"),
        "--quiet",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "halfcheetah_sac_60k@0.0" in out and "return conditioning" in out and "D4RL" in out
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "checkpoints" / "last.pt").is_file()
    assert len(list((tmp_path / "cache").iterdir())) == 1  # the dataset is cached for the next run
    assert (
        main(
            [
                "demo",
                "--levels",
                "nope@0.0",
                "--runs",
                str(tmp_path / "runs"),
                "--cache",
                str(tmp_path / "c2"),
            ]
        )
        == 2
    )
    assert "--levels: no behaviour policy 'nope'" in capsys.readouterr().err


def test_bfloat16_training_learns_and_its_checkpoint_acts_in_bfloat16(
    cartpole_data: Path, tmp_path: Path
) -> None:
    """``--loop.precision bf16``: autocast training and evaluation still learn the controller; the
    checkpoint's agent (``seqrl eval``/``rollout``) acts in bf16 too; weights stay float32."""
    from seqrl.agents.dt import agent_from_checkpoint
    from seqrl.checkpoint import load_checkpoint

    run = tmp_path / "run"
    argv = train_argv(cartpole_data, run)
    assert main([*argv, "--loop.precision", "bf16"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = [m for m in metrics if "eval/return_target_500" in m][-1]
    assert final["eval/return_target_500"] > 100  # random play: about 22
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", algo="dt")
    assert all(
        t.dtype == torch.float32 for t in ckpt.state["model"].values() if t.is_floating_point()
    )
    agent = agent_from_checkpoint(ckpt, env=None)
    assert agent.amp_dtype == torch.bfloat16
    assert main([*argv, "--run-dir", str(tmp_path / "bad"), "--loop.precision", "fp16"]) == 2


def test_compiled_window_evaluation_learns_and_is_kept_in_the_checkpoint(
    cartpole_data: Path, tmp_path: Path
) -> None:
    """``--eval.mode window --eval.compile``: the periodic evaluation acts through torch.compile,
    and the checkpoint's agent (``seqrl eval``) does too."""
    from seqrl.agents.dt import agent_from_checkpoint
    from seqrl.checkpoint import load_checkpoint

    run = tmp_path / "run"
    argv = [*train_argv(cartpole_data, run), "--eval.mode", "window", "--eval.compile"]
    assert main(argv) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    final = [m for m in metrics if "eval/return_target_500" in m][-1]
    assert final["eval/return_target_500"] > 100  # random play: about 22
    ckpt = run / "checkpoints" / "last.pt"
    agent = agent_from_checkpoint(load_checkpoint(ckpt, algo="dt"), None)
    assert agent.compile and agent.mode == "window"
    assert main(["eval", str(ckpt), "--env", "CartPole-v1", "--episodes", "2"]) == 0


def test_paper_atari_preset_trains_on_dqn_replay_frames(tmp_path: Path) -> None:
    """`--preset dt-paper-atari` on the DQN-Replay layout: single 84x84 frames stacked 4 per
    step for the Nature CNN, evaluated in the DQN protocol's env, whose frames come stacked the
    same way; the game comes from the folder names."""
    import gzip

    logs = tmp_path / "Breakout" / "1" / "replay_logs"
    logs.mkdir(parents=True)
    rng = np.random.default_rng(0)
    steps = 240
    arrays = {
        "observation": rng.integers(0, 256, (steps, 84, 84), dtype=np.uint8),
        "action": rng.integers(0, 4, steps).astype(np.int32),
        "reward": (rng.random(steps) < 0.1).astype(np.float32),
        "terminal": np.isin(np.arange(steps), (79, 159)).astype(np.uint8),
    }
    for key, value in arrays.items():
        with gzip.open(logs / f"$store$_{key}_ckpt.0.gz", "wb") as fh:
            np.save(fh, value)
    run = tmp_path / "run"
    argv = ["train", "dt", "--preset", "dt-paper-atari", "--dataset", str(logs)]
    small = ["--model.backbone.depth", "1", "--model.context", "6", "--train_context", "6"]
    budget = ["--optim.batch_size", "4", "--loop.steps", "3", "--eval.episodes", "1"]
    eval_cap = ["--eval.max_episode_steps", "20", "--eval.targets", "5", "--quiet"]
    assert main([*argv, *small, *budget, *eval_cap, "--run-dir", str(run)]) == 0
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    extra = json.loads(ckpt["extra"])
    assert extra["space_info"]["obs_shape"] == [4, 84, 84] and extra["env_id"] == "ALE/Breakout-v5"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/return_target_5" in r for r in rows)


@pytest.mark.parametrize(
    ("env_id", "targets"),
    [
        ("Hopper-v5", (3600.0, 1800.0)),
        ("HalfCheetah-v5", (12000.0, 6000.0)),
        ("ALE/Breakout-v5", (90.0,)),
        ("ALE/Qbert-v5", (2500.0,)),
        ("ALE/Pong-v5", (20.0,)),
        ("ALE/Seaquest-v5", (1450.0,)),
        ("BreakoutNoFrameskip-v4", (90.0,)),
        ("MinAtar/Breakout-v1", (30.0, 12.5)),  # another game than Atari's Breakout
        ("CartPole-v1", (30.0, 12.5)),  # no paper target: the data's best and mean return
    ],
)
def test_default_targets_are_the_papers(env_id: str, targets: tuple[float, ...]) -> None:
    from seqrl.agents.train_dt import DTTrainConfig, resolve_targets

    assert resolve_targets(DTTrainConfig(), env_id, np.array([30.0, 5.0, 2.5])) == targets


def test_atari_frames_of_another_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Data collected in the IRIS protocol (64x64 RGB frames): the DT evaluates with
    `--eval.atari_preset iris`; the default protocol, whose frames differ, is refused before any
    training; `seqrl eval` of the checkpoint acts in the protocol it was evaluated in."""
    from seqrl.data.collect import collect

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    collect("ALE/Pong-v5", "random", steps=40, name="pong-iris", atari_preset="iris")
    base = ["train", "dt", "--preset", "dt-paper-atari", "--dataset", "pong-iris-v0"]
    small = ["--frame_stack", "1", "--model.backbone.depth", "1", "--model.context", "4"]
    budget = ["--train_context", "4", "--optim.batch_size", "2", "--loop.steps", "2"]
    evaluation = ["--eval.episodes", "1", "--eval.max_episode_steps", "5", "--quiet"]
    argv = [*base, *small, *budget, *evaluation]
    assert main([*argv, "--run-dir", str(tmp_path / "dqn")]) == 2
    err = capsys.readouterr().err
    assert "--eval.atari_preset dqn: ALE/Pong-v5 gives observations (4, 84, 84)" in err
    assert "the model sees (64, 64, 3)" in err and not (tmp_path / "dqn").exists()
    run = tmp_path / "iris"
    assert main([*argv, "--eval.atari_preset", "iris", "--run-dir", str(run)]) == 0
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                f"{run}@20",
                "--env",
                "ALE/Pong-v5",
                "--episodes",
                "1",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    played = json.loads(out.read_text())
    assert played["atari_preset"] == "iris" and played["env"]["atari"]["color"] == "rgb"
