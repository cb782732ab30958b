"""``seqrl demo``: offline RL end to end on the CPU in a few minutes.

1. Build (once, then cached) a mixed-quality HalfCheetah-v5 dataset by rolling out the SAC
   behaviour policies that seqrl ships (``agents/assets/``, made by
   ``examples/train_behaviour_policies.py``) at several levels of skill and exploration noise,
   through the shared rollout loop.
2. Train a Decision Transformer (the ``dt`` preset scaled down: width 64, 2 blocks, batch 32,
   1500 updates; the paper's configuration costs about 0.3 s per update on 2 CPU cores) on it.
3. Evaluate it at two target returns in one batched, KV-cached rollout and print a table:
   the behaviour returns, the DT return per target and the D4RL-normalized scores.

Return conditioning is visible: the higher target gives the higher return.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from seqrl.config import add_config_arguments, config_from_args
from seqrl.errors import UsageError
from seqrl.run import RunDir

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class DemoConfig:
    """Settings of the demo (defaults: about 5 minutes on 2 CPU cores)."""

    env: str = field(
        default="HalfCheetah-v5", metadata={"help": "MuJoCo env of the shipped policies"}
    )
    levels: tuple[str, ...] = field(
        default=(
            "halfcheetah_sac_60k@0.0",
            "halfcheetah_sac_60k@0.5",
            "halfcheetah_sac_60k@1.0",
            "halfcheetah_sac_8k@0.0",
        ),
        metadata={
            "help": "behaviour levels as ASSET@NOISE (an agents/assets checkpoint or a path)"
        },
    )
    steps_per_level: int = field(default=10_000, metadata={"help": "env steps collected per level"})
    updates: int = field(default=1_500, metadata={"help": "Decision Transformer updates"})
    batch_size: int = field(default=32, metadata={"help": "windows per update"})
    width: int = field(default=64, metadata={"help": "model width (the dt preset: 128)"})
    depth: int = field(default=2, metadata={"help": "transformer blocks (the dt preset: 3)"})
    episodes: int = field(default=5, metadata={"help": "evaluation episodes per target"})
    seed: int = field(default=0, metadata={"help": "seed of collection, training and evaluation"})
    cache: str = field(
        default="~/.cache/seqrl/demo", metadata={"help": "where the demo dataset is kept"}
    )

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("levels: at least one behaviour level is needed")
        if (
            min(
                self.steps_per_level,
                self.updates,
                self.batch_size,
                self.episodes,
                self.width,
                self.depth,
            )
            < 1
        ):
            raise ValueError(
                "steps_per_level, updates, batch_size, episodes, width and depth must be >= 1"
            )


def policy_path(level: str) -> tuple[str, float]:
    """``ASSET@NOISE`` -> (checkpoint path, noise)."""
    name, _, noise = level.partition("@")
    path = ASSETS / f"{name}.pt" if (ASSETS / f"{name}.pt").exists() else Path(name)
    if not path.exists():
        raise UsageError(f"--levels: no behaviour policy '{name}' (in {ASSETS} or as a path)")
    try:
        return str(path), float(noise or 0.0)
    except ValueError:
        raise UsageError(f"--levels: noise '{noise}' of '{level}' is not a number") from None


def build_dataset(cfg: DemoConfig, quiet: bool = False) -> Any:
    """The mixed dataset: every level's episodes, built once and cached under ``cfg.cache``."""
    from seqrl.data import TrajectoryDataset, load_dataset
    from seqrl.data.collect import collect

    key = f"{cfg.env}-{'-'.join(cfg.levels)}-{cfg.steps_per_level}-{cfg.seed}".replace(
        "@", "_"
    ).replace("/", "_")
    folder = Path(cfg.cache).expanduser() / key
    if folder.exists():
        return load_dataset(folder)
    episodes, levels = [], []
    for i, level in enumerate(cfg.levels):
        path, noise = policy_path(level)
        if not quiet:
            print(f"collecting {cfg.steps_per_level} steps with {Path(path).stem} (noise {noise})")
        part = collect(
            cfg.env, path, cfg.steps_per_level, noise=noise, num_envs=5, seed=cfg.seed + 100 * i
        )
        episodes += list(part)
        levels += [level] * len(part)
    metadata = replace(part.metadata, name="seqrl-demo", extra={"levels": levels})
    dataset = TrajectoryDataset.from_trajectories(episodes, metadata)
    dataset.save(folder)
    return load_dataset(folder)


