"""The world-model agent loop: schedules, the CLI, kill and resume, saved data, learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from seqrl.agents.policies import policy_env_config
from seqrl.checkpoint import load_checkpoint
from seqrl.cli import main
from seqrl.config import ConfigError
from seqrl.data import load_dataset
from seqrl.data.collect import collect
from seqrl.world_models import loop as loop_module
from seqrl.world_models.loop import ComponentSchedule

TINY = [
    "--world_model.dynamics.backbone.width=32",
    "--world_model.dynamics.backbone.heads=2",
    "--world_model.dynamics.backbone.depth=1",
    "--world_model.batch_size=8",
    "--actor_critic.batch_size=16",
    "--actor_critic.hidden_dims=32,32",
    "--eval.episodes=2",
    "--eval.final_episodes=2",
    "--loop.log_every=50",
]


def test_schedule_counts_updates() -> None:
    s = ComponentSchedule(start=100, ratio=0.5, pretrain=7)
    assert [s.due(n) for n in (0, 99, 100, 101, 102, 110)] == [0, 0, 7, 7, 8, 12]
    assert ComponentSchedule(start=0, ratio=1 / 0.76).due(76) == 100
    assert ComponentSchedule(start=5, ratio=0.0, pretrain=0).due(1000) == 0
    stops = ComponentSchedule(start=100, ratio=0.5, pretrain=7, stop=120)
    assert [stops.due(n) for n in (99, 110, 120, 121, 5000)] == [0, 12, 17, 17, 17]


def test_schedule_stop_must_follow_start() -> None:
    with pytest.raises(ConfigError, match="stop"):
        ComponentSchedule(start=100, stop=100)


def run_cli(run_dir: Path, *extra: str) -> int:
    return main(["train", "twm", "--run-dir", str(run_dir), "--quiet", *extra])


def test_cartpole_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code = run_cli(
        run,
        "--preset",
        "twm-cartpole",
        "--collect.steps=300",
        "--collect.prefill=100",
        "--world_model_train.start=100",
        "--world_model_train.pretrain=5",
        "--actor_critic_train.start=150",
        "--actor_critic_train.stop=250",
        "--collect.train_only=60",
        "--eval.every=200",
        *TINY,
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "final return" in out and str(run) in out
    result = json.loads((run / "result.json").read_text())
    # world model: 5 pretraining updates at step 100, then 0.5 per step, on through the 60
    # train-only steps after the 300 collected; actor-critic from 150 to its stop at 250
    assert result["env_steps"] == 300
    assert result["updates"] == {"world_model": 5 + 130, "actor_critic": 50}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in rows if "eval/return" in r]
    assert evals == [200, 360]
    assert max(r["step"] for r in rows if "train/episode_return" in r) <= 300
    assert any("train/actor_critic/actor_loss" in r for r in rows)
    assert any("train/world_model/z_ce" in r for r in rows)
    # the run's experience is a dataset the data layer reads
    dataset = load_dataset(str(run / "dataset"))
    assert dataset.metadata.env_id == "CartPole-v1"
    assert dataset.num_steps <= 300 and len(dataset) >= 5
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", algo="twm")
    assert ckpt.step == 300 and (run / ckpt.extra["replay"]).is_dir()
    assert ckpt.extra["clock"] == 360


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs."""


def run_killed_after_saves(
    run: Path, args: list[str], saves: int, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, int]]:
    """Run ``args`` in ``run``, dying right after the ``saves``-th checkpoint is written;
    returns each checkpoint's (env step, schedule step)."""
    saved: list[tuple[int, int]] = []
    real_save = loop_module.save_checkpoint

    def save_then_die(path, **kwargs):
        real_save(path, **kwargs)
        saved.append((kwargs["step"], kwargs["extra"]["clock"]))
        if len(saved) == saves:
            raise Killed

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run_cli(run, *args)
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    return saved


