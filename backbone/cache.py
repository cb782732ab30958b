"""``KVCache``: keys and values of past tokens, so that decoding runs only the new tokens.

One cache serves a batch of B sequences that advance together (N environments, or B imagined
trajectories). ``Transformer.forward(x_new, cache=cache)`` attends the new tokens (one token, or a
block such as one frame's tokens) to the cached ones, appends their keys and values and then drops
what no later token can attend to (``keep``). Outputs equal those of one full forward pass.

Positions are absolute: slot 0 of the cache holds position ``offset``, the next token gets
``position``. Each row has a ``row_start``: the position where its current sequence began. Rows
are reset independently (an environment whose episode ended) with :meth:`KVCache.reset`: earlier
tokens become invisible to that row, and learned/rotary positions and dilated segments restart
there, so the row continues exactly as a fresh sequence would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class KVCache:
    """Per-layer keys and values (B, H, L, head_dim) of the last L positions of B sequences."""

    keys: list[Tensor | None]
    values: list[Tensor | None]
    valid: Tensor  # (B, L) bool: False on padding tokens
    row_start: Tensor  # (B,) long: absolute position where each row's sequence begins
    offset: int = 0  # absolute position of slot 0
    keep: int | None = None  # past tokens kept after each step (None: all)
    padded: bool = False  # whether any cached token is padding

    @classmethod
    def empty(
        cls,
        batch_size: int,
        depth: int,
        *,
        keep: int | None = None,
        device: torch.device | str | None = None,
    ) -> KVCache:
        """A cache for ``batch_size`` sequences through ``depth`` layers, holding nothing yet."""
        return cls(
            keys=[None] * depth,
            values=[None] * depth,
            valid=torch.ones(batch_size, 0, dtype=torch.bool, device=device),
            row_start=torch.zeros(batch_size, dtype=torch.long, device=device),
            keep=keep,
        )

    @property
    def batch_size(self) -> int:
        """Number of sequences B."""
        return self.valid.shape[0]

    @property
    def length(self) -> int:
        """Number of cached positions L."""
        return self.valid.shape[1]

    @property
    def position(self) -> int:
        """Absolute position the next token will get."""
        return self.offset + self.length

    def reset(self, rows: Tensor) -> None:
        """Start new sequences in ``rows`` (bool (B,) or indices) at the next position."""
        self.row_start = self.row_start.clone()
        self.row_start[rows.to(self.row_start.device)] = self.position

    def crop(self, keep: int) -> None:
        """Keep only the last ``keep`` positions."""
        drop = self.length - keep
        if keep < 0 or drop <= 0:
            return
        self.keys = [None if k is None else k[:, :, drop:] for k in self.keys]
        self.values = [None if v is None else v[:, :, drop:] for v in self.values]
        self.valid = self.valid[:, drop:]
        self.offset += drop

    def detach_(self) -> KVCache:
        """Stop gradients at the cached keys and values (a Transformer-XL style memory)."""
        self.keys = [None if k is None else k.detach() for k in self.keys]
        self.values = [None if v is None else v.detach() for v in self.values]
        return self

    def select(self, index: Tensor) -> KVCache:
        """A new cache of rows ``index`` (long (B',), may repeat: B' imagined rollouts per context)."""
        index = index.to(self.valid.device)
        return KVCache(
            keys=[None if k is None else k.index_select(0, index) for k in self.keys],
            values=[None if v is None else v.index_select(0, index) for v in self.values],
            valid=self.valid.index_select(0, index),
            row_start=self.row_start.index_select(0, index),
            offset=self.offset,
            keep=self.keep,
            padded=self.padded,
        )


class StaticKVCache:
    """Keys and values of a fixed ``capacity``, for decoding one token at a time with fixed shapes.

    Unlike :class:`KVCache` nothing grows or is concatenated: layer ``i``'s keys live in
    ``keys[i]`` (B, H, capacity, head_dim) and the number of filled slots is the device tensor
    ``length``, so a decoding step (:meth:`seqrl.backbone.Transformer.decode_static`) launches the
    same kernels on the same memory every time, reads nothing back to the host, and can be
    recorded once as a CUDA graph and replayed. All rows advance together from position 0 (no
    padding, no per-row resets); slots at or beyond ``length`` are masked out.
    """

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        if keys.shape != values.shape or keys.dim() != 5:
            raise ValueError(
                f"StaticKVCache: keys {tuple(keys.shape)}, values {tuple(values.shape)}"
            )
        self.keys, self.values = keys, values  # (depth, B, H, capacity, head_dim)
        self.length = torch.zeros((), dtype=torch.long, device=keys.device)
        self.start = 0  # first filled slot: a loaded cache may have dropped earlier positions

    @classmethod
    def empty(
        cls,
        batch_size: int,
        depth: int,
        heads: int,
        head_dim: int,
        capacity: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> StaticKVCache:
        """An all-zero cache of ``capacity`` slots for ``batch_size`` sequences."""
        shape = (depth, batch_size, heads, capacity, head_dim)
        return cls(
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
        )

    @property
    def batch_size(self) -> int:
        """Number of sequences B."""
        return self.keys.shape[1]

    @property
    def capacity(self) -> int:
        """Slots per row: the longest sequence the cache holds."""
        return self.keys.shape[3]

    def load(self, cache: KVCache) -> None:
        """Copy a :class:`KVCache` (e.g. after a prefill) in, in place: same memory afterwards.

        Its positions ``offset ... position - 1`` go to the same slots (a banded cache keeps only
        the last ``window - 1``; the slots before them are outside every later token's band).
        """
        start, end = cache.offset, cache.position
        if cache.padded or end > self.capacity:
            raise ValueError(
                f"StaticKVCache.load: needs a cache without padding and at most {self.capacity} "
                f"positions (padded {cache.padded}, {end} positions)"
            )
        if cache.batch_size != self.batch_size or len(cache.keys) != self.keys.shape[0]:
            raise ValueError(
                f"StaticKVCache.load: cache of {cache.batch_size} rows x {len(cache.keys)} layers, "
                f"this one {self.batch_size} x {self.keys.shape[0]}"
            )
        for i, (k, v) in enumerate(zip(cache.keys, cache.values, strict=True)):
            if k is None or v is None:
                raise ValueError(f"StaticKVCache.load: layer {i} holds no keys")
            self.keys[i, :, :, start:end].copy_(k)
            self.values[i, :, :, start:end].copy_(v)
        self.length.fill_(end)
        self.start = start