def run_demo(cfg: DemoConfig, run: RunDir, quiet: bool = False) -> dict[str, Any]:
    """Build the data, train the DT, evaluate it; returns the numbers the table shows."""
    from seqrl.agents.train_dt import PRESETS, EvalConfig, LoopConfig, train_dt
    from seqrl.envs import ref_scores_for

    dataset = build_dataset(cfg, quiet)
    returns = dataset.episode_returns
    targets = (round(float(np.max(returns)), -1), round(float(np.median(returns)), -1))
    base = PRESETS["dt"]()
    backbone = replace(base.model.backbone, width=cfg.width, depth=cfg.depth)
    dt_cfg = replace(
        base,
        dataset=str(dataset.metadata.location or run.path),
        env=cfg.env,
        model=replace(base.model, backbone=backbone),
        optim=replace(
            base.optim,
            batch_size=cfg.batch_size,
            warmup_steps=min(base.optim.warmup_steps, cfg.updates // 10),
        ),
        eval=EvalConfig(
            targets=targets, episodes=cfg.episodes, mode="cached", seed=cfg.seed + 10_000
        ),
        loop=LoopConfig(
            steps=cfg.updates,
            log_every=50,
            eval_every=0,
            checkpoint_every=cfg.updates,
            seed=cfg.seed,
        ),
    )
    _, results = train_dt(dt_cfg, run, quiet=quiet, dataset=dataset)
    ref = ref_scores_for(cfg.env)
    levels = dataset.metadata.extra.get("levels", [])
    behaviour = []
    for level in dict.fromkeys(levels):
        mine = np.array([r for r, lv in zip(returns, levels, strict=True) if lv == level])
        behaviour.append(
            (
                level,
                len(mine),
                float(mine.mean()),
                None if ref is None else float(ref.normalize(mine).mean()),
            )
        )
    return {"behaviour": behaviour, "results": results, "ref": ref}


def format_table(summary: dict[str, Any], cfg: DemoConfig) -> str:
    """The demo's printed result."""
    lines = [
        f"behaviour data ({cfg.env}):",
        f"  {'policy@noise':<28}{'episodes':>9}{'return':>10}{'D4RL':>8}",
    ]
    for level, n, mean, norm in summary["behaviour"]:
        lines.append(f"  {level:<28}{n:>9}{mean:>10.1f}{'' if norm is None else f'{norm:>8.1f}'}")
    lines.append(
        f"Decision Transformer ({cfg.updates} updates, KV-cached evaluation, {cfg.episodes} episodes per target):"
    )
    lines.append(f"  {'target':<28}{'':>9}{'return':>10}{'D4RL':>8}")
    for r in summary["results"]:
        norm = "" if r.normalized is None else f"{float(np.mean(r.normalized)):>8.1f}"
        lines.append(f"  {r.target:<28g}{'':>9}{r.mean:>10.1f}{norm}")
    return "\n".join(lines)


def _handle(args: argparse.Namespace) -> int:
    cfg = config_from_args(DemoConfig, args)
    run = RunDir.create(
        name=time.strftime("demo-%Y%m%d-%H%M%S"), root=args.runs, path=args.run_dir, config=cfg
    )
    start = time.perf_counter()
    summary = run_demo(cfg, run, quiet=args.quiet)
    print(format_table(summary, cfg))
    high, low = summary["results"][0], summary["results"][-1]
    verdict = "yes" if high.mean > low.mean else "no"
    print(
        f"return conditioning: the higher target gave the higher return: {verdict} ({high.mean:.0f} vs {low.mean:.0f})"
    )
    print(f"done in {time.perf_counter() - start:.0f} s; logs and checkpoint: {run.path}")
    print(f"open them with: tensorboard --logdir {run.path.parent}")
    return 0


def register(registry: Any) -> None:
    """Add ``seqrl demo``."""
    parser = registry.command(
        "demo",
        help="offline RL end to end on the CPU: data, Decision Transformer, evaluation",
        description=__doc__,
    )
    parser.add_argument("--runs", default="runs", help="parent folder of run directories")
    parser.add_argument("--run-dir", default=None, help="explicit run directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(parser, DemoConfig)
    parser.set_defaults(handler=_handle)