def test_kill_and_resume_continues_from_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    args = [
        "--preset",
        "twm-cartpole",
        "--collect.steps=300",
        "--collect.prefill=60",
        "--world_model_train.start=60",
        "--world_model_train.pretrain=0",
        "--actor_critic_train.start=60",
        "--eval.every=0",
        "--loop.checkpoint_every=100",
        *TINY,
    ]
    killed_at = run_killed_after_saves(run, args, 2, monkeypatch)[-1][0]
    assert 200 <= killed_at < 300
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    # killed between writing the checkpoint and removing the older replay: the checkpoint names
    # the replay written with it
    assert ckpt.extra["replay"] == f"replay-{killed_at}"
    replay_steps = json.loads((run / f"replay-{killed_at}" / "seqrl_replay.json").read_text())
    assert sum(replay_steps["fill"]) == killed_at
    before = {k: v.clone() for k, v in ckpt.state["world_model"].items()}

    assert run_cli(run, "--resume") == 0
    result = json.loads((run / "result.json").read_text())
    assert result["env_steps"] == 300 and result["resumed"]
    # the cost of the killed leg up to its checkpoint counts in the run's wall and CPU time
    assert result["wall_s"] > ckpt.extra["wall_s"] > 0 and result["cpu_s"] > ckpt.extra["cpu_s"]
    assert [p.name for p in run.glob("replay-*")] == ["replay-300"]
    schedule = ComponentSchedule(start=60, ratio=0.5)
    assert result["updates"]["world_model"] == schedule.due(300)
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    changed = any(not torch.equal(before[k], v) for k, v in final.state["world_model"].items())
    assert changed  # training went on from the checkpoint
    # the replay kept every step of both legs: the killed leg's running episodes end truncated
    dataset = load_dataset(str(run / "dataset"))
    assert dataset.num_steps + 1 >= 280
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps)  # the log reads as one run
    # a finished run continues with a larger budget: the replay buffer grows with it
    assert run_cli(run, "--resume", "--collect.steps=360") == 0
    result = json.loads((run / "result.json").read_text())
    assert result["env_steps"] == 360 and result["updates"]["world_model"] == schedule.due(360)
    assert json.loads((run / "config.json").read_text())["collect"]["steps"] == 360


def test_killed_in_the_train_only_steps_resumes_without_collecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``collect.train_only``: after the collected steps the schedules run on; a run killed
    there resumes at its schedule step (the checkpoint's ``clock``), not its env step."""
    run = tmp_path / "run"
    args = [
        "--preset",
        "twm-cartpole",
        "--collect.steps=200",
        "--collect.prefill=60",
        "--collect.train_only=200",
        "--world_model_train.start=60",
        "--world_model_train.pretrain=0",
        "--actor_critic_train.start=60",
        "--eval.every=0",
        "--loop.checkpoint_every=100",
        *TINY,
    ]
    # killed after its third checkpoint, at schedule step 300
    assert run_killed_after_saves(run, args, 3, monkeypatch) == [(100, 100), (200, 200), (200, 300)]
    assert run_cli(run, "--resume") == 0
    result = json.loads((run / "result.json").read_text())
    schedule = ComponentSchedule(start=60, ratio=0.5)
    assert result["env_steps"] == 200
    assert result["updates"]["world_model"] == schedule.due(400) == 170
    assert load_dataset(str(run / "dataset")).num_steps <= 200
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 400


def test_resume_needs_run_dir_and_bad_key_is_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "twm", "--resume"]) == 2
    assert "--run-dir" in capsys.readouterr().err
    assert main(["train", "twm", "--preset", "twm-cartpole", "--collect.stepz=3"]) == 2


def test_image_run_logs_imagined_frames(tmp_path: Path) -> None:
    """MinAtar frames: the loop trains on images and logs real-vs-predicted videos."""
    run = tmp_path / "run"
    code = run_cli(
        run,
        "--preset",
        "twm-minatar",
        "--collect.steps=120",
        "--collect.prefill=60",
        "--world_model_train.start=60",
        "--world_model_train.pretrain=2",
        "--world_model_train.ratio=0.1",
        "--actor_critic_train.start=60",
        "--actor_critic_train.ratio=0.1",
        "--world_model.obs.channels=4",
        "--world_model.sequence_length=6",
        "--eval.every=0",
        *TINY,
    )
    assert code == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"tensors": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert "imagined/real_vs_predicted" in tags["images"] + tags["tensors"]


