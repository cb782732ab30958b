"""Samplers: cut :class:`~seqrl.types.TrajectoryBatch` windows from a dataset or a replay buffer.

One family sharing one cutter (:func:`cut_windows`): every sampler picks, for each row of the
batch, an episode ``e`` and a position ``pos[b, j]`` (step index inside the episode) for each of
the ``L`` slots; slots whose position falls outside the episode are padding (``mask`` False).
Windows therefore never cross an episode boundary without the mask saying so, except in
:class:`ChunkSampler`, which crosses them on purpose and marks every episode start in
``extras["first"]``.

- :class:`WindowSampler`: Decision Transformer windows of ``K`` steps (kzl/decision-transformer,
  ``gym/experiment.py``, ``get_batch``): an episode drawn in proportion to its length, a start
  drawn uniformly in it, up to ``K`` steps forward, **left**-padded (observations 0, actions -10,
  rewards 0, returns-to-go 0, timesteps 0, mask 0), returns-to-go divided by ``return_scale``,
  timesteps clipped to ``max_timestep - 1``.
- :class:`SequenceSampler`: world-model sequences of ``burn_in + seq_len`` steps, the ``seq_len``
  part inside one episode when it fits; the burn-in part before an episode start and the tail
  after its end are padding. Start weights are a hook (TWM: softmax(-visits / 20)).
- :class:`ChunkSampler`: long chunks of consecutive steps across episodes, for banded or dilated
  attention over long horizons.

Every sampler takes the ``np.random.Generator`` at each call, so it is deterministic under a seed
and a checkpoint can save the generator's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from seqrl.data.dataset import EpisodeIndex
from seqrl.data.stats import ObservationStats
from seqrl.errors import DataError
from seqrl.types import TrajectoryBatch


class EpisodeSource(Protocol):
    """Anything samplers can read: a :class:`TrajectoryDataset` or a :class:`ReplayBuffer`."""

    def episode_index(self) -> EpisodeIndex:
        """The current flat layout."""
        ...


class StartWeights(Protocol):
    """Sampling-weight hook: unnormalised weights over candidate start steps.

    ``__call__(flat_steps (M,)) -> weights (M,)``; ``update(chosen (B,))`` is told which were drawn
    (e.g. to count visits). :class:`VisitWeights` is TWM's rule.
    """

    def __call__(self, flat_steps: np.ndarray) -> np.ndarray: ...

    def update(self, chosen: np.ndarray) -> None:
        """Told which flat steps (B,) were drawn as starts."""
        ...


@dataclass
class PadValues:
    """What padded slots hold (the DT code pads states 0, actions -10, the rest 0)."""

    observation: float = 0.0
    action: float = -10.0
    discrete_action: int = 0


class _Cutter:
    """Shared state of a sampler: the source and caches keyed on the index version."""

    def __init__(self, source: EpisodeSource) -> None:
        self.source = source
        self._cache_version: int | None = None
        self._cumsum: np.ndarray | None = None
        self._index: EpisodeIndex | None = None

    def index(self) -> EpisodeIndex:
        """The source's layout, refreshed when its version changes."""
        index = self.source.episode_index()
        if len(index.starts) == 0:
            raise DataError("sampler: no episodes to sample from")
        if self._cache_version != index.version or self._index is None:
            self._cache_version = index.version
            self._cumsum = None
        self._index = index
        return index

    def reward_cumsum(self, index: EpisodeIndex) -> np.ndarray:
        """``(rows,)`` float64 running sum of the flat rewards (for returns-to-go)."""
        if self._cumsum is None:
            self._cumsum = np.cumsum(index.rewards, dtype=np.float64)
        return self._cumsum


