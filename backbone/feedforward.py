"""Feed-forward variants of Shazeer 2020, "GLU Variants Improve Transformer" (arXiv 2002.05202).

``mlp`` is the transformer's usual ``W2 act(W1 x)``. The gated variants compute
``W2 (act(W x) * (V x))`` with ``act`` = sigmoid (``glu``), identity (``bilinear``), ReLU
(``reglu``), GELU (``geglu``) or Swish/SiLU (``swiglu``). They have three weight matrices instead
of two, so, as in the paper, their hidden size is 2/3 of the MLP's (rounded to a multiple of 8)
and the parameter counts match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from seqrl.backbone.config import FeedForwardKind
from torch import Tensor, nn

_GATES = {
    "glu": torch.sigmoid,
    "bilinear": lambda x: x,
    "reglu": F.relu,
    "geglu": F.gelu,
    "swiglu": F.silu,
}
_PLAIN = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}  # activations of the plain mlp


def hidden_size(kind: FeedForwardKind, width: int, mult: float, multiple_of: int = 8) -> int:
    """Hidden units of feed-forward ``kind``: ``mult * width``, times 2/3 for the gated variants."""
    hidden = mult * width
    if kind == "mlp":
        return max(1, round(hidden))
    return max(multiple_of, multiple_of * round(2 * hidden / 3 / multiple_of))


class FeedForward(nn.Module):
    """Position-wise feed-forward block: (..., width) -> (..., width)."""

    def __init__(
        self,
        width: int,
        kind: FeedForwardKind = "swiglu",
        *,
        mult: float = 4.0,
        activation: str = "gelu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.hidden = hidden_size(kind, width, mult)
        gated = kind != "mlp"
        # the gated variants' W and V are one matrix with 2 * hidden outputs
        self.inp = nn.Linear(width, self.hidden * (2 if gated else 1), bias=bias)
        self.out = nn.Linear(self.hidden, width, bias=bias)
        if gated:
            self.act = _GATES[kind]
        elif activation in _PLAIN:
            self.act = _PLAIN[activation]
        else:
            raise ValueError(f"FeedForward: unknown activation {activation!r} (relu, gelu or silu)")

    def forward(self, x: Tensor) -> Tensor:
        """(..., width) -> (..., width): ``out(act(inp(x)))``, or ``out(act(gate) * value)``
        for the GLU variants, whose input projection gives both halves."""
        h = self.inp(x)
        if self.kind == "mlp":
            return self.out(self.act(h))
        gate, value = h.chunk(2, dim=-1)
        return self.out(self.act(gate) * value)
