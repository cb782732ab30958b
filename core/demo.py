"""``seqrl demo``: the built-in end-to-end job on a default that runs on the CPU in minutes.

Until the Decision Transformer lands this is a smoke job: a random agent on CartPole-v1, logged
into a run directory like every training run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np
from seqrl.run import Logger, RunDir


@dataclass
class DemoConfig:
    """Settings of the demo job."""

    env: str = field(default="CartPole-v1", metadata={"help": "gymnasium environment id"})
    episodes: int = field(default=10, metadata={"help": "evaluation episodes"})
    seed: int = field(default=0, metadata={"help": "random seed"})


def run_demo(cfg: DemoConfig, run: RunDir, quiet: bool = False) -> dict[str, float]:
    """Roll out a random policy for ``cfg.episodes`` episodes and log their returns."""
    import gymnasium as gym

    env = gym.make(cfg.env)
    env.action_space.seed(cfg.seed)
    returns = []
    with Logger(run) as logger:
        for episode in range(cfg.episodes):
            _, _ = env.reset(seed=cfg.seed + episode)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
            logger.log(episode, {"eval/return": total})
    env.close()
    return {
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "episodes": len(returns),
    }


def _handle(args: argparse.Namespace) -> int:
    from seqrl.config import config_from_args

    cfg = config_from_args(DemoConfig, args)
    run = (
        RunDir.create(name="demo", root=args.runs, path=args.run_dir, config=cfg)
        if args.run_dir
        else _fresh(args, cfg)
    )
    result = run_demo(cfg, run, quiet=args.quiet)
    print(
        f"random agent on {cfg.env}: mean return {result['mean']:.1f} +- {result['std']:.1f} over {result['episodes']} episodes"
    )
    print(f"logs: {run.path}  (tensorboard --logdir {run.path.parent})")
    return 0


def _fresh(args: argparse.Namespace, cfg: DemoConfig) -> RunDir:
    import time

    return RunDir.create(name=time.strftime("demo-%Y%m%d-%H%M%S"), root=args.runs, config=cfg)


def register(registry) -> None:  # noqa: ANN001 - seqrl.cli.Registry
    """Add ``seqrl demo``."""
    from seqrl.config import add_config_arguments

    parser = registry.command("demo", help="run the built-in end-to-end demo on the CPU")
    parser.add_argument("--runs", default="runs", help="parent folder of run directories")
    parser.add_argument("--run-dir", default=None, help="explicit run directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(parser, DemoConfig)
    parser.set_defaults(handler=_handle)