def test_env_flag_picks_the_environment(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = run_cli(
        run,
        "--preset",
        "twm-cartpole",
        "--env",
        "Acrobot-v1",
        "--collect.steps=120",
        "--collect.prefill=60",
        "--world_model_train.start=60",
        "--world_model_train.pretrain=1",
        "--world_model_train.ratio=0.05",
        "--actor_critic_train.start=60",
        "--actor_critic_train.ratio=0.05",
        "--eval.every=0",
        "--eval.final_episodes=1",
        *TINY,
    )
    assert code == 0
    assert json.loads((run / "config.json").read_text())["env"]["id"] == "Acrobot-v1"
    assert load_dataset(str(run / "dataset")).metadata.env_id == "Acrobot-v1"


def test_eval_and_rollout_act_from_a_checkpoint_as_the_loop_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`seqrl eval RUN` rebuilds the agent from the checkpoint, in the env protocol it was
    trained in, and with the loop's seed it plays the loop's final evaluation again."""
    run = tmp_path / "run"
    code = run_cli(
        run,
        "--preset",
        "twm-cartpole",
        "--collect.steps=200",
        "--collect.prefill=100",
        "--world_model_train.start=100",
        "--world_model_train.pretrain=5",
        "--actor_critic_train.start=150",
        "--eval.every=0",
        *TINY,
        "--eval.final_episodes=3",
        "--eval.num_envs=2",
        "--env.max_episode_steps=60",
        "--env.vectorization=async",
    )
    assert code == 0
    final = json.loads((run / "result.json").read_text())["final_returns"]
    out = tmp_path / "eval.json"
    argv = ["eval", str(run), "--env", "CartPole-v1", "--episodes", "3", "--quiet"]
    assert main([*argv, "--num-envs", "2", "--seed", "1000000", "--out", str(out)]) == 0
    played = json.loads(out.read_text())
    assert played["returns"] == final  # TWM samples its latents: the seed covers torch's too
    assert played["env"]["max_episode_steps"] == 60  # the run's protocol, not CartPole's 500
    # the temperature after @: 0 acts greedily, anything else that is not a number >= 0 is refused
    assert main([*argv[:1], f"{run}@0", *argv[2:]]) == 0
    capsys.readouterr()
    assert main([*argv[:1], f"{run}@warm", *argv[2:]]) == 2
    assert "temperature after @ must be a number >= 0" in capsys.readouterr().err
    # an env whose spaces the agent was not trained on: one line naming both
    assert main(["eval", str(run), "--env", "Acrobot-v1", "--episodes", "1", "--quiet"]) == 2
    assert "observation space Box(4,), but Acrobot-v1 has Box(6,)" in capsys.readouterr().err
    assert main(["rollout", str(run), "--env", "CartPole-v1", "--episodes", "1", "--quiet"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["episode", "env", "return", "length"] and len(rows) == 2
    # the env protocol that eval, rollout and collect build: the run's, with the given id,
    # number of envs and seed; other policies get the defaults
    cfg = policy_env_config(str(run), "CartPole-v1", num_envs=3, seed=7)
    assert (cfg.max_episode_steps, cfg.num_envs, cfg.seed) == (60, 3, 7)
    assert cfg.vectorization == "sync"  # how the run stepped its envs is not the protocol
    assert policy_env_config("random", "CartPole-v1").max_episode_steps is None
    # seqrl collect with the agent: its experience as a dataset for offline agents
    dataset = collect("CartPole-v1", str(run), steps=150, seed=0)
    assert dataset.num_steps == 150 and max(len(t.actions) for t in dataset) <= 60