def cut_windows(
    cutter: _Cutter,
    index: EpisodeIndex,
    episodes: np.ndarray,
    positions: np.ndarray,
    *,
    return_scale: float = 1.0,
    max_timestep: int | None = None,
    obs_stats: ObservationStats | None = None,
    frame_stack: int = 1,
    pad: PadValues | None = None,
) -> TrajectoryBatch:
    """Gather a batch: row ``b`` reads episode ``episodes[b]`` at steps ``positions[b]`` (B, L).

    Positions outside ``[0, length)`` are padding. ``frame_stack > 1`` stacks the previous
    ``frame_stack - 1`` observations on a new axis 2 (repeating the episode's first frame before
    its start), for single-frame image data such as DQN-Replay.
    """
    pad = pad or PadValues()
    lengths = index.lengths[episodes][:, None]  # (B, 1)
    mask = (positions >= 0) & (positions < lengths)  # (B, L)
    inside = np.clip(positions, 0, lengths - 1)
    flat = index.starts[episodes][:, None] + inside  # (B, L) rows of actions / rewards
    obs_rows = flat + index.obs_offsets[episodes][:, None]

    if frame_stack > 1:
        first_row = (index.starts + index.obs_offsets)[episodes][:, None, None]
        back = np.arange(frame_stack - 1, -1, -1)  # oldest frame first
        rows = np.maximum(obs_rows[..., None] - back, first_row)  # (B, L, k)
        observations = np.asarray(np.take(index.observations, rows, axis=0))  # (B, L, k, ...)
    else:
        # np.take is several times faster than fancy indexing for rows of a 2-D+ array
        observations = np.asarray(np.take(index.observations, obs_rows, axis=0))  # (B, L, ...)
    observations[~mask] = pad.observation
    if obs_stats is not None:
        observations = obs_stats.normalize(observations)
    elif np.issubdtype(observations.dtype, np.floating) and observations.dtype != np.float32:
        observations = observations.astype(np.float32)

    actions = np.asarray(np.take(index.actions, flat, axis=0))  # (B, L, ...)
    discrete = np.issubdtype(actions.dtype, np.integer)
    actions = actions.astype(np.int64 if discrete else np.float32, copy=False)
    actions[~mask] = pad.discrete_action if discrete else pad.action

    step_rewards = index.rewards[flat]
    rewards = np.where(mask, step_rewards, 0.0).astype(np.float32)
    cumsum = cutter.reward_cumsum(index)
    episode_total_end = cumsum[index.ends[episodes] - 1][:, None]  # (B, 1)
    rtg = (episode_total_end - cumsum[flat] + step_rewards) / return_scale
    rtg = np.where(mask, rtg, 0.0).astype(np.float32)

    timesteps = np.where(mask, inside, 0)
    if max_timestep is not None:
        timesteps = np.minimum(timesteps, max_timestep - 1)
    terminals = mask & (inside == lengths - 1) & index.terminated[episodes][:, None]
    first = mask & (inside == 0)
    return TrajectoryBatch(
        observations=torch.from_numpy(observations),
        actions=torch.from_numpy(actions),
        rewards=torch.from_numpy(rewards),
        returns_to_go=torch.from_numpy(rtg),
        timesteps=torch.from_numpy(timesteps.astype(np.int64)),
        mask=torch.from_numpy(mask),
        terminals=torch.from_numpy(terminals),
        extras={"first": torch.from_numpy(first)},
    )


class WindowSampler:
    """Decision Transformer windows: ``K`` steps, left-padded, with scaled returns-to-go.

    Args:
        source: a dataset or replay buffer.
        context: ``K``, the window length in steps.
        return_scale: returns-to-go are divided by it (the DT gym code uses 1000).
        max_timestep: timesteps are clipped to ``max_timestep - 1`` (the DT code's ``max_ep_len``).
        obs_stats: if given, observations are normalised (after padding, as in the DT code).
        frame_stack: stack this many consecutive frames per step (Atari single-frame data).
        anchor: ``start``: a window starts at the drawn step and is cut at the episode's end (the
            DT paper's ``get_batch``); ``end``: it ends at the drawn step and is cut at the
            episode's start (d3rlpy's trajectory slicer), so the first steps are seen with the
            short histories evaluation gives them. Either way the real steps are right-aligned.
    """

    def __init__(
        self,
        source: EpisodeSource,
        context: int,
        return_scale: float = 1.0,
        max_timestep: int | None = 1000,
        obs_stats: ObservationStats | None = None,
        frame_stack: int = 1,
        anchor: Literal["start", "end"] = "start",
    ) -> None:
        if context < 1:
            raise DataError(f"sampler: context must be >= 1, got {context}")
        if anchor not in ("start", "end"):
            raise DataError(f"sampler: anchor must be 'start' or 'end', got {anchor!r}")
        self.anchor = anchor
        self._cutter = _Cutter(source)
        self.context = context
        self.return_scale = return_scale
        self.max_timestep = max_timestep
        self.obs_stats = obs_stats
        self.frame_stack = frame_stack

    def sample(self, batch_size: int, rng: np.random.Generator) -> TrajectoryBatch:
        """``batch_size`` windows; episodes in proportion to length, the anchor step (start or
        end) uniform within them.

        Drawing a step uniformly over all steps is exactly that distribution (P(e) = T_e / S,
        then P(step | e) = 1 / T_e), and costs one draw per row.
        """
        index = self._cutter.index()
        lengths = index.lengths
        cum = np.cumsum(lengths)
        step = rng.integers(0, int(cum[-1]), size=batch_size)
        episodes = np.searchsorted(cum, step, side="right")
        drawn = step - (cum[episodes] - lengths[episodes])  # (B,) position in the episode
        slots = np.arange(self.context)[None, :]
        if self.anchor == "end":
            positions = drawn[:, None] - self.context + 1 + slots
            positions[positions < 0] = -1  # before the episode: left padding
        else:
            valid = np.minimum(self.context, lengths[episodes] - drawn)  # steps before the end
            shift = self.context - valid  # left padding
            positions = drawn[:, None] + slots - shift[:, None]
            positions[slots < shift[:, None]] = -1  # left padding (before the window)
        return cut_windows(
            self._cutter,
            index,
            episodes,
            positions,
            return_scale=self.return_scale,
            max_timestep=self.max_timestep,
            obs_stats=self.obs_stats,
            frame_stack=self.frame_stack,
        )


class SequenceSampler:
    """World-model sequences: ``burn_in`` context steps then ``seq_len`` training steps.

    The start ``t0`` of the ``seq_len`` part is drawn among the steps of an episode from which
    ``seq_len`` steps fit (step 0 for a shorter episode), or with ``pad_end`` among all its steps;
    the window covers ``[t0 - burn_in, t0 + seq_len)``. Slots before the episode start or after its
    end are padding. ``extras["burn_in"]`` is True on the first ``burn_in`` slots.

    Without ``pad_end`` an episode's last steps fall in fewer windows than its middle ones (the
    final step in one window instead of ``seq_len``), so a world model rarely sees terminations;
    with it every step is trained on equally often, as TWM and DreamerV3 sample.

    Args:
        source: a dataset or replay buffer.
        seq_len: training steps per row.
        burn_in: context steps before them.
        weights: optional :class:`StartWeights` hook over candidate starts; default uniform.
        frame_stack: as in :class:`WindowSampler`.
        pad_end: draw starts among every step of an episode; windows running past its end are
            padded.
    """

    def __init__(
        self,
        source: EpisodeSource,
        seq_len: int,
        burn_in: int = 0,
        weights: StartWeights | None = None,
        frame_stack: int = 1,
        pad_end: bool = False,
    ) -> None:
        if seq_len < 1 or burn_in < 0:
            raise DataError(
                f"sampler: need seq_len >= 1 and burn_in >= 0, got {seq_len}, {burn_in}"
            )
        self._cutter = _Cutter(source)
        self.seq_len = seq_len
        self.burn_in = burn_in
        self.weights = weights
        self.frame_stack = frame_stack
        self.pad_end = pad_end

    def sample(self, batch_size: int, rng: np.random.Generator) -> TrajectoryBatch:
        """``batch_size`` sequences of ``burn_in + seq_len`` slots."""
        index = self._cutter.index()
        fit = 1 if self.pad_end else self.seq_len
        candidates = np.maximum(index.lengths - fit + 1, 1)  # starts per episode
        cum = np.cumsum(candidates)
        if self.weights is None:
            draw = rng.integers(0, int(cum[-1]), size=batch_size)
        else:
            # flat step of every candidate start, episode by episode
            episode_of = np.repeat(np.arange(len(candidates)), candidates)
            offset = np.arange(int(cum[-1])) - np.repeat(cum - candidates, candidates)
            flat = index.starts[episode_of] + offset
            w = np.asarray(self.weights(flat), dtype=np.float64)
            draw = rng.choice(len(flat), size=batch_size, p=w / w.sum())
            self.weights.update(flat[draw])
        episodes = np.searchsorted(cum, draw, side="right")
        t0 = draw - (cum[episodes] - candidates[episodes])
        slots = np.arange(self.burn_in + self.seq_len)[None, :]
        positions = t0[:, None] - self.burn_in + slots
        batch = cut_windows(
            self._cutter,
            index,
            episodes,
            positions,
            max_timestep=None,
            frame_stack=self.frame_stack,
        )
        burn = np.broadcast_to(slots < self.burn_in, positions.shape).copy()
        batch.extras["burn_in"] = torch.from_numpy(burn)
        return batch


