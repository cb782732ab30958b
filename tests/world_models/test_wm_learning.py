"""The whole world-model loop learns: a policy trained only in imagination beats random."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from seqrl.cli import main


@pytest.mark.parametrize("seed", [0])
def test_policy_learned_in_imagination_beats_random_on_cartpole(tmp_path: Path, seed: int) -> None:
    """A short run: the policy, trained only on imagined rollouts, beats a random policy (~22)."""
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "twm",
            "--run-dir",
            str(run),
            "--quiet",
            "--preset",
            "twm-cartpole",
            "--collect.steps=1500",
            "--eval.every=0",
            "--eval.final_episodes=10",
            f"--loop.seed={seed}",
        ]
    )
    assert code == 0
    result = json.loads((run / "result.json").read_text())
    assert np.mean(result["final_returns"]) > 40.0
