"""Typed dataclass configs: strict (de)serialisation, dotted overrides and presets.

A workflow's config is a tree of dataclasses (fields may be nested dataclasses, ``Literal``
choices, numbers, strings, bools, optional values and tuples). This module turns such a tree into
``argparse`` options (``--model.depth 4`` or ``--model.depth=4``), applies named presets, and reads
and writes the resolved config as JSON. Unknown keys are always errors.

Field help comes from ``field(metadata={"help": "..."})``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from seqrl.errors import ConfigError

C = TypeVar("C")
Presets = Mapping[str, Callable[[], Any]]
"""Preset name -> function returning a fully built config object."""

_PREFIX = "config:"


@dataclass(frozen=True)
class FieldSpec:
    """One leaf of a config tree: its dotted key, resolved type, default and help text."""

    key: str
    type: Any
    default: Any
    help: str


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=False)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _optional_inner(tp: Any) -> Any | None:
    """``X`` for ``Optional[X]`` / ``X | None``, else None."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0]
    return None


def iter_fields(cls: type, prefix: str = "") -> Iterator[FieldSpec]:
    """Every leaf field of the dataclass tree ``cls``, depth first, with dotted keys."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        key = prefix + f.name
        if _is_dataclass_type(tp):
            yield from iter_fields(tp, key + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        yield FieldSpec(key, tp, default, str(f.metadata.get("help", "")))


def parse_value(tp: Any, raw: Any, key: str) -> Any:
    """Convert ``raw`` (a CLI string or a JSON value) to type ``tp``; ConfigError names ``key``."""
    inner = _optional_inner(tp)
    if inner is not None:
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null")):
            return None
        return parse_value(inner, raw, key)
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if raw == choice or (isinstance(raw, str) and str(choice) == raw):
                return choice
        raise ConfigError(f"{key}: {raw!r} is not one of {', '.join(map(str, choices))}")
    if origin in (tuple, list):
        args = get_args(tp)
        item_type = args[0] if args else str
        if isinstance(raw, str):
            raw = [raw]
        if isinstance(raw, (list, tuple)) and all(isinstance(r, str) for r in raw):
            raw = [part for r in raw for part in r.replace(",", " ").split() if part]
        if not isinstance(raw, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {raw!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(raw) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(raw)}")
            return tuple(parse_value(a, r, key) for a, r in zip(args, raw, strict=True))
        values = [parse_value(item_type, r, key) for r in raw]
        return tuple(values) if origin is tuple else values
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    if tp is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ConfigError(f"{key}: expected an integer, got {raw!r}")
        try:
            return int(float(raw)) if isinstance(raw, str) and "e" in raw.lower() else int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {raw!r}") from None
    if tp is float:
        if isinstance(raw, bool):
            raise ConfigError(f"{key}: expected a number, got {raw!r}")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {raw!r}") from None
    if tp is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{key}: expected a string, got {raw!r}")
        return raw
    if tp is Any:
        return raw
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config tree as plain JSON-ready data (tuples become lists)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    return convert(cfg)


def from_dict(cls: type[C], data: Mapping[str, Any], *, where: str = "config") -> C:
    """Build ``cls`` from nested data, strictly: unknown keys and wrong types raise ConfigError.

    Missing keys take the dataclass defaults.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(names))})"
        )
    kwargs: dict[str, Any] = {}
    for name, raw in data.items():
        tp = hints[name]
        key = f"{where}.{name}" if where != "config" else name
        if _is_dataclass_type(tp):
            kwargs[name] = from_dict(tp, raw, where=key)
        else:
            kwargs[name] = parse_value(tp, raw, key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def replace_key(cfg: C, key: str, raw: Any, *, _full: str | None = None) -> C:
    """A copy of ``cfg`` with the dotted ``key`` set from ``raw`` (parsed to the field's type)."""
    full = _full or key
    head, _, rest = key.partition(".")
    names = {f.name for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    if head not in names:
        raise ConfigError(f"unknown config key '{full}'")
    tp = _hints(type(cfg))[head]
    if rest:
        if not _is_dataclass_type(tp):
            raise ConfigError(f"unknown config key '{full}'")
        value = replace_key(getattr(cfg, head), rest, raw, _full=full)
    else:
        if _is_dataclass_type(tp):
            raise ConfigError(f"config key '{full}' is a group; set one of its fields")
        value = parse_value(tp, raw, full)
    try:
        return dataclasses.replace(cfg, **{head: value})  # type: ignore[type-var]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{full}: {exc}") from None


def apply_overrides(cfg: C, overrides: Mapping[str, Any]) -> C:
    """Apply ``{"model.depth": "4", ...}`` in order; every key must exist."""
    for key, raw in overrides.items():
        cfg = replace_key(cfg, key, raw)
    return cfg


def save_json(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as indented JSON (atomically)."""
    from seqrl.io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(to_dict(cfg), indent=2) + "\n")


def load_json(cls: type[C], path: str | Path) -> C:
    """Read a config written by :func:`save_json`; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# --- argparse integration -------------------------------------------------------------------


def _metavar(tp: Any) -> str:
    inner = _optional_inner(tp)
    if inner is not None:
        return _metavar(inner)
    origin = get_origin(tp)
    if origin is Literal:
        return "{" + ",".join(map(str, get_args(tp))) + "}"
    if origin in (tuple, list):
        args = get_args(tp)
        return _metavar(args[0] if args else str)
    return {int: "INT", float: "FLOAT", str: "STR", bool: "BOOL"}.get(tp, "VALUE")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    presets: Presets | None = None,
    default_preset: str | None = None,
) -> None:
    """Add ``--preset`` (when presets are given) and one ``--a.b`` option per config leaf."""
    defaults: Any = presets[default_preset]() if presets and default_preset else None
    if presets:
        parser.add_argument(
            "--preset",
            choices=sorted(presets),
            default=default_preset,
            help=f"named configuration to start from (default: {default_preset}); "
            f"choices: {', '.join(sorted(presets))}",
        )
    group = parser.add_argument_group(
        "config", "override any config value as --key VALUE or --key=VALUE"
    )
    for spec in iter_fields(cls):
        default = spec.default
        if defaults is not None:
            default = _get_key(defaults, spec.key)
        shown = json.dumps(to_dict(default) if isinstance(default, tuple) else default)
        is_seq = get_origin(_optional_inner(spec.type) or spec.type) in (tuple, list)
        group.add_argument(
            "--" + spec.key,
            dest=_PREFIX + spec.key,
            default=argparse.SUPPRESS,
            metavar=_metavar(spec.type),
            nargs="+" if is_seq else ("?" if spec.type is bool else None),
            const="true" if spec.type is bool else None,
            help=(spec.help + " " if spec.help else "") + f"(default: {shown})",
        )


def _get_key(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def config_from_args(
    cls: type[C],
    args: argparse.Namespace,
    presets: Presets | None = None,
    default_preset: str | None = None,
) -> C:
    """The config chosen on the command line: the preset (or ``cls()``) plus every override."""
    name = getattr(args, "preset", None) or default_preset
    if presets and name:
        if name not in presets:
            raise ConfigError(
                f"--preset: unknown preset '{name}' (choices: {', '.join(sorted(presets))})"
            )
        cfg = presets[name]()
    else:
        cfg = cls()
    overrides = {k[len(_PREFIX) :]: v for k, v in vars(args).items() if k.startswith(_PREFIX)}
    overrides = {
        k: (v[0] if isinstance(v, list) and len(v) == 1 and not _is_seq_key(cls, k) else v)
        for k, v in overrides.items()
    }
    try:
        return apply_overrides(cfg, overrides)
    except ConfigError as exc:
        raise ConfigError(f"--{exc}") from None


def _is_seq_key(cls: type, key: str) -> bool:
    for spec in iter_fields(cls):
        if spec.key == key:
            return get_origin(_optional_inner(spec.type) or spec.type) in (tuple, list)
    return False
