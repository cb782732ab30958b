"""Dropout with fast CPU masks, and attention that drops out through them.

torch's CPU dropout draws every element's keep decision with ``bernoulli_``, one scalar random
number at a time: at the Decision Transformer's gym sizes that was 21% of a training step on one
core (10 dropout calls of up to 0.5 M elements each). Here a CPU mask takes 64-bit words from
``torch.randint`` (four elements per word) and keeps an element when its 16 bits lie at or above
``p`` of the way through their range: Bernoulli(1 - p) with ``p`` resolved to 2^-16 (p = 0.1 is
drawn as 6554 / 65536 = 0.100006), from the default CPU generator, so ``torch.manual_seed``
reproduces it. The generator (one Mersenne Twister, single-threaded, about 4 ns per 64-bit word)
is the cost: 16 bits per element rather than 32 halved it, 4 ms of a 90 ms DT update. Kept
elements are scaled by ``1 / (1 - p)``, as ``torch.nn.functional.dropout``. Other devices use
``torch.nn.functional.dropout`` (fused Philox kernels); so does the CPU outside training.

:func:`attention` is ``scaled_dot_product_attention`` except when it must drop attention
weights on the CPU: there it runs the math (scores, softmax, dropout with the mask above, values).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_WORD = 2**63  # torch.randint draws int64 words uniformly from [-2^63, 2^63 - 1)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> Tensor:
    """A CPU bool mask of ``shape``: each element True (kept) with probability ``1 - p``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    n = 1
    for size in shape:
        n *= size
    words = torch.randint(-_WORD, _WORD - 1, ((n + 3) // 4,), dtype=torch.int64)
    quarters = words.view(torch.int16)[:n].view(shape)  # 16 uniform bits per element
    return quarters >= int(-(2**15) + round(p * 2**16))


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``torch.nn.functional.dropout(x, p, training)``, with :func:`keep_mask` masks on the CPU."""
    if not training or p == 0.0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    return x * keep_mask(x.shape, p).to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Drop-in for ``torch.nn.Dropout`` (no parameters, the same state dict) using :func:`dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with elements zeroed with probability ``p`` and the rest scaled (in training)."""
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        """``p=...`` in the module's printed form, as ``torch.nn.Dropout`` shows it."""
        return f"p={self.p}"


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> Tensor:
    """``scaled_dot_product_attention(q, k, v, ...)``; on the CPU with ``dropout_p > 0`` the
    attention weights are dropped with :func:`dropout` (a bool ``attn_mask`` is True where a
    query may attend; ``is_causal`` aligns the last query with the last key)."""
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=dropout_p
        )
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    n, length = q.shape[-2], k.shape[-2]
    if is_causal:
        allowed = torch.ones(n, length, dtype=torch.bool, device=q.device).tril(length - n)
        scores = scores.masked_fill(~allowed, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = dropout(scores.float().softmax(-1), dropout_p).to(v.dtype)
    return torch.matmul(weights, v)


__all__ = ["Dropout", "attention", "dropout", "keep_mask"]
