"""The checkpoint format: round trip, safety, atomic save, clear errors."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import seqrl.io
import torch
from seqrl.checkpoint import capture_rng, load_checkpoint, load_state, restore_rng, save_checkpoint
from seqrl.errors import CheckpointError


@dataclass
class Cfg:
    width: int = 4


def _model(width: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(3, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)
    )


def test_round_trip(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    gen = np.random.default_rng(3)
    path = save_checkpoint(
        tmp_path / "ckpt.pt",
        algo="toy",
        config=Cfg(),
        step=7,
        state={"model": model.state_dict(), "optimizer": opt.state_dict()},
        rng=capture_rng({"sampler": gen}),
        extra={"mean": [1.0, 2.0]},
    )
    expected = gen.random(3)
    ckpt = load_checkpoint(path, algo="toy")
    assert (ckpt.algo, ckpt.step, ckpt.config, ckpt.extra) == (
        "toy",
        7,
        {"width": 4},
        {"mean": [1.0, 2.0]},
    )
    clone = _model()
    load_state(clone, ckpt.state["model"], what="model")
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)
    opt2 = torch.optim.AdamW(clone.parameters(), lr=1e-3)
    opt2.load_state_dict(ckpt.state["optimizer"])
    gen2 = np.random.default_rng(99)
    restore_rng(ckpt.rng, {"sampler": gen2})
    np.testing.assert_array_equal(gen2.random(3), expected)


def test_run_directory_resolves_to_last(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", algo="toy", config={}, step=1, state={})
    assert load_checkpoint(tmp_path).step == 1


def test_wrong_algo_and_architecture(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "c.pt", algo="dt", config={}, step=0, state={"model": _model(4).state_dict()}
    )
    with pytest.raises(CheckpointError, match="checkpoint of 'dt', expected 'twm'"):
        load_checkpoint(path, algo="twm")
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        load_state(_model(8), load_checkpoint(path).state["model"], what="model weights", path=path)


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04truncated"])
def test_unreadable_files(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt: not a"):
        load_checkpoint(tmp_path / "bad.pt")


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "c.pt", algo="toy", config={}, step=0, state={"model": _model().state_dict()}
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="c.pt: not a readable seqrl checkpoint"):
        load_checkpoint(path)


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    torch.save({"model": _model().state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="no 'seqrl-checkpoint' marker"):
        load_checkpoint(tmp_path / "plain.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_crash_between_write_and_rename_keeps_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "last.pt", algo="toy", config={}, step=1, state={})

    def crash(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(seqrl.io.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(path, algo="toy", config={}, step=2, state={"x": torch.zeros(10)})
    monkeypatch.undo()
    assert load_checkpoint(path).step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind
