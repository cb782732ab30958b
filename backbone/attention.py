"""Causal self-attention: projections, rotary positions, the KV cache, and the three attention kinds.

``dense`` is causal attention through ``torch.nn.functional.scaled_dot_product_attention`` (flash
and memory-efficient kernels on GPU, the fused flash kernel on CPU). ``banded`` lets each token see
itself and its ``window - 1`` predecessors; without a cache it runs block by block, so its cost is
linear in the sequence length. ``dilated`` is LongNet's dilated attention
(:mod:`seqrl.backbone.dilated`). All three accept cached keys from earlier calls and a padding mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from seqrl.backbone.config import TransformerConfig
from seqrl.backbone.dilated import DilatedPlan, dilated_attention, plan_dilated
from seqrl.backbone.dropout import Dropout, attention
from seqrl.backbone.positions import Rotary
from torch import Tensor, nn


@dataclass
class Step:
    """What every layer needs to know about the n new tokens of one forward call."""

    q_start: int  # absolute position of the first new token
    positions: Tensor  # (B, n) long: each new token's position within its row's sequence
    row_start: Tensor | None  # (B,) long: where each row's sequence begins; None: at the first key
    key_padding: Tensor | None  # (B, L) bool over cached + new keys, False on padding; None: none
    dilated_plan: DilatedPlan | None = field(default=None, repr=False)  # shared by all layers
    mask: Tensor | None = field(default=None, repr=False)  # dense/banded mask, shared likewise


def _starts_at_first_key(step: Step, length: int) -> bool:
    k_start = step.q_start + step.positions.shape[1] - length
    return step.row_start is None or bool((step.row_start == k_start).all())


def attention_mask(step: Step, length: int, window: int | None, device: torch.device) -> Tensor:
    """Boolean (B or 1, 1, n, L) mask, True where a new token may attend a key (always itself)."""
    n = step.positions.shape[1]
    q_abs = step.q_start + torch.arange(n, device=device)
    k_abs = step.q_start + n - length + torch.arange(length, device=device)
    allowed = k_abs[None, :] <= q_abs[:, None]  # (n, L)
    if window is not None:
        allowed = allowed & (k_abs[None, :] > q_abs[:, None] - window)
    allowed = allowed[None]
    if step.row_start is not None:
        allowed = allowed & (k_abs[None, None, :] >= step.row_start.to(device)[:, None, None])
    if step.key_padding is not None:
        itself = k_abs[None, :] == q_abs[:, None]
        allowed = allowed & (step.key_padding.to(device)[:, None, :] | itself[None])
    return allowed[:, None]


def banded_attention(q: Tensor, k: Tensor, v: Tensor, window: int) -> Tensor:
    """Causal sliding-window attention without cache or padding, block by block: (B, H, T, D).

    Queries go in blocks of ``window``; block b attends the keys of blocks b - 1 and b, masked to
    each query's band, so the work is O(T * window) rather than O(T^2).
    """
    b, h, t, d = q.shape
    nb = -(-t // window)
    pad = nb * window - t
    qb = F.pad(q, (0, 0, 0, pad)).reshape(b * h, nb, window, d)
    span = 2 * window

    def blocks(x: Tensor) -> Tensor:  # (B, H, T, D) -> (B*H, nb, 2*window, D)
        x = F.pad(x, (0, 0, window, pad)).unfold(2, span, window)  # (B, H, nb, D, span)
        return x.transpose(-1, -2).reshape(b * h, nb, span, d)

    i = torch.arange(window, device=q.device)[:, None]
    j = torch.arange(span, device=q.device)[None, :]
    first = torch.arange(nb, device=q.device)[:, None, None] * window - window  # key 0's position
    mask = (j > i) & (j <= i + window) & (first + j >= 0)  # (nb, window, span)
    out = F.scaled_dot_product_attention(qb, blocks(k), blocks(v), attn_mask=mask)
    return out.reshape(b, h, nb * window, d)[:, :, :t]  # CUDA kernels may return it strided


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention of the kind ``config.attention``: (B, n, D) -> (B, n, D)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.heads, self.head_dim = config.heads, config.head_dim
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=config.bias)
        self.proj = nn.Linear(config.width, config.width, bias=config.bias)
        self.rotary = Rotary(config.head_dim) if config.positions == "rotary" else None
        self.dropout = Dropout(config.dropout)

    def forward(
        self, x: Tensor, step: Step, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend the new tokens ``x`` to ``past`` keys/values and themselves.

        Returns the output and the keys and values (B, H, L, head_dim) of past and new tokens.
        """
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            q, k = self.rotary(q, step.positions), self.rotary(k, step.positions)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        y = self.attend(q, k, v, step)  # (B, H, n, head_dim)
        y = y.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        return self.dropout(self.proj(y)), (k, v)

    def forward_at(
        self, x: Tensor, positions: Tensor, key_padding: Tensor | None, select: slice
    ) -> Tensor:
        """Attention output (B, n', D) of the tokens ``x[:, select]`` alone, no cache.

        ``x`` (B, L, D) are all the tokens; the queries are those of ``select``, which attend every
        earlier token (causal), within the band for banded attention, except padding
        (``key_padding`` (B, L), False on padding; a token always sees itself). Keys after the
        last selected token, and before the band of the first, are not computed. What
        :meth:`Transformer.forward` with ``select`` runs in its final block.
        """
        cfg = self.config
        if cfg.attention == "dilated":
            raise ValueError("Transformer: select supports dense and banded attention")
        b, length, width = x.shape
        index = range(length)[select]
        if len(index) == 0:
            raise ValueError(f"Transformer: select {select} picks none of {length} tokens")
        lo, hi = min(index), max(index) + 1  # keys lo..hi-1 are the only ones any query sees
        lo = max(0, lo - cfg.window + 1) if cfg.attention == "banded" else 0
        queries, q_positions = x[:, select], positions[:, select]
        x, positions = x[:, lo:hi], positions[:, lo:hi]
        key_padding = None if key_padding is None else key_padding[:, lo:hi]
        length = hi - lo
        weight, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(queries, weight[:width], None if bias is None else bias[:width])
        kv = F.linear(x, weight[width:], None if bias is None else bias[width:])
        n = q.shape[1]
        q = q.view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k, v = kv.view(b, length, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            q, k = self.rotary(q, q_positions), self.rotary(k, positions)
        mask = None
        # one query at the last key sees all keys (the band was cropped above): no mask
        if n > 1 or key_padding is not None:
            q_pos = torch.tensor(index, device=x.device) - lo
            k_pos = torch.arange(length, device=x.device)
            itself = k_pos[None, :] == q_pos[:, None]  # (n, L)
            allowed = k_pos[None, :] <= q_pos[:, None]
            if cfg.attention == "banded":
                allowed = allowed & (k_pos[None, :] > q_pos[:, None] - cfg.window)
            allowed = allowed[None]
            if key_padding is not None:
                allowed = allowed & (key_padding.to(x.device, torch.bool)[:, None, :] | itself)
            mask = allowed[:, None]  # (B or 1, 1, n, L)
        drop = cfg.attn_dropout if self.training else 0.0
        y = attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.dropout(self.proj(y.transpose(1, 2).reshape(b, n, width)))

    def decode_static(
        self, x: Tensor, positions: Tensor, slot: Tensor, bias: Tensor, keys: Tensor, values: Tensor
    ) -> Tensor:
        """One new token per row (B, 1, D) at cache slot ``slot`` (a () long tensor).

        Writes its key and value into ``keys`` / ``values`` (B, H, capacity, head_dim) in place and
        attends over all slots with the additive ``bias`` (1, 1, 1, capacity): 0 where allowed,
        -inf elsewhere. Fixed shapes, no host reads; for inference (no attention dropout). Two
        matmuls rather than SDPA: for a single query the fused CUDA kernels (tiled for many
        queries) took 66 us per call on an H200.
        """
        b = x.shape[0]
        q, k, v = self.qkv(x).view(b, 1, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        index = slot.view(1)
        keys.index_copy_(2, index, k.to(keys.dtype))
        values.index_copy_(2, index, v.to(values.dtype))
        scores = torch.matmul(q, keys.transpose(-1, -2).to(q.dtype)) * self.head_dim**-0.5
        weights = (scores + bias).softmax(-1).to(q.dtype)
        y = torch.matmul(weights, values.to(q.dtype))  # (B, H, 1, head_dim)
        return self.dropout(self.proj(y.transpose(1, 2).reshape(b, 1, self.heads * self.head_dim)))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, step: Step) -> Tensor:
        """Attention of q (B, H, n, d) over k, v (B, H, L, d), the keys ending with the queries."""
        cfg = self.config
        n, length = q.shape[2], k.shape[2]
        if cfg.attention == "dilated":
            if step.dilated_plan is None:  # every layer attends the same positions
                step.dilated_plan = plan_dilated(
                    q.shape[0],
                    q.shape[1],
                    n,
                    length,
                    cfg.segment_lengths,
                    cfg.dilation_rates,
                    q_start=step.q_start,
                    row_start=step.row_start,
                    key_padding=step.key_padding,
                    device=q.device,
                )
            return dilated_attention(
                q, k, v, cfg.segment_lengths, cfg.dilation_rates, plan=step.dilated_plan
            )
        window = cfg.window if cfg.attention == "banded" else None
        drop = cfg.attn_dropout if self.training else 0.0  # dense attention only (config.check)
        plain = n == length and step.key_padding is None and _starts_at_first_key(step, length)
        if plain and (window is None or window >= n):
            return attention(q, k, v, is_causal=True, dropout_p=drop)
        if plain and window is not None and n > 2 * window:
            return banded_attention(q, k, v, window)
        if step.mask is None:
            step.mask = attention_mask(step, length, window, q.device)
        return attention(q, k, v, attn_mask=step.mask, dropout_p=drop)
