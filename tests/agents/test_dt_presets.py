"""The DT presets equal the cited table in docs/dt.md, value by value."""

from __future__ import annotations

from pathlib import Path

import pytest
from preset_tables import check_preset
from seqrl.agents.train_dt import PRESETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "dt.md"


def _table() -> tuple[list[str], list[list[str]]]:
    lines = [ln for ln in DOC.read_text().splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [
        [c.strip() for c in ln.strip("|").split("|")]
        for ln in lines[2:]
        if not ln.startswith("|---")
    ]
    return header, [r for r in rows if "." in r[0] or r[0] in ("frame_stack", "train_context")]


HEADER, ROWS = _table()


def test_table_covers_every_preset() -> None:
    assert set(HEADER[1:-1]) == set(PRESETS)
    assert len(ROWS) >= 25


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_matches_the_cited_table(preset: str) -> None:
    cfg = PRESETS[preset]()
    column = HEADER.index(preset)
    check_preset(cfg, ROWS, column)


def test_minGPT_weight_decay_groups() -> None:
    """dt-paper-atari decays linear and convolution weights only, as minGPT's configure_optimizers."""
    import numpy as np
    import torch
    from gymnasium import spaces
    from seqrl.agents.dt import build_model
    from seqrl.agents.train_dt import make_optimizer

    cfg = PRESETS["dt-paper-atari"]()
    model = build_model(cfg.model, spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(4))
    decayed, plain = make_optimizer(model, cfg.optim).param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    ids = {id(p) for p in decayed["params"]}
    assert id(model.embed_time.weight) not in ids and id(model.embed_norm.weight) not in ids
    assert id(model.head.weight) in ids and id(model.head.bias) not in ids
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(id(c.weight) in ids for c in convs)
    assert len(ids) + len(plain["params"]) == len(list(model.parameters()))
