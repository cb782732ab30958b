"""IRIS on the CPU: channels-last images against torch's default layout, and bfloat16 against
float32, side by side.

seqrl hands its convolutional networks' CPU inputs over in channels-last layout
(``seqrl.backbone.encoders.cpu_channels_last``: the IRIS tokenizer's encoder and decoder, the
IRIS actor-critic's CNN). This measures what that buys at the ``iris-minatar`` preset (64x64 RGB
frames), the CPU configuration of the MinAtar checks: seconds per tokenizer, world-model and
actor-critic update (sample + imagine + update) with the layout switched off (the peer: torch's
default contiguous layout, as before) and on, in turns (A B A B) in one process, one torch
thread. Writes the ``cpu-layout`` section of docs/benchmarks.md.

``--part precision``: the tokenizer and world-model updates in float32 (the peer) and with
``--loop.precision bf16`` (the updates autocast to bfloat16; images then stay in torch's default
layout, faster for bfloat16 convolutions), in turns; writes the ``cpu-precision`` section.

    .venv/bin/python benchmarks/cpu_layout.py [--rounds 2] [--iters 3] [--part precision]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Measure both layouts in turns, print the table and write the docs section."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds")
    parser.add_argument("--iters", type=int, default=3, help="timed updates per row and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates per row and round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--part", choices=("layout", "precision"), default="layout", help="what to compare"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    from gymnasium import spaces
    from report import machine_line, write_section
    from seqrl.agents import actor_critic
    from seqrl.world_models import iris, iris_tokenizer
    from seqrl.world_models.train_iris import PRESETS

    # the world-model benchmark's helpers (by path: "world_models" is also seqrl's folder name)
    spec = importlib.util.spec_from_file_location("world_models_bench", HERE / "world_models.py")
    assert spec is not None and spec.loader is not None
    wm = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = wm  # its dataclasses look their module up
    spec.loader.exec_module(wm)
    frames = spaces.Box(0, 255, (64, 64, 3), np.uint8)  # MinAtar as the preset renders it
    wm.observation_space = lambda env_cfg: frames
    cfg = PRESETS["iris-minatar"]()
    print("building the iris-minatar setup and 5,000 synthetic replay steps", flush=True)
    s = wm.build_setup("IRIS", cfg, iris.build_world_model, 5000, torch.device("cpu"), 0)
    s.batch_sizes = {name: train.batch_size for name, train in s.specs.items()}
    rng = np.random.default_rng(0)
    if args.part == "precision":
        precision(args, s, wm, rng, cfg, machine_line, write_section)
        return
    layouts = {"contiguous": lambda x: x, "channels_last": iris_tokenizer.cpu_channels_last}
    rows = ("tokenizer update", "world_model update", "actor-critic update")
    times: dict[tuple[str, str], list[float]] = {(r, lay): [] for r in rows for lay in layouts}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for r in range(args.rounds):
        for layout, fn in layouts.items():
            iris_tokenizer.cpu_channels_last = actor_critic.cpu_channels_last = fn
            got = {
                "tokenizer update": wm.wm_update_times(
                    s, "tokenizer", rng, args.warmup, args.iters, None, pretrain=False
                ),
                "world_model update": wm.wm_update_times(
                    s, "world_model", rng, args.warmup, args.iters, None, pretrain=False
                ),
                "actor-critic update": wm.ac_update_times(
                    s, rng, cfg.actor_critic.batch_size, args.warmup, args.iters, None
                )["total"],
            }
            for row, values in got.items():
                times[row, layout] += values
                print(
                    f"round {r + 1}, {layout}, {row}: median {1e3 * statistics.median(values):,.0f} ms",
                    flush=True,
                )
    iris_tokenizer.cpu_channels_last = actor_critic.cpu_channels_last = layouts["channels_last"]
    ac = f", actor-critic batch {cfg.actor_critic.batch_size}, horizon {cfg.actor_critic.horizon}"
    note = run_note(args, preset_setup(s, cfg, ac), "layouts", load_before, started) + (
        " The layout changes the memory order only: values are the same up to float rounding "
        "(the IRIS tests run with it)."
    )
    publish(
        args,
        "channels-last images against torch's default layout",
        "cpu-layout",
        ("contiguous (torch's default)", "channels-last (seqrl)", "contiguous / channels-last"),
        {row: (times[row, "contiguous"], times[row, "channels_last"]) for row in rows},
        note,
        machine_line,
        write_section,
    )


def precision(
    args: argparse.Namespace,
    s: Any,
    wm: Any,
    rng: Any,
    cfg: Any,
    machine_line: Any,
    write_section: Any,
) -> None:
    """float32 against bf16 autocast for the updates ``--loop.precision`` autocasts."""
    modes = {"fp32": None, "bf16": torch.bfloat16}
    rows = ("tokenizer update", "world_model update")
    times: dict[tuple[str, str], list[float]] = {(r, m): [] for r in rows for m in modes}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for r in range(args.rounds):
        for mode, amp in modes.items():
            for row in rows:
                name = row.split()[0]
                values = wm.wm_update_times(
                    s, name, rng, args.warmup, args.iters, amp, pretrain=False
                )
                times[row, mode] += values
                print(
                    f"round {r + 1}, {mode}, {row}: median {1e3 * statistics.median(values):,.0f} ms",
                    flush=True,
                )
    note = run_note(args, preset_setup(s, cfg), "precisions", load_before, started) + (
        " Each update: sample, forward and loss (autocast in bf16), backward, clip, Adam step in "
        "float32. The actor-critic update (imagination) is not autocast by the loop."
    )
    publish(
        args,
        "bfloat16 autocast against float32",
        "cpu-precision",
        ("float32", "`--loop.precision bf16`", "float32 / bf16"),
        {row: (times[row, "fp32"], times[row, "bf16"]) for row in rows},
        note,
        machine_line,
        write_section,
    )


def preset_setup(s: Any, cfg: Any, extra: str = "") -> str:
    """The measured setup: the preset's batch sizes (plus ``extra``) and the synthetic replay."""
    return (
        f"`iris-minatar` preset (tokenizer batch {s.batch_sizes['tokenizer']} frames, world-model "
        f"batch {s.batch_sizes['world_model']} x {cfg.world_model.dynamics.sequence_length} "
        f"frames{extra}) on 64x64 RGB frames, synthetic replay of 5,000 steps"
    )


