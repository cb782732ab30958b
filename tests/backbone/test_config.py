"""TransformerConfig validates its fields and works as a nested field of a seqrl.config tree."""

import argparse
from dataclasses import dataclass, field

import pytest
from seqrl.backbone import Transformer, TransformerConfig, longnet_schedule
from seqrl.config import add_config_arguments, config_from_args, from_dict, to_dict
from seqrl.errors import ConfigError


@dataclass
class _AgentConfig:
    lr: float = 1e-3
    backbone: TransformerConfig = field(default_factory=TransformerConfig)


def test_paper_schedule():
    assert longnet_schedule(2048) == ((2048, 4096, 8192, 16384, 32768), (1, 2, 4, 6, 12))
    assert longnet_schedule(64, 3) == ((64, 128, 256), (1, 2, 4))


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"dropout": 1.0}, {"depth": 0}])
def test_invalid_fields_raise(kwargs):
    with pytest.raises(ValueError):
        TransformerConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 30, "heads": 4},
        {"width": 24, "heads": 8, "positions": "rotary"},  # head dim 3 is odd
        {"attention": "dilated", "segment_lengths": (8, 16), "dilation_rates": (1,)},
        {"attention": "dilated", "segment_lengths": (8, 16), "dilation_rates": (2, 4)},
    ],
)
def test_contradicting_fields_raise_config_error_at_build(kwargs):
    cfg = TransformerConfig(**kwargs)  # overrides come one field at a time, so this is allowed
    with pytest.raises(ConfigError):
        Transformer(cfg)


def test_history_is_what_the_cache_keeps():
    assert TransformerConfig(attention="dense").history is None
    assert TransformerConfig(attention="banded", window=60).history == 59
    assert (
        TransformerConfig(
            attention="dilated", segment_lengths=(8, 32), dilation_rates=(1, 2)
        ).history
        == 31
    )


def test_nested_in_a_config_tree_roundtrips_and_overrides_from_the_cli():
    cfg = _AgentConfig()
    data = to_dict(cfg)
    assert data["backbone"]["segment_lengths"] == list(cfg.backbone.segment_lengths)
    assert from_dict(_AgentConfig, data) == cfg

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, _AgentConfig, {"default": _AgentConfig}, "default")
    args = parser.parse_args(
        [
            "--backbone.attention=dilated",
            "--backbone.ff",
            "geglu",
            "--backbone.segment_lengths=16,32",
            "--backbone.dilation_rates=1,2",
        ]
    )
    got = config_from_args(_AgentConfig, args, {"default": _AgentConfig}, "default")
    assert got.backbone.attention == "dilated" and got.backbone.ff == "geglu"
    assert got.backbone.segment_lengths == (16, 32) and got.backbone.dilation_rates == (1, 2)
