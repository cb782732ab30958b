"""``seqrl train iris`` end to end on MinAtar frames, scaled down, killed and resumed.

IRIS: Micheli et al. 2023, https://arxiv.org/abs/2209.00588.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from seqrl.checkpoint import load_checkpoint
from seqrl.cli import main
from seqrl.world_models import loop as loop_module
from seqrl.world_models.train_iris import PRESETS

SCALED_DOWN = [
    "--preset",
    "iris-minatar",
    "--collect.steps=240",
    "--collect.prefill=40",
    "--collect.chunk=20",
    "--tokenizer_train.start=40",
    "--tokenizer_train.ratio=0.1",
    "--world_model_train.start=80",
    "--world_model_train.ratio=0.05",
    "--actor_critic_train.start=120",
    "--actor_critic_train.ratio=0.05",
    "--world_model.tokenizer.channels=8",
    "--world_model.tokenizer.channel_mult=1,1,1,1,1",
    "--world_model.tokenizer.z_channels=16",
    "--world_model.tokenizer.embed_dim=16",
    "--world_model.tokenizer.vocab_size=32",
    "--world_model.tokenizer.norm_groups=4",
    "--world_model.tokenizer.batch_size=8",
    "--world_model.dynamics.backbone.width=32",
    "--world_model.dynamics.backbone.depth=1",
    "--world_model.dynamics.sequence_length=4",
    "--world_model.dynamics.batch_size=4",
    "--actor_critic.cnn_channels=4,4,4,4",
    "--actor_critic.lstm_dim=16",
    "--actor_critic.batch_size=4",
    "--actor_critic.horizon=3",
    "--actor_critic.burn_in=2",
    "--eval.every=0",
    "--eval.final_episodes=1",
    "--loop.log_every=40",
    "--loop.checkpoint_every=80",
    "--loop.precision=fp32",
]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions on a loaded 2-core machine: one thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs."""


def run_cli(run_dir: Path, *extra: str) -> int:
    return main(["train", "iris", "--run-dir", str(run_dir), "--quiet", *extra])


def test_minatar_run_is_killed_and_resumes_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    saves: list[int] = []
    real_save = loop_module.save_checkpoint

    def save_then_die(path, **kwargs):  # the process dies right after its second checkpoint
        real_save(path, **kwargs)
        saves.append(kwargs["step"])
        if len(saves) == 2:
            raise Killed

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run_cli(run, *SCALED_DOWN)
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    assert "ablation of the paper's setting" in capsys.readouterr().out
    killed_at = saves[-1]
    assert 160 <= killed_at < 240
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", algo="iris")
    assert ckpt.step == killed_at and ckpt.extra["replay"] == f"replay-{killed_at}"
    assert ckpt.config["env"]["minatar"]["render"] == "rgb"
    assert ckpt.config["env"]["minatar"]["palette"] == "bright"
    # the preset's tokenizer encodes patches and is frozen before the GPT starts
    assert ckpt.config["world_model"]["tokenizer"]["encoder_scope"] == "patch"
    assert ckpt.config["world_model"]["tokenizer"]["cache_tokens"]
    assert ckpt.config["world_model"]["dynamics"]["action_inputs"]
    preset = PRESETS["iris-minatar"]()
    assert 0 < preset.tokenizer_train.stop <= preset.world_model_train.start
    assert any(k.startswith("tokenizer.") for k in ckpt.state["world_model"])
    assert {"optimizer_tokenizer", "optimizer_world_model"} <= set(ckpt.state)
    before = {k: v.clone() for k, v in ckpt.state["world_model"].items()}

    assert run_cli(run, "--resume") == 0
    result = json.loads((run / "result.json").read_text())
    assert result["env_steps"] == 240 and result["resumed"]
    # the schedules count from the start of the run, across the kill
    assert result["updates"] == {
        "tokenizer": 20,  # 0.1 per step from step 40
        "world_model": 8,  # 0.05 per step from 80
        "actor_critic": 6,  # 0.05 per step from 120
    }
    final = load_checkpoint(run / "checkpoints" / "last.pt", algo="iris")
    assert final.step == 240
    changed = [k for k, v in final.state["world_model"].items() if not torch.equal(v, before[k])]
    assert any(k.startswith("tokenizer.") for k in changed)
    assert any(k.startswith("dynamics.") for k in changed)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert "train/tokenizer/codebook_perplexity" in keys
    assert "train/world_model/obs_loss" in keys
    assert "train/actor_critic/actor_loss" in keys
    assert any("eval/return" in r for r in rows)
    # `seqrl eval` rebuilds the agent in the run's protocol (64x64 RGB MinAtar frames in the
    # bright palette, not the default gray ones) and, with the loop's seed, replays its final
    # evaluation
    out = tmp_path / "eval.json"
    argv = ["eval", str(run), "--env", "MinAtar/Breakout-v1", "--episodes", "1", "--quiet"]
    assert main([*argv, "--seed", "1000000", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["returns"] == result["final_returns"]
    assert json.loads(out.read_text())["env"]["minatar"]["palette"] == "bright"


def test_bf16_precision_autocasts_the_world_model_updates_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--loop.precision bf16``: the tokenizer's and the GPT's updates autocast to bfloat16 (their
    losses stay finite), the actor-critic's does not, and the checkpoint's weights are float32."""
    seen: dict[str, set] = {}
    real_update = loop_module.update

    def recording_update(loss_fn, batch, optimizer, **kwargs):
        owner = getattr(loss_fn, "__self__", None)
        seen.setdefault(type(owner).__name__, set()).add(kwargs.get("amp_dtype"))
        metrics = real_update(loss_fn, batch, optimizer, **kwargs)
        assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
        return metrics

    monkeypatch.setattr(loop_module, "update", recording_update)
    run = tmp_path / "run"
    assert run_cli(run, *SCALED_DOWN, "--loop.precision", "bf16") == 0
    assert seen["Tokenizer"] == {torch.bfloat16} and seen["Dynamics"] == {torch.bfloat16}
    assert seen["ActorCritic"] == {None}
    final = load_checkpoint(run / "checkpoints" / "last.pt", algo="iris")
    assert final.config["loop"]["precision"] == "bf16"
    assert all(
        v.dtype == torch.float32
        for v in final.state["world_model"].values()
        if v.is_floating_point()
    )
