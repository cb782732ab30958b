"""Probe: how far below d3rlpy's cost can float32 DT training and ``window`` acting go on this CPU?

At ``dt-paper-gym``, two measurements are counted with ``torch.utils.flop_counter.FlopCounterMode``
and timed:

- ``window``: one ``DTAgent.act`` + ``observe`` for ``--envs`` envs with full contexts (eager), as
  ``benchmarks/dt.py`` times it;
- ``train``: one update (sample a batch of 64 windows, forward, backward, AdamW) on a synthetic
  Hopper-sized dataset, as ``benchmarks/dt.py`` times it.

The counter sees the linear layers' products (and their gradients), not the CPU's attention
kernel, for which it has no formula, so each count is a lower bound. The core's float32 rate is
timed on the largest product of each part (the feed-forward's ``F.linear`` over all its tokens)
and on a 1024^3 product (MKL's peak). The floor of a part is its products at the better of those
rates; the issue's targets need an ``act`` within ``envs x --d3rlpy-ms / 5`` (5x lower cost per
env step) and an update within ``1 / (2 x --d3rlpy-updates)`` (2x the updates per second), with
d3rlpy's figures from ``benchmarks/dt.py``'s table. A diagnostic, not a peer benchmark: it
prints; docs/benchmarks.md quotes it::

    OMP_NUM_THREADS=1 python benchmarks/probes/dt_float32_floor.py --d3rlpy-ms 2.010 --d3rlpy-updates 3.70
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from seqrl.agents.dt import DTAgent, build_model
from seqrl.agents.train_dt import PRESETS, make_optimizer, make_scheduler
from seqrl.data import DatasetMetadata, TrajectoryDataset, WindowSampler
from seqrl.training import update
from seqrl.types import Trajectory
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def median_ms(fn: Callable[[], object], repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner * 1e3)
    return statistics.median(times)


def counted(fn: Callable[[], object]) -> tuple[float, str]:
    """FLOPs of the products one call of ``fn`` runs, and their split by op (MFLOP)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    by_op = counter.get_flop_counts()["Global"]
    split = ", ".join(f"{op} {n / 1e6:.1f}" for op, n in by_op.items())
    return float(counter.get_total_flops()), split


def linear_rate(tokens: int, width: int, repeats: int) -> float:
    """GFLOP/s of the feed-forward's first product over ``tokens`` tokens (tokens x width by
    width x 4 width)."""
    x, w = torch.randn(tokens, width), torch.randn(4 * width, width)
    ms = median_ms(lambda: F.linear(x, w), repeats, max(5, 100_000 // tokens))
    return 2 * tokens * width * 4 * width / ms / 1e6


def report(name: str, flops: float, split: str, ms: float, rate: float, budget_ms: float) -> None:
    """Print one part's count, time, floor at ``rate`` and the rate its target needs."""
    print(f"{name}: products {flops / 1e6:.1f} MFLOP ({split})")
    print(f"  measured {ms:.2f} ms = {flops / ms / 1e6:.1f} GFLOP/s of products")
    print(f"  floor at {rate:.1f} GFLOP/s: {flops / rate / 1e6:.2f} ms of products alone")
    print(
        f"  target needs {budget_ms:.2f} ms: {flops / budget_ms / 1e6:.1f} GFLOP/s of products alone"
    )


def window_part(model: nn.Module, cfg, args: argparse.Namespace) -> tuple[float, str, float]:
    """(FLOPs, split, ms) of one full-context ``window`` act for ``args.envs`` envs."""
    agent = DTAgent(model, [3600.0], mode="window")
    agent.reset(args.envs)
    rng = np.random.default_rng(0)
    rewards = np.ones(args.envs, np.float32)
    dones = np.zeros(args.envs, bool)
    for _ in range(cfg.model.context):  # fill every context: the steps benchmarks/dt.py times
        agent.act(rng.standard_normal((args.envs, 11), dtype=np.float32))
        agent.observe(rewards, dones)
    obs = rng.standard_normal((args.envs, 11), dtype=np.float32)

    def act() -> None:
        agent.act(obs)
        agent.observe(rewards, dones)

    flops, split = counted(act)
    return flops, split, median_ms(act, args.repeats, 20)


def train_part(model: nn.Module, cfg, args: argparse.Namespace) -> tuple[float, str, float]:
    """(FLOPs, split, ms) of one training update (sample, forward, backward, AdamW)."""
    rng = np.random.default_rng(0)
    episodes = [
        Trajectory(
            observations=rng.normal(size=(1000, 11)).astype(np.float32),
            actions=rng.uniform(-1, 1, size=(1000, 3)).astype(np.float32),
            rewards=rng.uniform(0, 6, size=1000).astype(np.float32),
            truncated=True,
        )
        for _ in range(50)
    ]
    dataset = TrajectoryDataset.from_trajectories(episodes, DatasetMetadata(name="synthetic"))
    context = cfg.train_context or cfg.model.context
    sampler = WindowSampler(dataset, context, cfg.model.return_scale, cfg.model.max_timestep)
    optimizer = make_optimizer(model, cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.loop.steps)
    model.train()

    def step() -> None:
        batch = sampler.sample(cfg.optim.batch_size, rng)
        update(model.loss, batch, optimizer, clip_norm=cfg.optim.clip_norm, scheduler=scheduler)

    flops, split = counted(step)
    return flops, split, median_ms(step, args.repeats, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("window", "train", "both"), default="both")
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--d3rlpy-ms", type=float, default=2.010, help="d3rlpy's policy ms per env step"
    )
    parser.add_argument(
        "--d3rlpy-updates", type=float, default=3.70, help="d3rlpy's training updates per second"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = PRESETS["dt-paper-gym"]()
    obs_space = spaces.Box(-np.inf, np.inf, (11,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    width, context = cfg.model.backbone.width, cfg.model.context
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    peak = 2 * 1024**3 / median_ms(lambda: a @ b, args.repeats, 5) / 1e6
    print(
        f"threads {torch.get_num_threads()}, dt-paper-gym, float32; 1024^3 product: {peak:.1f} GFLOP/s"
    )
    if args.part in ("window", "both"):
        model = build_model(cfg.model, obs_space, act_space)
        flops, split, ms = window_part(model, cfg, args)
        rate = max(peak, linear_rate(args.envs * (3 * context - 1), width, args.repeats))
        report(
            f"window act, {args.envs} envs", flops, split, ms, rate, args.envs * args.d3rlpy_ms / 5
        )
    if args.part in ("train", "both"):
        model = build_model(cfg.model, obs_space, act_space)
        flops, split, ms = train_part(model, cfg, args)
        rate = max(peak, linear_rate(cfg.optim.batch_size * 3 * context, width, args.repeats))
        report("training update", flops, split, ms, rate, 1e3 / (2 * args.d3rlpy_updates))


if __name__ == "__main__":
    main()
