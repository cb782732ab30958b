"""Checks of a world model against real held-out sequences, generic over world models.

A world model takes part by offering two methods (TWM and IRIS both do):

- ``reconstruct(observations (..., *obs)) -> (..., *obs)``: through its latent and back;
- ``predict(context: TrajectoryBatch, actions (B, H), horizon, *, samples=0) -> (B, H, *obs)``:
  burn in on the context, then feed the given real actions open-loop (no real observations after
  the context) and decode each imagined step. ``actions[:, 0]`` is taken at the context's last
  step. ``samples = 0`` follows the most likely latents; ``samples = N`` averages the decoded
  frames of N sampled rollouts (the predictive mean, which a squared error rewards: where the
  model is unsure, the most likely frame is a confident guess, the mean hedges as copying does).
  A model that cannot sample may leave the keyword out; it is passed only when N > 0.

Errors are mean squared errors on the [0, 1] pixel scale (uint8 frames are divided by 255;
predictions are clamped to [0, 1] for images). For stacked frames (C, H, W) only the newest frame
(the last channel) is compared: the older ones are copies of earlier steps. Each prediction is
compared with the copy-the-previous-frame baseline (the last context frame, for every step of an
open-loop prediction), over all pixels and over the pixels that change (where the true frame
differs from the copied one: static backgrounds make copying look good on all pixels).
Put the model in eval mode first (dropout); nothing here changes its mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from seqrl.types import TrajectoryBatch
from torch import Tensor


class PredictiveWorldModel(Protocol):
    """A world model that can reconstruct and predict observations.

    An attribute ``stacked_frames = True`` says its (stack, H, W) observations are stacked
    grayscale frames (only the newest is compared); without it whole observations are compared.
    """

    def reconstruct(self, observations: Tensor) -> Tensor:
        """(..., *obs) -> (..., *obs) through the latent."""
        ...

    def predict(
        self, context: TrajectoryBatch, actions: Tensor, horizon: int, *, samples: int = 0
    ) -> Tensor:
        """Open-loop observations (B, horizon, *obs) after the context, given real actions
        (``samples``: 0 most likely latents, N the mean of N sampled rollouts)."""
        ...


def predictive_mean(rollout: Callable[[bool], Tensor], samples: int) -> Tensor:
    """What ``predict(..., samples=...)`` returns, for models to share: ``rollout(True)`` (most
    likely latents) when ``samples == 0``, else the mean of ``samples`` calls of
    ``rollout(False)`` (sampled latents), in call order."""
    if samples == 0:
        return rollout(True)
    total = rollout(False)
    for _ in range(samples - 1):
        total = total + rollout(False)
    return total / samples


@dataclass
class PredictionErrors:
    """Mean squared errors of a prediction and of the copy-the-previous-frame baseline.

    ``*_changed`` average over the pixels whose true value differs from the copied frame
    (NaN when no pixel changes); ``changed_fraction`` is their share of all pixels.
    """

    model_all: float
    copy_all: float
    model_changed: float
    copy_changed: float
    changed_fraction: float

    @property
    def beats_copy(self) -> bool:
        """Whether the model is below the baseline both over all and over changed pixels."""
        return self.model_all < self.copy_all and self.model_changed < self.copy_changed


@dataclass
class WorldModelReport:
    """Reconstruction error, next-frame and open-loop prediction errors on held-out data."""

    reconstruction: float
    next_frame: PredictionErrors
    open_loop: PredictionErrors
    horizon: int
    samples: int = 0  # rollouts averaged in the *_mean rows (0: none computed)
    next_frame_mean: PredictionErrors | None = None
    open_loop_mean: PredictionErrors | None = None


def _as_float(x: Tensor, images: bool) -> Tensor:
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.clamp(0.0, 1.0) if images else x


def _newest(x: Tensor, stacked: bool) -> Tensor:
    """The newest frame of stacked (..., stack, H, W) observations; others (RGB) unchanged."""
    return x[..., -1, :, :] if stacked else x


def _slice(batch: TrajectoryBatch, start: int, stop: int) -> TrajectoryBatch:
    """Steps ``start:stop`` of every field (extras included)."""
    values = {}
    for f in dataclasses.fields(batch):
        value = getattr(batch, f.name)
        if isinstance(value, dict):
            values[f.name] = {k: v[:, start:stop] for k, v in value.items()}
        else:
            values[f.name] = value[:, start:stop]
    return TrajectoryBatch(**values)


def compare_with_copy(
    predicted: Tensor, actual: Tensor, previous: Tensor, *, images: bool = True
) -> PredictionErrors:
    """Errors of ``predicted`` and of the copy baseline ``previous`` against ``actual``.

    All three broadcast to the same shape; ``images`` puts them on the [0, 1] scale.
    """
    pred, true = _as_float(predicted, images), _as_float(actual, images)
    copy = _as_float(previous, images).expand_as(true)
    changed = (true - copy).abs() > 1e-6
    model_sq, copy_sq = (pred - true).pow(2), (copy - true).pow(2)
    n_changed = int(changed.sum())
    nan = float("nan")
    return PredictionErrors(
        model_all=float(model_sq.mean()),
        copy_all=float(copy_sq.mean()),
        model_changed=float(model_sq[changed].mean()) if n_changed else nan,
        copy_changed=float(copy_sq[changed].mean()) if n_changed else nan,
        changed_fraction=n_changed / changed.numel(),
    )


@torch.no_grad()
def reconstruction_error(
    world_model: PredictiveWorldModel, observations: Tensor, mask: Tensor | None = None
) -> float:
    """Mean squared error of ``reconstruct`` on observations (B, T, *obs), real steps only."""
    images = observations.dtype == torch.uint8
    recon = _as_float(world_model.reconstruct(observations), images)
    sq = (recon - _as_float(observations, images)).pow(2).flatten(2).mean(-1)  # (B, T)
    if mask is None:
        return float(sq.mean())
    return float(sq[mask.bool()].mean())


@torch.no_grad()
def open_loop_errors(
    world_model: PredictiveWorldModel,
    batch: TrajectoryBatch,
    context: int,
    horizon: int,
    *,
    samples: int = 0,
) -> PredictionErrors:
    """Predict steps ``context .. context + horizon - 1`` from the first ``context`` steps and the
    real actions; compare the newest frames with the last context frame copied forward.
    ``samples`` as in ``predict`` (0: most likely latents; N: mean of N sampled rollouts).

    Every row must be real on all ``context + horizon`` slots it uses.
    """
    if batch.seq_len < context + horizon:
        raise ValueError(f"open_loop_errors: need {context + horizon} steps, got {batch.seq_len}")
    if not bool(batch.mask[:, : context + horizon].all()):
        raise ValueError("open_loop_errors: every slot used must be a real step (mask True)")
    obs = batch.observations
    # stacked grayscale frames compare their newest frame; RGB and single frames compare whole
    stacked = bool(getattr(world_model, "stacked_frames", False))
    images = obs.dtype == torch.uint8
    actions = batch.actions[:, context - 1 : context - 1 + horizon]
    # models without sampling need not take the keyword (most likely latents only)
    extra = {"samples": samples} if samples else {}
    predicted = world_model.predict(_slice(batch, 0, context), actions, horizon, **extra)
    actual = obs[:, context : context + horizon]
    previous = obs[:, context - 1 : context]
    return compare_with_copy(
        _newest(predicted, stacked),
        _newest(actual, stacked),
        _newest(previous, stacked),
        images=images,
    )


def next_frame_errors(
    world_model: PredictiveWorldModel, batch: TrajectoryBatch, context: int, *, samples: int = 0
) -> PredictionErrors:
    """One-step prediction of step ``context`` from the steps before it (see open_loop_errors)."""
    return open_loop_errors(world_model, batch, context, 1, samples=samples)


def evaluate_world_model(
    world_model: PredictiveWorldModel,
    batch: TrajectoryBatch,
    context: int,
    horizon: int = 10,
    *,
    samples: int = 0,
) -> WorldModelReport:
    """Reconstruction, next-frame and ``horizon``-step open-loop errors on held-out ``batch``
    (most likely latents); with ``samples = N`` also those of the mean of N sampled rollouts."""
    report = WorldModelReport(
        reconstruction=reconstruction_error(world_model, batch.observations, batch.mask),
        next_frame=next_frame_errors(world_model, batch, context),
        open_loop=open_loop_errors(world_model, batch, context, horizon),
        horizon=horizon,
    )
    if samples > 0:
        report.samples = samples
        report.next_frame_mean = next_frame_errors(world_model, batch, context, samples=samples)
        report.open_loop_mean = open_loop_errors(
            world_model, batch, context, horizon, samples=samples
        )
    return report