class ChunkSampler:
    """Long chunks of ``length`` consecutive steps of the episode stream, crossing episodes.

    Episodes are laid end to end in index order; a chunk starts at a uniformly drawn step and runs
    on into the following episodes. ``extras["first"]`` marks each episode start, ``timesteps``
    restart at 0 there, returns-to-go are per episode; slots past the last step are padding.
    """

    def __init__(
        self,
        source: EpisodeSource,
        length: int,
        return_scale: float = 1.0,
        max_timestep: int | None = None,
        obs_stats: ObservationStats | None = None,
    ) -> None:
        if length < 1:
            raise DataError(f"sampler: chunk length must be >= 1, got {length}")
        self._cutter = _Cutter(source)
        self.length = length
        self.return_scale = return_scale
        self.max_timestep = max_timestep
        self.obs_stats = obs_stats

    def sample(self, batch_size: int, rng: np.random.Generator) -> TrajectoryBatch:
        """``batch_size`` chunks of ``length`` slots."""
        index = self._cutter.index()
        cum = np.cumsum(index.lengths)
        total = int(cum[-1])
        stream = rng.integers(0, total, size=batch_size)[:, None] + np.arange(self.length)[None, :]
        beyond = stream >= total
        stream = np.minimum(stream, total - 1)
        episodes = np.searchsorted(cum, stream, side="right")  # (B, L)
        positions = stream - (cum[episodes] - index.lengths[episodes])
        positions[beyond] = -1  # padding
        # cut_windows takes one episode per row: cut each slot as a row of length 1
        flat_batch = cut_windows(
            self._cutter,
            index,
            episodes.ravel(),
            positions.reshape(-1, 1),
            return_scale=self.return_scale,
            max_timestep=self.max_timestep,
            obs_stats=self.obs_stats,
        )
        b, length = stream.shape

        def fold(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, length, *t.shape[2:])

        return TrajectoryBatch(
            observations=fold(flat_batch.observations),
            actions=fold(flat_batch.actions),
            rewards=fold(flat_batch.rewards),
            returns_to_go=fold(flat_batch.returns_to_go),
            timesteps=fold(flat_batch.timesteps),
            mask=fold(flat_batch.mask),
            terminals=fold(flat_batch.terminals),
            extras={k: fold(v) for k, v in flat_batch.extras.items()},
        )


class VisitWeights:
    """TWM's start weights: ``softmax(-visits / temperature)`` over candidate start steps.

    Counts how often each flat step was drawn as a start (Robine et al. 2023, arXiv 2303.07109,
    Sec. 3.4: temperature 20). ``capacity`` is the size of the flat storage.
    """

    def __init__(self, capacity: int, temperature: float = 20.0) -> None:
        self.visits = np.zeros(capacity, dtype=np.int64)
        self.temperature = temperature

    def __call__(self, flat_steps: np.ndarray) -> np.ndarray:
        """``(M,)`` unnormalised weights."""
        logits = -self.visits[flat_steps] / self.temperature
        return np.exp(logits - logits.max())

    def update(self, chosen: np.ndarray) -> None:
        """Count the drawn starts."""
        np.add.at(self.visits, chosen, 1)
