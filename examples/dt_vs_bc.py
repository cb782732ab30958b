"""Decision Transformer against behaviour cloning on the demo's mixed-quality HalfCheetah data.

Three arms, with the same data, width, depth, number of updates and seeds:

- ``DT``: seqrl's ``dt`` preset (SwiGLU, banded attention, KV-cached evaluation);
- ``DT (paper blocks)``: the same with the paper's ReLU MLP and dense attention (window evaluation);
- ``BC``: the ``dt`` model with the return-to-go input zeroed (``--model.conditioning none``).

The DTs are evaluated at several target returns, so the table also shows return conditioning. Writes the table into the "quality"
section of ``docs/dt.md``::

    python examples/dt_vs_bc.py --updates 1500 --seeds 0 1 2 --episodes 5

The model is the demo's (the ``dt`` preset at width 64, 2 blocks, batch 32): about 2 minutes per
run on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from seqrl.agents.demo import DemoConfig, build_dataset
from seqrl.agents.train_dt import PRESETS, EvalConfig, train_dt
from seqrl.run import RunDir
from seqrl.trainer import LoopConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "dt.md"


ARMS = {
    "DT": ("dt", "return"),
    "DT (paper blocks)": ("dt-paper-gym", "return"),
    "BC": ("dt", "none"),
}


def run_one(dataset, arm: str, seed: int, targets, args) -> list:
    """Train one model of ``arm`` and evaluate it at ``targets``; returns the TargetResults."""
    preset, conditioning = ARMS[arm]
    base = PRESETS[preset]()
    cfg = replace(
        base,
        dataset=str(dataset.metadata.location),
        env=args.env,
        model=replace(
            base.model,
            conditioning=conditioning,
            backbone=replace(base.model.backbone, width=args.width, depth=args.depth),
            timestep_init=args.timestep_init or base.model.timestep_init,
        ),
        optim=replace(base.optim, batch_size=args.batch_size, warmup_steps=args.updates // 10),
        eval=EvalConfig(
            targets=targets, episodes=args.episodes, mode=base.eval.mode, seed=10_000 + seed
        ),
        loop=LoopConfig(
            steps=args.updates,
            log_every=100,
            eval_every=0,
            checkpoint_every=args.updates,
            seed=seed,
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(name=f"{preset}-{conditioning}-{seed}", root=tmp, config=cfg)
        _, results = train_dt(cfg, run, quiet=True, dataset=dataset)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--width", type=int, default=64, help="as the demo (the dt preset: 128)")
    parser.add_argument("--depth", type=int, default=2, help="as the demo (the dt preset: 3)")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="as the demo (the dt preset: 64)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--cache", default="~/.cache/seqrl/demo")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument(
        "--timestep-init",
        choices=["torch", "gpt2", "zeros"],
        default=None,
        help="override every arm's timestep embedding init (default: each preset's)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; do not update docs/dt.md"
    )
    args = parser.parse_args()

    start = time.perf_counter()
    dataset = build_dataset(replace(DemoConfig(), env=args.env, cache=args.cache))
    returns = dataset.episode_returns
    targets = (
        round(float(np.max(returns)), -1),
        round(float(np.median(returns)), -1),
        round(float(np.min(returns)), -1),
    )
    rows = {}
    for seed in args.seeds:
        for arm in args.arms:
            results = run_one(dataset, arm, seed, targets, args)
            for r in results:
                key = (arm, r.target) if arm != "BC" else (arm, 0.0)  # BC ignores the target
                rows.setdefault(key, []).append((r.mean, float(np.mean(r.normalized))))
            line = {"seed": seed, "arm": arm, "returns": {f"{r.target:g}": r.mean for r in results}}
            print(json.dumps(line), flush=True)
    elapsed = time.perf_counter() - start

    levels = dataset.metadata.extra.get("levels", [])
    lines = [
        f"Command: `python examples/dt_vs_bc.py --updates {args.updates} --seeds {' '.join(map(str, args.seeds))} --episodes {args.episodes}"
        + (f" --timestep-init {args.timestep_init}" if args.timestep_init else "")
        + "` "
        f"({len(args.seeds)} seeds, {args.episodes} episodes per target and seed, {args.updates} updates of the `dt` preset "
        f"at width {args.width}, depth {args.depth}, batch {args.batch_size}, "
        f"{elapsed / 60:.0f} min on {os.cpu_count()} CPU cores).",
        "",
        f"Data: {len(dataset)} episodes, {dataset.num_steps} steps of {args.env}, behaviour returns "
        + ", ".join(
            f"{lv}: {np.mean([r for r, lvl in zip(returns, levels, strict=True) if lvl == lv]):.0f}"
            for lv in dict.fromkeys(levels)
        )
        + ".",
        "",
        "| model | target | return (mean over seeds) | per seed | D4RL score |",
        "|---|---|---|---|---|",
    ]
    order = {arm: i for i, arm in enumerate(ARMS)}
    for (model, target), values in sorted(
        rows.items(), key=lambda kv: (order[kv[0][0]], -kv[0][1])
    ):
        rets = [v[0] for v in values]
        norm = float(np.mean([v[1] for v in values]))
        label = f"{target:g}" if model != "BC" else "(none: no return input)"
        lines.append(
            f"| {model} | {label} | {np.mean(rets):.0f} +- {np.std(rets):.0f} | {', '.join(f'{r:.0f}' for r in rets)} | {norm:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        text = DOC.read_text()
        begin, end = "<!-- BEGIN quality -->", "<!-- END quality -->"
        block = f"{begin}\n{table}\n{end}"
        text = (
            re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
            if begin in text
            else text + "\n" + block + "\n"
        )
        DOC.write_text(text)


if __name__ == "__main__":
    main()
