"""The one checkpoint format of seqrl.

A checkpoint is a single file written with ``torch.save`` and read with ``weights_only=True``:
tensors, numbers, strings and containers only (never a pickled object). It holds

- ``format`` / ``version``: identifies the file as seqrl's;
- ``algo``: which workflow wrote it (``dt``, ``twm``, ...), checked on load;
- ``config``: the resolved config as a JSON string (rebuilt with :func:`seqrl.config.from_dict`);
- ``step``: training steps done;
- ``state``: named state dicts (``model``, ``optimizer``, ``scheduler``, ...);
- ``rng``: torch, numpy and Python RNG states so that a resumed run continues identically;
- ``extra``: small JSON-ready data (e.g. observation normalisation statistics).

Files are written to a temporary name and renamed, so a kill at any moment keeps the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from seqrl.config import to_dict
from seqrl.errors import CheckpointError
from seqrl.io import atomic_path

FORMAT = "seqrl-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the fields)."""

    algo: str
    config: dict[str, Any]
    step: int
    state: dict[str, Any]
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def capture_rng(generators: dict[str, np.random.Generator] | None = None) -> dict[str, Any]:
    """The current torch / numpy / Python RNG states, plus those of the named numpy generators."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": json.dumps(random.getstate()),
        "numpy_global": json.dumps(_jsonable(np.random.get_state(legacy=False))),
        "generators": {k: json.dumps(g.bit_generator.state) for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(
    state: dict[str, Any], generators: dict[str, np.random.Generator] | None = None
) -> None:
    """Restore what :func:`capture_rng` captured (and the named generators, in place)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = json.loads(state["python"])
        random.setstate((version, tuple(internal), gauss))
    if "numpy_global" in state:
        np.random.set_state(json.loads(state["numpy_global"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, gen in (generators or {}).items():
        if name not in state.get("generators", {}):
            raise CheckpointError(f"checkpoint has no RNG state for '{name}'")
        gen.bit_generator.state = json.loads(state["generators"][name])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def save_checkpoint(
    path: str | Path,
    *,
    algo: str,
    config: Any,
    step: int,
    state: dict[str, Any],
    rng: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically and return its path.

    Args:
        path: target file (conventionally ``<run>/checkpoints/last.pt``).
        algo: the workflow name, checked by :func:`load_checkpoint`.
        config: a config dataclass (or already a plain dict).
        step: training steps done.
        state: named state dicts, e.g. ``{"model": model.state_dict(), "optimizer": ...}``.
        rng: from :func:`capture_rng`; omitted for inference-only checkpoints.
        extra: small JSON-ready data.
    """
    cfg = config if isinstance(config, dict) else to_dict(config)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "algo": algo,
        "config": json.dumps(cfg),
        "step": int(step),
        "state": state,
        "rng": rng or {},
        "extra": json.dumps(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(
    path: str | Path, algo: str | None = None, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``); CheckpointError names the file.

    Args:
        path: a checkpoint file, or a run directory (its ``checkpoints/last.pt`` is used).
        algo: when given, the checkpoint must have been written by this workflow.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable seqrl checkpoint ({first[:120]})") from None
    except Exception as exc:  # the unpickler refuses anything but tensors and containers
        raise CheckpointError(f"{path}: not a seqrl checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seqrl checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload.get('version')} is not supported"
        )
    if algo is not None and payload["algo"] != algo:
        raise CheckpointError(f"{path}: checkpoint of '{payload['algo']}', expected '{algo}'")
    return Checkpoint(
        algo=payload["algo"],
        config=json.loads(payload["config"]),
        step=int(payload["step"]),
        state=payload["state"],
        rng=payload.get("rng", {}),
        extra=json.loads(payload.get("extra", "{}")),
        path=path,
    )


def load_state(
    module: torch.nn.Module, state: dict[str, Any], *, what: str, path: Path | None = None
) -> None:
    """``module.load_state_dict(state)`` with a one-line CheckpointError on a mismatch."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        where = f"{path}: " if path else ""
        raise CheckpointError(
            f"{where}{what} does not match the architecture ({detail[:160]})"
        ) from None
