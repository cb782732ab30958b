"""Typed configs: overrides, presets, strict JSON, CLI errors."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
from seqrl.config import (
    add_config_arguments,
    apply_overrides,
    config_from_args,
    from_dict,
    load_json,
    save_json,
    to_dict,
)
from seqrl.errors import ConfigError


@dataclass
class Model:
    depth: int = 3
    width: float = 1.5
    ff: Literal["mlp", "swiglu"] = "swiglu"
    windows: tuple[int, ...] = (64, 128)
    window: int | None = None
    bias: bool = False

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError("depth must be >= 1")


@dataclass
class Workflow:
    name: str = "run"
    model: Model = field(default_factory=Model)


PRESETS = {
    "small": lambda: Workflow(model=Model(depth=1)),
    "big": lambda: Workflow(model=Model(depth=12)),
}


def parse(argv: list[str], presets=PRESETS, default="small") -> Workflow:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_arguments(parser, Workflow, presets, default)
    return config_from_args(Workflow, parser.parse_args(argv), presets, default)


def test_override_forms() -> None:
    assert parse(["--model.depth", "4"]).model.depth == 4
    assert parse(["--model.depth=5"]).model.depth == 5
    cfg = parse(
        [
            "--model.ff",
            "mlp",
            "--model.windows",
            "8",
            "16",
            "32",
            "--model.window",
            "7",
            "--model.bias",
        ]
    )
    assert (cfg.model.ff, cfg.model.windows, cfg.model.window, cfg.model.bias) == (
        "mlp",
        (8, 16, 32),
        7,
        True,
    )
    assert parse(["--model.windows=4,8"]).model.windows == (4, 8)
    assert parse(["--model.bias", "false"]).model.bias is False


def test_presets_then_overrides() -> None:
    assert parse([]).model.depth == 1
    assert parse(["--preset", "big"]).model.depth == 12
    assert parse(["--preset", "big", "--model.depth", "2"]).model.depth == 2


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model.depth", "x"], "model.depth"),
        (["--model.depth", "0"], "depth must be >= 1"),
        (["--model.ff", "relu"], "model.ff"),
        (["--model.bias", "maybe"], "model.bias"),
    ],
)
def test_bad_values_name_the_key(argv: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse(argv)


def test_unknown_key_is_an_error() -> None:
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        parse(["--model.nope", "1"])
    with pytest.raises(ConfigError, match="unknown config key 'model.nope'"):
        apply_overrides(Workflow(), {"model.nope": 1})
    with pytest.raises(ConfigError, match="unknown key 'extra'"):
        from_dict(Workflow, {"extra": 1})


def test_json_round_trip(tmp_path) -> None:
    cfg = parse(["--model.windows", "1", "2", "--name", "x"])
    save_json(cfg, tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["model"]["windows"] == [1, 2]
    assert load_json(Workflow, tmp_path / "c.json") == cfg
    assert from_dict(Workflow, to_dict(cfg)) == cfg


def test_bad_json_names_the_file(tmp_path) -> None:
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ConfigError, match="c.json: not valid JSON"):
        load_json(Workflow, tmp_path / "c.json")
    (tmp_path / "d.json").write_text('{"model": {"depth": "deep"}}')
    with pytest.raises(ConfigError, match=r"d.json: model.depth: expected an integer"):
        load_json(Workflow, tmp_path / "d.json")
