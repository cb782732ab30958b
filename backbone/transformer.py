"""The shared pre-norm decoder (GPT-2 layout: Radford et al. 2019; Karpathy's nanoGPT).

``Transformer(config)`` maps token embeddings (B, T, width) to features (B, T, width). Callers embed
their own tokens (and may add their own positions, e.g. the Decision Transformer's timestep
embedding) and put their own heads on top. With a :class:`KVCache` the same module decodes
incrementally: each call runs only the new tokens through the layers.

Usage::

    model = Transformer(TransformerConfig(width=128, depth=3, heads=4, attention="dilated"))
    y = model(x)                            # training: (B, T, 128) -> (B, T, 128)
    cache = model.new_cache(batch_size=8)   # evaluation: token by token or block by block
    y_new = model(x_new, cache=cache)       # (8, n, 128), attends to everything cached
    cache.reset(done)                       # rows whose episode ended start afresh
"""

from __future__ import annotations

import math

import torch
from seqrl.backbone.attention import CausalSelfAttention, Step
from seqrl.backbone.cache import KVCache, StaticKVCache
from seqrl.backbone.config import TransformerConfig
from seqrl.backbone.dropout import Dropout
from seqrl.backbone.feedforward import FeedForward
from torch import Tensor, nn


def make_norm(config: TransformerConfig) -> nn.Module:
    """LayerNorm or RMSNorm over the width, as the config says."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.width)
    return nn.LayerNorm(config.width, bias=config.bias)


class Block(nn.Module):
    """``x + attn(norm(x))`` then ``x + ff(norm(x))``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = make_norm(config)
        self.ff = FeedForward(
            config.width,
            config.ff,
            mult=config.ff_mult,
            activation=config.activation,
            bias=config.bias,
        )
        self.dropout = Dropout(config.dropout)

    def forward(
        self, x: Tensor, step: Step, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(B, n, width) -> (B, n, width), and this layer's keys and values for the cache."""
        a, kv = self.attn(self.norm1(x), step, past)
        x = x + a
        return x + self.dropout(self.ff(self.norm2(x))), kv

    def forward_at(self, x: Tensor, step: Step, select: slice) -> Tensor:
        """:meth:`forward` for the tokens ``x[:, select]`` alone: the others only as keys."""
        h = self.norm1(x)
        x = x[:, select] + self.attn.forward_at(h, step.positions, step.key_padding, select)
        return x + self.dropout(self.ff(self.norm2(x)))

    def decode_static(
        self,
        x: Tensor,
        positions: Tensor,
        slot: Tensor,
        bias: Tensor,
        keys: Tensor,
        values: Tensor,
    ) -> Tensor:
        """:meth:`forward` for one token per row over a :class:`StaticKVCache` layer."""
        x = x + self.attn.decode_static(self.norm1(x), positions, slot, bias, keys, values)
        return x + self.dropout(self.ff(self.norm2(x)))


class Transformer(nn.Module):
    """Pre-norm causal transformer: (B, T, width) -> (B, T, width), final norm included."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.pos = (
            nn.Embedding(config.max_len, config.width) if config.positions == "learned" else None
        )
        self.dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = make_norm(config)
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * depth)
        for block in self.blocks:
            assert isinstance(block, Block)
            for proj in (block.attn.proj, block.ff.out):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.depth))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def new_cache(
        self, batch_size: int, *, keep: int | None = None, device: torch.device | str | None = None
    ) -> KVCache:
        """An empty cache for ``batch_size`` sequences.

        ``keep`` past tokens survive each step; by default what the attention kind can still see
        (banded: window - 1, dilated: max(segment_lengths) - 1, dense: everything). For dense
        attention a smaller ``keep`` is a sliding-window approximation; for banded and dilated it
        must not be below the default, which is already exact.
        """
        need = self.config.history
        if keep is None:
            keep = need
        elif need is not None and keep < need:
            raise ValueError(
                f"new_cache: keep={keep} drops keys {self.config.attention} attention still needs "
                f"(at least {need})"
            )
        if device is None:
            device = next(self.parameters()).device
        return KVCache.empty(batch_size, self.config.depth, keep=keep, device=device)

    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        cache: KVCache | None = None,
        select: slice | None = None,
    ) -> Tensor:
        """Features of the tokens ``x`` (B, n, width).

        ``padding_mask`` (B, n) is False on padding tokens, which no other token attends to (left
        padding, as in DT batches, or right padding). With ``cache`` the n tokens follow the cached
        ones; their keys and values are appended to it. ``select`` (no cache; dense or banded
        attention): only the features of ``x[:, select]`` are wanted, (B, n', width), so the final
        block computes the queries, feed-forward and norm of those tokens alone, and no key after
        the last of them: e.g. ``slice(-1, None)`` to act from a window, ``slice(1, None, 3)`` for
        the state tokens of DT training. The same numbers as ``forward(x)[:, select]``.
        """
        if select is not None and (cache is not None or self.config.attention == "dilated"):
            raise ValueError("Transformer: select needs no cache and dense or banded attention")
        b, n, _ = x.shape
        step = self._step(b, n, padding_mask, cache, x.device)
        if self.pos is not None:
            if int(step.positions.max()) >= self.config.max_len:
                raise ValueError(
                    f"Transformer: position {int(step.positions.max())} >= max_len {self.config.max_len}"
                )
            x = x + self.pos(step.positions)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU autocast keeps layer norms in their input's dtype (CUDA's runs them in float32):
            # carrying the residual stream in the autocast dtype skips a cast into every linear
            # layer and one out of it, forward and backward (9% of a bf16 DT update on one core)
            x = x.to(torch.get_autocast_dtype("cpu"))
        x = self.dropout(x)
        if select is not None:
            *body, final = self.blocks
            for block in body:
                x, _ = block(x, step)
            assert isinstance(final, Block)
            return self.norm(final.forward_at(x, step, select))
        for i, block in enumerate(self.blocks):
            past = None
            if cache is not None and cache.keys[i] is not None:
                past = (cache.keys[i], cache.values[i])
            x, (k, v) = block(x, step, past)  # type: ignore[arg-type]
            if cache is not None:
                cache.keys[i], cache.values[i] = k, v
        if cache is not None:
            new_valid = (
                torch.ones(b, n, dtype=torch.bool, device=cache.valid.device)
                if padding_mask is None
                else padding_mask.to(cache.valid.device, torch.bool)
            )
            cache.valid = torch.cat((cache.valid, new_valid), dim=1)
            cache.padded = cache.padded or padding_mask is not None
            if cache.keep is not None:
                cache.crop(cache.keep)
        return self.norm(x)

    def new_static_cache(
        self,
        batch_size: int,
        capacity: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> StaticKVCache:
        """An empty :class:`StaticKVCache` of ``capacity`` slots for :meth:`decode_static`.

        ``dtype``: of the keys and values, by default the parameters'; under autocast pass the
        autocast dtype, so that attention reads the cache without a cast.
        """
        cfg = self.config
        if cfg.attention == "dilated":
            raise ValueError("Transformer: static decoding supports dense and banded attention")
        if self.pos is not None and capacity > cfg.max_len:
            raise ValueError(f"Transformer: capacity {capacity} > max_len {cfg.max_len}")
        param = next(self.parameters())
        return StaticKVCache.empty(
            batch_size,
            cfg.depth,
            cfg.heads,
            cfg.head_dim,
            capacity,
            dtype=param.dtype if dtype is None else dtype,
            device=param.device if device is None else device,
        )

    def decode_static(self, x: Tensor, cache: StaticKVCache) -> Tensor:
        """Features (B, 1, width) of one new token per row, appended to ``cache`` in place.

        The same result as ``forward(x, cache=...)`` with a :class:`KVCache` holding the same
        tokens, but with fixed shapes and no value read back to the host, so that a loop of such
        steps can be recorded as a CUDA graph. The caller keeps ``cache.length < capacity``.
        """
        if cache.start and self.config.attention != "banded":
            raise ValueError(
                f"Transformer: the static cache starts at position {cache.start} (loaded from a "
                "cropped cache), which only banded attention can ignore exactly"
            )
        b = x.shape[0]
        slot = cache.length
        slots = torch.arange(cache.capacity, device=x.device)
        allowed = slots <= slot
        if self.config.attention == "banded":
            allowed = allowed & (slots > slot - self.config.window)
        bias = torch.zeros(allowed.shape, dtype=torch.float32, device=x.device)
        bias = bias.masked_fill(~allowed, float("-inf")).view(1, 1, 1, -1)
        positions = slot.view(1, 1).expand(b, 1)
        if self.pos is not None:
            x = x + self.pos(slot.view(1, 1))
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            assert isinstance(block, Block)
            x = block.decode_static(x, positions, slot, bias, cache.keys[i], cache.values[i])
        cache.length.add_(1)
        return self.norm(x)

    def _step(
        self,
        b: int,
        n: int,
        padding_mask: Tensor | None,
        cache: KVCache | None,
        device: torch.device,
    ) -> Step:
        if padding_mask is not None and padding_mask.shape != (b, n):
            raise ValueError(f"Transformer: padding_mask {tuple(padding_mask.shape)} != {(b, n)}")
        if cache is None:
            positions = torch.arange(n, device=device).expand(b, n)
            pad = None if padding_mask is None else padding_mask.to(device, torch.bool)
            return Step(q_start=0, positions=positions, row_start=None, key_padding=pad)
        if cache.batch_size != b:
            raise ValueError(f"Transformer: cache holds {cache.batch_size} rows, input has {b}")
        t0 = cache.position
        row_start = cache.row_start.to(device)
        positions = t0 + torch.arange(n, device=device)[None, :] - row_start[:, None]
        pad = None
        if cache.padded or padding_mask is not None:
            new = (
                torch.ones(b, n, dtype=torch.bool, device=device)
                if padding_mask is None
                else padding_mask.to(device, torch.bool)
            )
            pad = torch.cat((cache.valid.to(device), new), dim=1)
        return Step(q_start=t0, positions=positions, row_start=row_start, key_padding=pad)
