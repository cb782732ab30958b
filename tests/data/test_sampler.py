"""Samplers against hand-computed windows: padding, masks, returns-to-go, timesteps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.data.sampler import ChunkSampler, SequenceSampler, VisitWeights, WindowSampler
from seqrl.data.stats import ObservationStats
from seqrl.errors import DataError
from seqrl.types import Trajectory
from synth_data import make_dataset


def tiny() -> TrajectoryDataset:
    """Episode A: 3 steps, rewards 1 2 3, terminated. Episode B: 2 steps, rewards 10 20, truncated."""
    a = Trajectory(
        observations=np.array([[0.0], [1.0], [2.0], [3.0]], np.float32),
        actions=np.array([[0.1], [0.2], [0.3]], np.float32),
        rewards=np.array([1.0, 2.0, 3.0], np.float32),
        terminated=True,
    )
    b = Trajectory(
        observations=np.array([[10.0], [11.0], [12.0]], np.float32),
        actions=np.array([[0.4], [0.5]], np.float32),
        rewards=np.array([10.0, 20.0], np.float32),
        truncated=True,
    )
    return TrajectoryDataset.from_trajectories([a, b], DatasetMetadata("tiny"))


# Window K = 4, returns-to-go divided by 2, keyed by the window's first real observation.
# Padding as the DT code: observations 0, actions -10, rewards 0, rtg 0, timesteps 0, mask 0.
P = -10.0
EXPECTED = {
    # start at A0: steps 0 1 2, one slot of padding on the left
    0.0: dict(
        obs=[0, 0, 1, 2],
        act=[P, 0.1, 0.2, 0.3],
        rew=[0, 1, 2, 3],
        rtg=[0, 3, 2.5, 1.5],
        t=[0, 0, 1, 2],
        mask=[0, 1, 1, 1],
        term=[0, 0, 0, 1],
    ),
    1.0: dict(
        obs=[0, 0, 1, 2],
        act=[P, P, 0.2, 0.3],
        rew=[0, 0, 2, 3],
        rtg=[0, 0, 2.5, 1.5],
        t=[0, 0, 1, 2],
        mask=[0, 0, 1, 1],
        term=[0, 0, 0, 1],
    ),
    2.0: dict(
        obs=[0, 0, 0, 2],
        act=[P, P, P, 0.3],
        rew=[0, 0, 0, 3],
        rtg=[0, 0, 0, 1.5],
        t=[0, 0, 0, 2],
        mask=[0, 0, 0, 1],
        term=[0, 0, 0, 1],
    ),
    10.0: dict(
        obs=[0, 0, 10, 11],
        act=[P, P, 0.4, 0.5],
        rew=[0, 0, 10, 20],
        rtg=[0, 0, 15, 10],
        t=[0, 0, 0, 1],
        mask=[0, 0, 1, 1],
        term=[0, 0, 0, 0],
    ),
    11.0: dict(
        obs=[0, 0, 0, 11],
        act=[P, P, P, 0.5],
        rew=[0, 0, 0, 20],
        rtg=[0, 0, 0, 10],
        t=[0, 0, 0, 1],
        mask=[0, 0, 0, 1],
        term=[0, 0, 0, 0],
    ),
}


def test_dt_windows_match_the_hand_computed_example() -> None:
    batch = WindowSampler(tiny(), context=4, return_scale=2.0).sample(200, np.random.default_rng(0))
    assert batch.observations.shape == (200, 4, 1) and batch.observations.dtype == torch.float32
    assert batch.timesteps.dtype == torch.int64 and batch.mask.dtype == torch.bool
    seen = {}
    for b in range(200):
        key = float(batch.observations[b, batch.mask[b].nonzero()[0, 0], 0])  # first real obs
        exp = EXPECTED[key]
        got = dict(
            obs=batch.observations[b, :, 0],
            act=batch.actions[b, :, 0],
            rew=batch.rewards[b],
            rtg=batch.returns_to_go[b],
            t=batch.timesteps[b],
            mask=batch.mask[b],
            term=batch.terminals[b],
        )
        for name, value in got.items():
            np.testing.assert_allclose(
                value.numpy().astype(float), exp[name], err_msg=f"{key} {name}"
            )
        seen[key] = seen.get(key, 0) + 1
    # every start happens; a start is uniform over all 5 steps (episodes in proportion to length)
    assert set(seen) == {0.0, 1.0, 2.0, 10.0, 11.0}
    assert all(25 <= n <= 60 for n in seen.values())


# anchor "end" (d3rlpy's slicer): keyed by the window's last observation, the drawn step
EXPECTED_END = {
    0.0: dict(obs=[0, 0, 0, 0], rtg=[0, 0, 0, 3], t=[0, 0, 0, 0], mask=[0, 0, 0, 1]),
    1.0: dict(obs=[0, 0, 0, 1], rtg=[0, 0, 3, 2.5], t=[0, 0, 0, 1], mask=[0, 0, 1, 1]),
    2.0: dict(obs=[0, 0, 1, 2], rtg=[0, 3, 2.5, 1.5], t=[0, 0, 1, 2], mask=[0, 1, 1, 1]),
    10.0: dict(obs=[0, 0, 0, 10], rtg=[0, 0, 0, 15], t=[0, 0, 0, 0], mask=[0, 0, 0, 1]),
    11.0: dict(obs=[0, 0, 10, 11], rtg=[0, 0, 15, 10], t=[0, 0, 0, 1], mask=[0, 0, 1, 1]),
}


def test_dt_windows_anchored_at_their_end_match_the_hand_computed_example() -> None:
    sampler = WindowSampler(tiny(), context=4, return_scale=2.0, anchor="end")
    batch = sampler.sample(200, np.random.default_rng(0))
    seen: dict[float, int] = {}
    for b in range(200):
        assert bool(batch.mask[b, -1])  # the drawn step is the last slot, always real
        key = float(batch.observations[b, -1, 0])
        exp = EXPECTED_END[key]
        got = dict(
            obs=batch.observations[b, :, 0],
            rtg=batch.returns_to_go[b],
            t=batch.timesteps[b],
            mask=batch.mask[b],
        )
        for name, value in got.items():
            np.testing.assert_allclose(value.numpy().astype(float), exp[name], err_msg=f"{key}")
        seen[key] = seen.get(key, 0) + 1
    assert set(seen) == set(EXPECTED_END) and all(25 <= n <= 60 for n in seen.values())
    with pytest.raises(DataError, match="anchor"):
        WindowSampler(tiny(), context=4, anchor="middle")  # type: ignore[arg-type]


def test_deterministic_under_a_seed_and_generator_state_is_saveable() -> None:
    dataset = make_dataset((30, 50, 7))
    sampler = WindowSampler(dataset, context=20)
    rng = np.random.default_rng(123)
    state = rng.bit_generator.state
    first = sampler.sample(16, rng)
    rng.bit_generator.state = state  # what a checkpoint restores
    second = sampler.sample(16, rng)
    for key in ("observations", "actions", "returns_to_go", "timesteps", "mask"):
        assert torch.equal(getattr(first, key), getattr(second, key))


def test_timestep_clip_and_observation_normalisation() -> None:
    stats = ObservationStats(mean=np.array([1.0], np.float32), std=np.array([2.0], np.float32))
    batch = WindowSampler(tiny(), context=4, max_timestep=2, obs_stats=stats).sample(
        50, np.random.default_rng(0)
    )
    assert int(batch.timesteps.max()) == 1  # clipped to max_timestep - 1
    # padded observations are normalised zeros, as the DT code normalises after padding
    padded = batch.observations[~batch.mask]
    assert torch.allclose(padded, torch.full_like(padded, -0.5))


def test_sequences_with_burn_in_never_cross_episodes_unmasked() -> None:
    dataset = make_dataset((6, 2, 9))
    batch = SequenceSampler(dataset, seq_len=4, burn_in=3).sample(300, np.random.default_rng(0))
    assert batch.mask.shape == (300, 7)
    assert torch.equal(batch.extras["burn_in"][0], torch.tensor([True] * 3 + [False] * 4))
    starts = dataset.episode_starts
    for b in range(300):
        real = batch.timesteps[b][batch.mask[b]].numpy()
        # real slots are consecutive steps of one episode
        assert np.all(np.diff(real) == 1)
        # the training part (after burn-in) starts on a real step
        assert bool(batch.mask[b, 3])
        # the observations are those of one episode: check against the dataset
        rows = [i for i in range(7) if batch.mask[b, i]]
        obs = batch.observations[b, rows].numpy()
        matches = [
            e
            for e in range(3)
            if real[-1] < starts[e + 1] - starts[e]
            and np.array_equal(dataset[e].observations[real], obs)
        ]
        assert matches, f"row {b} is not a window of one episode"
    # the short episode (2 steps) gives right padding after its end
    assert (~batch.mask[:, -1]).any()


@pytest.mark.parametrize("pad_end", [False, True])
def test_pad_end_trains_every_step_equally_often(pad_end: bool) -> None:
    """With pad_end each step of an episode falls in seq_len windows; without, the last step in
    one (a world model would rarely see terminations)."""
    dataset = make_dataset((40,))
    sampler = SequenceSampler(dataset, seq_len=8, pad_end=pad_end)
    batch = sampler.sample(20_000, np.random.default_rng(0))
    counts = np.bincount(batch.timesteps[batch.mask].numpy(), minlength=40)
    middle, last = counts[20], counts[39]
    if pad_end:
        assert last == pytest.approx(middle, rel=0.15)
        assert not bool(batch.mask[:, 0].logical_not().any())  # the trained part starts real
        assert (~batch.mask[:, -1]).any()  # windows run past the end, padded
    else:
        assert last < middle / 4


def test_sequence_weights_hook_counts_visits() -> None:
    dataset = make_dataset((10, 10))
    weights = VisitWeights(dataset.num_steps, temperature=20.0)
    sampler = SequenceSampler(dataset, seq_len=5, weights=weights)
    rng = np.random.default_rng(0)
    for _ in range(20):
        sampler.sample(8, rng)
    assert weights.visits.sum() == 160
    # only starts from which 5 steps fit can be drawn: steps 0..5 of each episode
    allowed = np.r_[0:6, 10:16]
    assert weights.visits[np.setdiff1d(np.arange(20), allowed)].sum() == 0
    # heavily visited starts get less weight
    w = weights(np.array([0, 1]))
    weights.visits[0] += 100
    assert weights(np.array([0, 1]))[0] < w[0]


def test_chunks_cross_episodes_and_mark_each_start() -> None:
    dataset = tiny()
    batch = ChunkSampler(dataset, length=6).sample(64, np.random.default_rng(0))
    assert batch.mask.shape == (64, 6)
    for b in range(64):
        t = batch.timesteps[b].numpy()
        m = batch.mask[b].numpy()
        first = batch.extras["first"][b].numpy()
        np.testing.assert_array_equal(first, m & (t == 0))
        # the stream is A0 A1 A2 B0 B1: a chunk from A0 holds all five, then padding
        if batch.observations[b, 0, 0] == 0.0:
            np.testing.assert_array_equal(t, [0, 1, 2, 0, 1, 0])
            np.testing.assert_array_equal(m, [1, 1, 1, 1, 1, 0])
            np.testing.assert_allclose(batch.returns_to_go[b].numpy(), [6, 5, 3, 30, 20, 0])
            np.testing.assert_array_equal(batch.terminals[b].numpy(), [0, 0, 1, 0, 0, 0])


@pytest.mark.parametrize("frame_stack", [1, 4])
def test_uint8_frames_stay_uint8_and_stack(frame_stack: int) -> None:
    frames = np.arange(7, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)  # frame i = i
    episode = Trajectory(frames, np.zeros(6, np.int64), np.ones(6, np.float32), terminated=True)
    dataset = TrajectoryDataset.from_trajectories([episode], DatasetMetadata("frames"))
    batch = WindowSampler(dataset, context=3, frame_stack=frame_stack).sample(
        20, np.random.default_rng(0)
    )
    assert batch.observations.dtype == torch.uint8 and batch.actions.dtype == torch.int64
    if frame_stack == 4:
        assert batch.observations.shape == (20, 3, 4, 2, 2)
        for b in range(20):
            for j in range(3):
                if batch.mask[b, j]:
                    t = int(batch.timesteps[b, j])
                    expected = [max(t - k, 0) for k in (3, 2, 1, 0)]  # first frame repeated
                    np.testing.assert_array_equal(
                        batch.observations[b, j, :, 0, 0].numpy(), expected
                    )
