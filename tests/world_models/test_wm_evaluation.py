"""World-model evaluation numbers on a hand-made case where they are known."""

from __future__ import annotations

import math

import pytest
import torch
from seqrl.types import TrajectoryBatch
from seqrl.world_models.evaluation import (
    compare_with_copy,
    evaluate_world_model,
    open_loop_errors,
    reconstruction_error,
)

# one row of four 1x2 frames (uint8): only pixel 1 of frame 2 differs from frame 1
FRAMES = torch.tensor([[0, 0], [0, 0], [0, 255], [0, 0]], dtype=torch.uint8).view(1, 4, 1, 2)


def batch(frames: torch.Tensor = FRAMES) -> TrajectoryBatch:
    b, t = frames.shape[:2]
    return TrajectoryBatch(
        observations=frames,
        actions=torch.zeros(b, t, dtype=torch.long),
        rewards=torch.zeros(b, t),
        returns_to_go=torch.zeros(b, t),
        timesteps=torch.arange(t).expand(b, t),
        mask=torch.ones(b, t, dtype=torch.bool),
        terminals=torch.zeros(b, t, dtype=torch.bool),
    )


class Oracle:
    """Predicts the true future (it peeks at FRAMES); reconstructs as all black."""

    def __init__(self, frames: torch.Tensor) -> None:
        self.frames = frames

    def reconstruct(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.zeros(observations.shape)

    def predict(
        self, context: TrajectoryBatch, actions: torch.Tensor, horizon: int
    ) -> torch.Tensor:
        t = context.seq_len
        assert actions.shape == (context.batch_size, horizon)
        return self.frames[:, t : t + horizon].float() / 255.0


class Grey(Oracle):
    """Predicts 0.5 everywhere."""

    def predict(
        self, context: TrajectoryBatch, actions: torch.Tensor, horizon: int
    ) -> torch.Tensor:
        return torch.full((context.batch_size, horizon, 1, 2), 0.5)


def test_open_loop_against_the_copy_baseline() -> None:
    perfect = open_loop_errors(Oracle(FRAMES), batch(), context=2, horizon=2)
    # copying frame 1 forward: wrong only on pixel 1 of frame 2 (error 1) out of 4 pixels
    assert perfect.copy_all == pytest.approx(0.25)
    assert perfect.copy_changed == pytest.approx(1.0)
    assert perfect.changed_fraction == pytest.approx(0.25)
    assert perfect.model_all == 0.0 and perfect.model_changed == 0.0
    assert perfect.beats_copy
    grey = open_loop_errors(Grey(FRAMES), batch(), context=2, horizon=2)
    assert grey.model_all == pytest.approx(0.25) and grey.model_changed == pytest.approx(0.25)
    assert not grey.beats_copy  # equal over all pixels is not better


def test_next_frame_and_reconstruction() -> None:
    report = evaluate_world_model(Oracle(FRAMES), batch(), context=2, horizon=2)
    assert report.next_frame.copy_all == pytest.approx(0.5)  # frame 2: 1 of 2 pixels wrong by 1
    assert report.next_frame.model_all == 0.0
    # black reconstructions: one white pixel of 8
    assert report.reconstruction == pytest.approx(1 / 8)
    assert reconstruction_error(Oracle(FRAMES), FRAMES, torch.tensor([[1, 1, 0, 1]])) == 0.0


def test_no_change_gives_nan_on_changed_pixels_and_stacks_use_the_newest_frame() -> None:
    still = compare_with_copy(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2))
    assert math.isnan(still.model_changed) and still.changed_fraction == 0.0
    # (B, T, C=2, H=1, W=2) stacks: the older frame (channel 0) must be ignored
    stacked = torch.stack((torch.full_like(FRAMES, 255), FRAMES), dim=2)
    oracle = Oracle(stacked)
    oracle.stacked_frames = True
    errors = open_loop_errors(oracle, batch(stacked), context=2, horizon=2)
    assert errors.copy_all == pytest.approx(0.25) and errors.model_all == 0.0
    # the same shape as colour channels (no stacked_frames): every channel counts
    errors = open_loop_errors(Oracle(stacked), batch(stacked), context=2, horizon=2)
    assert errors.copy_all == pytest.approx(0.125) and errors.model_all == 0.0


def test_rejects_padding_and_short_batches() -> None:
    padded = batch()
    padded.mask[0, 3] = False
    with pytest.raises(ValueError, match="real step"):
        open_loop_errors(Oracle(FRAMES), padded, context=2, horizon=2)
    with pytest.raises(ValueError, match="need 5 steps"):
        open_loop_errors(Oracle(FRAMES), batch(), context=2, horizon=3)
