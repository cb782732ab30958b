"""``TransformerConfig``: every choice the shared backbone offers, as one dataclass.

Consumers (the Decision Transformer, the world models) hold a ``TransformerConfig`` field in their
own config and pass the object to :class:`seqrl.backbone.Transformer`; switching dense to dilated
attention or MLP to SwiGLU is a config override (``--model.backbone.attention dilated``), not code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqrl.errors import ConfigError

FeedForwardKind = Literal["mlp", "glu", "bilinear", "reglu", "geglu", "swiglu"]
AttentionKind = Literal["dense", "banded", "dilated"]
PositionKind = Literal["none", "learned", "rotary"]
NormKind = Literal["layernorm", "rmsnorm"]

PAPER_DILATION_RATES = (1, 2, 4, 6, 12)
"""LongNet's dilation rates for its five segment lengths 2048 ... 32768 (arXiv 2307.02486, sec. 4.1)."""


def longnet_schedule(
    base: int = 2048, pairs: int = 5, rates: tuple[int, ...] = PAPER_DILATION_RATES
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The paper's geometric schedule scaled to ``base``: ``w_i = base * 2**i`` with ``r_i = rates[i]``.

    ``longnet_schedule(2048)`` is the paper's (w = 2048 ... 32768, r = 1, 2, 4, 6, 12). RL contexts
    are shorter, so presets use e.g. ``longnet_schedule(64)``: with w0 = 2048 every context up to
    2048 tokens would be plain dense attention.
    """
    if pairs > len(rates):
        raise ValueError(f"longnet_schedule: {pairs} pairs but only {len(rates)} rates")
    return tuple(base * 2**i for i in range(pairs)), tuple(rates[:pairs])


_DEFAULT_SEGMENTS, _DEFAULT_RATES = longnet_schedule(64)


@dataclass
class TransformerConfig:
    """Shape and variant choices of the pre-norm decoder (see ``docs/backbone.md``)."""

    width: int = field(default=128, metadata={"help": "model width d_model"})
    depth: int = field(default=3, metadata={"help": "number of transformer blocks"})
    heads: int = field(default=1, metadata={"help": "attention heads (width must divide evenly)"})
    ff: FeedForwardKind = field(
        default="swiglu",
        metadata={"help": "feed-forward variant (Shazeer 2020); GLU variants use 2/3 hidden size"},
    )
    activation: Literal["relu", "gelu", "silu"] = field(
        default="gelu", metadata={"help": "activation of the plain mlp feed-forward"}
    )
    ff_mult: float = field(
        default=4.0, metadata={"help": "mlp hidden size = ff_mult * width (GLU: 2/3 of it)"}
    )
    attention: AttentionKind = field(
        default="dense", metadata={"help": "dense causal, banded (sliding window) or dilated"}
    )
    window: int = field(
        default=256, metadata={"help": "banded: each token sees itself and window-1 predecessors"}
    )
    segment_lengths: tuple[int, ...] = field(
        default=_DEFAULT_SEGMENTS, metadata={"help": "dilated: segment lengths w_i"}
    )
    dilation_rates: tuple[int, ...] = field(
        default=_DEFAULT_RATES,
        metadata={"help": "dilated: dilation rates r_i (one per segment length, one must be 1)"},
    )
    positions: PositionKind = field(
        default="none", metadata={"help": "none, learned absolute, or rotary (relative)"}
    )
    max_len: int = field(default=1024, metadata={"help": "learned positions: table size"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on embeddings and residuals"})
    attn_dropout: float = field(
        default=0.0,
        metadata={
            "help": "dropout on attention probabilities in training (GPT-2's attn_pdrop; dense only)"
        },
    )
    norm: NormKind = field(default="layernorm", metadata={"help": "layernorm or rmsnorm"})
    bias: bool = field(default=True, metadata={"help": "biases in linear layers and norms"})

    def __post_init__(self) -> None:
        # single-field checks only: CLI overrides replace one field at a time, so checks that
        # relate fields (width and heads, the schedule's two tuples) run in ``check()`` at build
        if self.width <= 0 or self.depth <= 0 or self.heads <= 0:
            raise ValueError("width, depth and heads must be positive")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if any(w < 1 for w in self.segment_lengths) or any(r < 1 for r in self.dilation_rates):
            raise ValueError("segment lengths and dilation rates must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.attn_dropout < 1.0:
            raise ValueError(f"attn_dropout must be in [0, 1), got {self.attn_dropout}")

    def check(self) -> None:
        """Raise ConfigError when fields contradict each other (called when a model is built)."""
        if self.width % self.heads:
            raise ConfigError(
                f"backbone: width {self.width} is not divisible by heads {self.heads}"
            )
        if self.positions == "rotary" and self.head_dim % 2:
            raise ConfigError(
                f"backbone: rotary positions need an even head dimension, got {self.head_dim}"
            )
        if self.attn_dropout > 0 and self.attention != "dense":
            raise ConfigError(
                f"backbone: attn_dropout needs dense attention ({self.attention} kernels have none)"
            )
        if self.attention != "dilated":
            return
        if len(self.segment_lengths) != len(self.dilation_rates) or not self.segment_lengths:
            raise ConfigError(
                f"backbone: {len(self.segment_lengths)} segment_lengths but "
                f"{len(self.dilation_rates)} dilation_rates (one rate per segment length)"
            )
        if 1 not in self.dilation_rates:
            raise ConfigError(
                "backbone: dilation_rates need a 1 so that every token attends somewhere"
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.width // self.heads

    @property
    def history(self) -> int | None:
        """Past tokens a new token can attend to (None: unbounded); the KV cache keeps this many."""
        if self.attention == "banded":
            return self.window - 1
        if self.attention == "dilated":
            return max(self.segment_lengths) - 1
        return None
