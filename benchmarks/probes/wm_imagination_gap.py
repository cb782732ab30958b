"""Probe: does imagination pay the policy what the real env pays it?

Reads a world-model run's ``metrics.jsonl`` and prints, per block of env steps, the real
training episodes (return per episode, reward per step, the share of steps that end an episode)
beside what the actor-critic saw in imagination over the same steps (reward and continue flag per
imagined step, over all steps and over the steps before any imagined end; runs from before
that metric existed show '-' there), the policy's normalised entropy and the world model's token accuracy. A policy
that exploits its world model shows imagined rewards well above the real ones while the real
return falls. A diagnostic, not a peer benchmark: docs/iris.md (MinAtar section) quotes its
output::

    python benchmarks/probes/wm_imagination_gap.py runs/t7/iris-minatar-seed0 --block 2000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def gap_table(rows: list[dict], block: int) -> list[dict]:
    """Metric rows -> one summary per ``block`` env steps (blocks without data are left out)."""
    blocks: dict[int, dict[str, list[float]]] = {}
    for row in rows:
        b = blocks.setdefault(max(int(row["step"]) - 1, 0) // block, {})
        for key in (
            "train/episode_return",
            "train/episode_length",
            "train/actor_critic/imagined_reward_mean",
            "train/actor_critic/imagined_reward_alive",
            "train/actor_critic/imagined_continue_mean",
            "train/actor_critic/norm_entropy",
            "train/world_model/obs_accuracy",
        ):
            if key in row:
                b.setdefault(key, []).append(float(row[key]))
    table = []
    for index in sorted(blocks):
        b = blocks[index]
        returns = b.get("train/episode_return", [])
        lengths = b.get("train/episode_length", [])
        steps = sum(lengths)
        table.append(
            {
                "steps": f"{index * block}-{(index + 1) * block}",
                "episodes": len(returns),
                "real_return": _mean(returns),
                "real_reward_per_step": sum(returns) / steps if steps else math.nan,
                "real_end_per_step": len(lengths) / steps if steps else math.nan,
                "imagined_reward_per_step": _mean(
                    b.get("train/actor_critic/imagined_reward_mean", [])
                ),
                "imagined_reward_alive": _mean(
                    b.get("train/actor_critic/imagined_reward_alive", [])
                ),
                "imagined_continue": _mean(b.get("train/actor_critic/imagined_continue_mean", [])),
                "entropy": _mean(b.get("train/actor_critic/norm_entropy", [])),
                "token_accuracy": _mean(b.get("train/world_model/obs_accuracy", [])),
            }
        )
    return table


def markdown(table: list[dict]) -> str:
    """The table as markdown, NaN shown as '-'."""
    cols = [
        ("env steps", "steps", "{}"),
        ("episodes", "episodes", "{}"),
        ("real return per episode", "real_return", "{:.2f}"),
        ("real reward per step", "real_reward_per_step", "{:.3f}"),
        ("real episode ends per step", "real_end_per_step", "{:.3f}"),
        ("imagined reward per step", "imagined_reward_per_step", "{:.3f}"),
        ("imagined reward per step before an imagined end", "imagined_reward_alive", "{:.3f}"),
        ("imagined continue", "imagined_continue", "{:.3f}"),
        ("policy entropy", "entropy", "{:.2f}"),
        ("token accuracy", "token_accuracy", "{:.2f}"),
    ]
    lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in table:
        cells = []
        for _, key, fmt in cols:
            value = row[key]
            is_nan = isinstance(value, float) and math.isnan(value)
            cells.append("-" if is_nan else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory, or its metrics.jsonl")
    parser.add_argument("--block", type=int, default=2000, help="env steps per table row")
    args = parser.parse_args()
    path = args.run if args.run.is_file() else args.run / "metrics.jsonl"
    if not path.is_file():
        sys.exit(f"error: {path}: not found (give a run directory or its metrics.jsonl)")
    if args.block <= 0:
        parser.error("--block: must be positive")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print(markdown(gap_table(rows, args.block)))


if __name__ == "__main__":
    main()
