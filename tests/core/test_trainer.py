"""The shared update step and the offline loop: learning, resume equals uninterrupted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from seqrl.errors import SeqrlError, UsageError
from seqrl.run import Logger, RunDir
from seqrl.trainer import LoopConfig, TrainState, fit
from seqrl.training import update
from seqrl.types import LossOutput, TrajectoryBatch

W_TRUE = torch.tensor([[1.0, -2.0, 0.5]])


class Regressor(torch.nn.Module):
    """A tiny model with dropout, so resuming must restore the torch RNG too."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(3, 16), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1)
        )

    def loss(self, batch: TrajectoryBatch) -> LossOutput:
        pred = self.net(batch.observations).squeeze(-1)
        total = torch.nn.functional.mse_loss(pred, batch.rewards)
        return LossOutput(total, {"mse": float(total.detach())})


def sample(rng: np.random.Generator) -> TrajectoryBatch:
    x = torch.from_numpy(rng.normal(size=(8, 4, 3)).astype(np.float32))
    y = (x @ W_TRUE.T).squeeze(-1)
    ones = torch.ones(8, 4)
    return TrajectoryBatch(x, x, y, y, ones.long(), ones.bool(), ~ones.bool())


def _state(seed: int = 0) -> TrainState:
    torch.manual_seed(seed)
    model = Regressor()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 5))
    return TrainState(model, opt, np.random.default_rng(seed), sched)


def _fit(state: TrainState, run: RunDir, steps: int, evaluate=None) -> TrainState:
    loop = LoopConfig(steps=steps, log_every=5, checkpoint_every=5, eval_every=10)
    with Logger(run, resume_step=state.step or None, tensorboard=False) as logger:
        return fit(
            state,
            sample=sample,
            loop=loop,
            run=run,
            logger=logger,
            algo="toy",
            config=loop,
            clip_norm=1.0,
            evaluate=evaluate,
            quiet=True,
        )


def test_update_learns_and_reports() -> None:
    state = _state()
    first = update(state.model.loss, sample(state.rng), state.optimizer, clip_norm=0.5)
    for _ in range(200):
        last = update(state.model.loss, sample(state.rng), state.optimizer, clip_norm=0.5)
    assert last["loss"] < 0.1 * first["loss"]
    assert set(first) >= {"loss", "mse", "grad_norm", "lr"}


def test_update_refuses_non_finite_loss() -> None:
    state = _state()
    before = [p.detach().clone() for p in state.model.parameters()]
    with pytest.raises(SeqrlError, match="non-finite loss"):
        update(
            lambda b: LossOutput(torch.tensor(float("nan"), requires_grad=True)),
            None,
            state.optimizer,
        )
    assert all(torch.equal(a, b) for a, b in zip(before, state.model.parameters(), strict=True))


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    evals = []
    evaluate = lambda step: evals.append(step) or {"score": float(torch.rand(()))}  # noqa: E731
    full = _fit(_state(), RunDir.create(name="full", root=tmp_path), steps=20, evaluate=evaluate)

    run = RunDir.create(name="split", root=tmp_path)
    _fit(_state(), run, steps=10, evaluate=evaluate)  # "killed" after step 10
    resumed = _state(seed=123)  # a fresh process with other initial weights
    from seqrl.checkpoint import load_checkpoint

    resumed.restore(
        load_checkpoint(RunDir.create(name="split", root=tmp_path, resume=True).path, algo="toy")
    )
    assert resumed.step == 10
    resumed = _fit(resumed, run, steps=20, evaluate=evaluate)
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    steps = [json.loads(line)["step"] for line in run.metrics_path.read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 20


def test_run_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--resume: .* has no checkpoint"):
        RunDir.create(name="x", root=tmp_path, resume=True)
    run = RunDir.create(name="x", root=tmp_path, config=LoopConfig())
    assert json.loads(run.config_path.read_text())["steps"] == 1000
    _fit(_state(), run, steps=5)
    with pytest.raises(UsageError, match="already holds a run"):
        RunDir.create(name="x", root=tmp_path)


def test_discard_if_unused_removes_only_a_fresh_folder_that_holds_nothing_but_its_config(
    tmp_path: Path,
) -> None:
    run = RunDir.create(name="empty", root=tmp_path, config=LoopConfig())
    assert run.created and run.config_path.is_file()
    assert run.discard_if_unused() and not run.path.exists()

    logged = RunDir.create(name="logged", root=tmp_path, config=LoopConfig())
    logged.metrics_path.write_text("{}\n")
    assert not logged.discard_if_unused() and logged.config_path.is_file()

    saved = RunDir.create(name="saved", root=tmp_path, config=LoopConfig())
    _fit(_state(), saved, steps=5)
    assert not saved.discard_if_unused() and saved.last_checkpoint.is_file()
    resumed = RunDir.create(name="saved", root=tmp_path, resume=True)
    assert not resumed.created and not resumed.discard_if_unused()

    mine = tmp_path / "mine"  # --run-dir of a folder the user made: never removed
    mine.mkdir()
    run = RunDir.create(name="", path=mine, config=LoopConfig())
    assert not run.created and not run.discard_if_unused() and run.config_path.is_file()


def test_logger_without_tensorboard_keeps_the_jsonl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where TensorBoard cannot be imported the run still logs, to metrics.jsonl, and says so."""
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    run = RunDir.create(name="run", path=tmp_path / "run")
    with Logger(run) as logger:
        logger.log(3, {"train/loss": 1.5})
    assert "seqrl: no TensorBoard logs" in capsys.readouterr().err
    assert json.loads(run.metrics_path.read_text())["train/loss"] == 1.5
    assert not list(run.path.glob("events.out.tfevents.*"))
