"""Probe: how far below d3rlpy's cost can a float32 ``window`` step go on this CPU?

At ``dt-paper-gym`` with 10 envs, one ``DTAgent.act`` in ``window`` mode (full contexts, eager)
is counted with ``torch.utils.flop_counter.FlopCounterMode`` (the linear layers' products: the
counter has no formula for the CPU's attention kernel, so the count is a lower bound) and timed. The counted products are then timed alone as the largest of
them, ``F.linear`` of the 10 x 59 tokens into the feed-forward (590 x 128 by 128 x 512), and as a
large square product (the core's float32 peak through the same MKL). The floor of an ``act`` is
its products at those rates; the issue's 5x target needs an ``act`` within 10 x
``--d3rlpy-ms`` / 5 (d3rlpy's policy cost per env step, from ``benchmarks/dt.py``'s table).
A diagnostic, not a peer benchmark: it prints; docs/benchmarks.md quotes it::

    OMP_NUM_THREADS=1 python benchmarks/probes/dt_window_floor.py --d3rlpy-ms 2.010
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
from seqrl.agents.train_dt import PRESETS
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--d3rlpy-ms", type=float, default=2.010, help="d3rlpy's policy ms per env step"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = PRESETS["dt-paper-gym"]()
    obs_space = spaces.Box(-np.inf, np.inf, (11,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    model = build_model(cfg.model, obs_space, act_space)
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

    with FlopCounterMode(display=False) as counter:
        act()
    flops = counter.get_total_flops()
    by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    act_ms = median_ms(act, args.repeats, 20)

    tokens = args.envs * (3 * cfg.model.context - 1)
    width = cfg.model.backbone.width
    x = torch.randn(tokens, width)
    w = torch.randn(4 * width, width)
    ff_ms = median_ms(lambda: F.linear(x, w), args.repeats, 200)
    ff_rate = 2 * tokens * width * 4 * width / ff_ms / 1e6
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    peak_ms = median_ms(lambda: a @ b, args.repeats, 5)
    peak_rate = 2 * 1024**3 / peak_ms / 1e6

    budget_ms = args.envs * args.d3rlpy_ms / 5
    print(f"threads {torch.get_num_threads()}, {args.envs} envs, dt-paper-gym, float32")
    print(
        f"products per act: {flops / 1e6:.1f} MFLOP ({', '.join(f'{k} {v / 1e6:.1f}' for k, v in by_op.items())})"
    )
    print(
        f"act (eager window, full contexts): {act_ms:.2f} ms = {flops / act_ms / 1e6:.1f} GFLOP/s"
    )
    print(
        f"feed-forward product alone ({tokens} x {width} by {width} x {4 * width}): {ff_rate:.1f} GFLOP/s"
    )
    print(f"1024^3 product: {peak_rate:.1f} GFLOP/s")
    print(
        f"floor of an act: {flops / ff_rate / 1e6:.2f} ms at the feed-forward rate, "
        f"{flops / peak_rate / 1e6:.2f} ms at the 1024^3 rate"
    )
    print(
        f"5x d3rlpy ({args.d3rlpy_ms} ms per env step) needs an act within {budget_ms:.2f} ms: "
        f"{flops / budget_ms / 1e6:.1f} GFLOP/s of products alone"
    )


if __name__ == "__main__":
    main()
