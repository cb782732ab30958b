"""The offline training loop every offline workflow composes: sample, update, log, evaluate,
checkpoint, resume.

A resumed run and an uninterrupted run with the same seed produce the same parameters: the
checkpoint holds the model, optimizer and scheduler states, the step, and the torch / numpy /
Python RNG states including the sampler's generator; evaluation runs under a forked torch RNG so it
never perturbs training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from seqrl.checkpoint import Checkpoint, capture_rng, load_state, restore_rng, save_checkpoint
from seqrl.errors import CheckpointError
from seqrl.run import Logger, RunDir, progress
from seqrl.training import update
from seqrl.types import TrajectoryBatch

Precision = Literal["fp32", "bf16"]


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a ``precision`` setting (None: float32, no autocast)."""
    return torch.bfloat16 if precision == "bf16" else None


@dataclass
class LoopConfig:
    """How long to train and how often to log, evaluate and checkpoint."""

    steps: int = field(default=1000, metadata={"help": "gradient updates in total"})
    log_every: int = field(default=100, metadata={"help": "updates between train/ logs"})
    eval_every: int = field(
        default=0, metadata={"help": "updates between evaluations (0: only at the end)"}
    )
    checkpoint_every: int = field(default=1000, metadata={"help": "updates between checkpoints"})
    seed: int = field(default=0, metadata={"help": "seed for sampling, initialisation and dropout"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    precision: Precision = field(
        default="fp32",
        metadata={
            "help": "bf16: autocast forward passes (training and evaluation) to bfloat16, fast on "
            "CPUs with AMX or AVX-512 BF16 and on recent GPUs; weights, optimizer state and "
            "checkpoints stay float32"
        },
    )

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of ``precision`` (None: float32, no autocast)."""
        return precision_dtype(self.precision)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        for name in ("log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.eval_every < 0:
            raise ValueError("eval_every must be >= 0")


@dataclass
class TrainState:
    """Everything that changes during training and goes into a checkpoint."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    scheduler: Any = None
    step: int = 0

    def state_dicts(self) -> dict[str, Any]:
        """The named state dicts saved in a checkpoint."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def restore(self, ckpt: Checkpoint) -> None:
        """Load model, optimizer, scheduler, step and RNG states from ``ckpt``."""
        load_state(self.model, ckpt.state["model"], what="model weights", path=ckpt.path)
        try:
            self.optimizer.load_state_dict(ckpt.state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(ckpt.state["scheduler"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.path}: optimizer state does not match ({exc})") from None
        restore_rng(ckpt.rng, {"sampler": self.rng})
        self.step = ckpt.step


def save(
    state: TrainState, run: RunDir, *, algo: str, config: Any, extra: dict[str, Any] | None = None
) -> None:
    """Write ``run/checkpoints/last.pt`` atomically."""
    save_checkpoint(
        run.last_checkpoint,
        algo=algo,
        config=config,
        step=state.step,
        state=state.state_dicts(),
        rng=capture_rng({"sampler": state.rng}),
        extra=extra,
    )


def fit(
    state: TrainState,
    *,
    sample: Callable[[np.random.Generator], TrajectoryBatch],
    loop: LoopConfig,
    run: RunDir,
    logger: Logger,
    algo: str,
    config: Any,
    clip_norm: float | None = None,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    extra: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    quiet: bool = False,
) -> TrainState:
    """Train ``state.model`` from ``state.step`` to ``loop.steps``.

    Args:
        sample: draws one batch from the dataset with the given generator.
        evaluate: called with the step every ``loop.eval_every`` updates and at the end; returns
            metrics logged under ``eval/``.
        extra: JSON-ready data stored in each checkpoint (e.g. normalisation statistics).
    """
    bar = progress(
        total=loop.steps, initial=state.step, desc=f"train {algo}", quiet=quiet, unit="step"
    )
    state.model.train()
    tick, tick_step = time.perf_counter(), state.step
    while state.step < loop.steps:
        batch = sample(state.rng).to(device)
        metrics = update(
            state.model.loss,
            batch,
            state.optimizer,
            clip_norm=clip_norm,
            scheduler=state.scheduler,
            amp_dtype=loop.amp_dtype,
        )
        state.step += 1
        bar.update(1)
        if state.step % loop.log_every == 0 or state.step == loop.steps:
            now = time.perf_counter()
            rate = (state.step - tick_step) / max(now - tick, 1e-9)
            tick, tick_step = now, state.step
            logger.log(
                state.step,
                {**{f"train/{k}": v for k, v in metrics.items()}, "perf/updates_per_s": rate},
            )
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        at_end = state.step == loop.steps
        if evaluate is not None and (
            at_end or (loop.eval_every and state.step % loop.eval_every == 0)
        ):
            state.model.eval()
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                results = evaluate(state.step)
            state.model.train()
            logger.log(state.step, {f"eval/{k}": v for k, v in results.items()})
        if at_end or state.step % loop.checkpoint_every == 0:
            save(state, run, algo=algo, config=config, extra=extra)
    bar.close()
    logger.flush()
    return state