def run_note(
    args: argparse.Namespace, setup: str, sides: str, load_before: float, started: float
) -> str:
    """What was measured and how: ``setup``, torch, threads, rounds, load and duration."""
    minutes = (time.perf_counter() - started) / 60
    return (
        f"{setup}; torch {torch.__version__}, {args.threads} thread(s); {args.rounds} rounds of "
        f"{args.iters} timed updates per row after {args.warmup} untimed, the {sides} in turns; "
        f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"{minutes:.1f} min."
    )


def publish(
    args: argparse.Namespace,
    title: str,
    section: str,
    columns: tuple[str, str, str],
    times: dict[str, tuple[list[float], list[float]]],
    note: str,
    machine_line: Any,
    write_section: Any,
) -> None:
    """Print the A B table (medians, A / B) and its note; write the docs section."""
    med = statistics.median
    lines = [
        "| iris-minatar on the CPU, seconds per update: median (all rounds) | "
        + " | ".join(columns)
        + " |",
        "|---|---|---|---|",
    ]
    for row, (a, b) in times.items():
        lines.append(
            f"| {row} | {1e3 * med(a):,.0f} ms | {1e3 * med(b):,.0f} ms | **{med(a) / med(b):.2f}x** |"
        )
    text = "\n".join(lines)
    print(f"\n{text}\n\n{note}")
    if not args.no_write:
        command = " ".join([".venv/bin/python benchmarks/cpu_layout.py", *sys.argv[1:]])
        markdown = (
            f"## IRIS on the CPU: {title}\n\n`{command}`  \n{machine_line()}\n\n{text}\n\n{note}"
        )
        print(f"wrote {write_section(section, markdown)}")


if __name__ == "__main__":
    main()
