"""The shared transformer backbone: configs, blocks, feed-forward variants, attention, encoders.

Consumers hold a :class:`TransformerConfig` in their config and build :class:`Transformer` from it;
see ``docs/backbone.md``.
"""

from seqrl.backbone.attention import CausalSelfAttention, Step, banded_attention
from seqrl.backbone.cache import KVCache, StaticKVCache
from seqrl.backbone.config import (
    AttentionKind,
    FeedForwardKind,
    NormKind,
    PositionKind,
    TransformerConfig,
    longnet_schedule,
)
from seqrl.backbone.dilated import dilated_attention, dilated_reference
from seqrl.backbone.dropout import Dropout
from seqrl.backbone.encoders import MLPEncoder, NatureCNN, ResNetEncoder
from seqrl.backbone.feedforward import FeedForward, hidden_size
from seqrl.backbone.positions import Rotary
from seqrl.backbone.transformer import Block, Transformer

__all__ = [
    "AttentionKind",
    "Block",
    "CausalSelfAttention",
    "Dropout",
    "FeedForward",
    "FeedForwardKind",
    "KVCache",
    "MLPEncoder",
    "NatureCNN",
    "NormKind",
    "PositionKind",
    "ResNetEncoder",
    "Rotary",
    "StaticKVCache",
    "Step",
    "Transformer",
    "TransformerConfig",
    "banded_attention",
    "dilated_attention",
    "dilated_reference",
    "hidden_size",
    "longnet_schedule",
]
