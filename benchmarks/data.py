"""Data-layer benchmark: DT batch sampling speed vs d3rlpy, and dataset memory.

1. Sampling a Decision Transformer batch (64 windows x 20 steps) from a synthetic 1M-transition
   HalfCheetah-sized dataset (17-dim observations, 6-dim actions, 1000-step episodes): seqrl's
   ``WindowSampler`` (torch tensors out, returns-to-go scaled, observations normalised) against
   d3rlpy 2.8.1's ``ReplayBuffer.sample_trajectory_batch`` (numpy out) on the same arrays. d3rlpy
   pins gymnasium 1.0.0, so it runs in its own venv as a subprocess that stays alive; the two sides
   take turns (A B A B), same thread count and ``OMP_WAIT_POLICY``.
2. Memory of a loaded dataset against its raw arrays (D4RL HDF5 file, seqrl folder memory-mapped).
3. 100k Atari frames (64x64x3) held as uint8: bytes held, and world-model batch (64 x 20) speed.

Run from the repository root (needs d3rlpy's own venv: ``make peers`` builds ``.venv-d3rlpy``; ``--d3rlpy`` to point
elsewhere)::

    .venv/bin/python benchmarks/data.py            # writes the "data" section of docs/benchmarks.md
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
THREADS = "1"
os.environ.setdefault("OMP_NUM_THREADS", THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_line, write_section  # noqa: E402
from seqrl.data.d4rl import load_d4rl  # noqa: E402
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset  # noqa: E402
from seqrl.data.sampler import SequenceSampler, WindowSampler  # noqa: E402
from seqrl.data.stats import format_bytes, observation_stats  # noqa: E402
from seqrl.envs import scores as _scores  # noqa: E402, F401 - imported here, not inside the measured load

D3RLPY_WORKER = r"""
import sys, time, numpy as np
import d3rlpy
d = sys.argv[1]
arrays = {k: np.load(f"{d}/{k}.npy") for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
dataset = d3rlpy.dataset.MDPDataset(
    arrays["observations"], arrays["actions"], arrays["rewards"], arrays["terminals"], timeouts=arrays["timeouts"]
)
np.random.seed(0)
dataset.sample_trajectory_batch(64, 20)
print("ready", d3rlpy.__version__, flush=True)
for line in sys.stdin:
    n = int(line)
    t = time.perf_counter()
    for _ in range(n):
        dataset.sample_trajectory_batch(64, 20)
    print("T", time.perf_counter() - t, flush=True)
"""


def synthetic_mujoco(
    n: int, obs_dim: int = 17, act_dim: int = 6, episode: int = 1000
) -> dict[str, np.ndarray]:
    """D4RL-style arrays: episodes of ``episode`` steps ending in timeouts, every 7th terminated early."""
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    timeouts[episode - 1 :: episode] = True
    early = np.arange(episode // 2, n, 7 * episode)  # some episodes end in a terminal instead
    terminals[early] = True
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
    }


def measure_load(fn):  # noqa: ANN001, ANN201
    """(result, bytes still allocated after, peak bytes during) of ``fn()`` (tracemalloc sees numpy)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = fn()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, current - before, peak - before


def time_batches(sample, n: int) -> float:  # noqa: ANN001
    t = time.perf_counter()
    for _ in range(n):
        sample()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5, help="A B rounds")
    parser.add_argument("--batches", type=int, default=200, help="seqrl batches per round")
    parser.add_argument("--d3rlpy-batches", type=int, default=50, help="d3rlpy batches per round")
    parser.add_argument("--atari-frames", type=int, default=100_000)
    parser.add_argument(
        "--d3rlpy", default=os.environ.get("D3RLPY_PYTHON", ".venv-d3rlpy/bin/python")
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print, do not update docs/benchmarks.md"
    )
    args = parser.parse_args()
    torch.set_num_threads(int(THREADS))
    tmp = Path(tempfile.mkdtemp(prefix="seqrl-bench-data-"))
    rows: list[str] = []

    # -- 1. DT batch sampling ------------------------------------------------------------------
    arrays = synthetic_mujoco(args.transitions)
    d4rl_file = tmp / "halfcheetah-synthetic.hdf5"
    with h5py.File(d4rl_file, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    npy = tmp / "npy"
    npy.mkdir()
    for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
        np.save(npy / f"{key}.npy", arrays[key])
    raw_bytes = sum(
        arrays[k].nbytes for k in ("observations", "actions", "rewards", "terminals", "timeouts")
    )
    del arrays

    dataset, held, peak = measure_load(lambda: load_d4rl(d4rl_file))
    stats = observation_stats(dataset)
    sampler = WindowSampler(
        dataset, context=20, return_scale=1000.0, max_timestep=1000, obs_stats=stats
    )
    plain = WindowSampler(dataset, context=20, return_scale=1000.0, max_timestep=1000)
    rng = np.random.default_rng(0)
    sampler.sample(64, rng)

    worker = subprocess.Popen(
        [args.d3rlpy, "-c", D3RLPY_WORKER, str(npy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(tmp / "d3rlpy.log", "w"),  # noqa: SIM115 - lives as long as the worker
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": THREADS},
    )

    def reply(marker: str) -> list[str]:
        for line in worker.stdout:  # d3rlpy logs to stdout too: skip to our marker
            if line.startswith(marker + " "):
                return line.split()[1:]
        raise SystemExit(f"d3rlpy worker ended early (see {tmp / 'd3rlpy.log'})")

    d3rlpy_version = reply("ready")[0]
    ours, ours_plain, theirs, ratios = [], [], [], []
    for _ in range(args.rounds):
        a = args.batches / time_batches(lambda: sampler.sample(64, rng), args.batches)
        a2 = args.batches / time_batches(lambda: plain.sample(64, rng), args.batches)
        worker.stdin.write(f"{args.d3rlpy_batches}\n")
        worker.stdin.flush()
        b = args.d3rlpy_batches / float(reply("T")[0])
        ours.append(a)
        ours_plain.append(a2)
        theirs.append(b)
        ratios.append(a / b)
    worker.stdin.close()
    worker.wait()
    med = statistics.median
    rows.append(f"| what | seqrl | d3rlpy {d3rlpy_version} | ratio |")
    rows.append("|---|---|---|---|")
    rows.append(
        f"| DT batch 64 x 20 from {args.transitions:,} transitions (batches/s, median of {args.rounds}) | "
        f"{med(ours):,.0f} (normalised obs, torch) / {med(ours_plain):,.0f} (raw obs) | {med(theirs):,.0f} | "
        f"**{med(ratios):.1f}x** (rounds: {', '.join(f'{r:.1f}' for r in ratios)}) |"
    )

    # -- 2. memory of a loaded dataset -------------------------------------------------------
    rows.append(
        f"| {args.transitions:,}-transition D4RL file loaded (held / raw arrays) | "
        f"{format_bytes(held)} / {format_bytes(raw_bytes)} "
        f"= **{held / raw_bytes:.2f}x** (peak while loading {peak / raw_bytes:.2f}x) | | |"
    )
    dataset.save(tmp / "native")
    mapped, held_mm, _ = measure_load(lambda: TrajectoryDataset.load(tmp / "native"))
    rows.append(
        f"| same, seqrl folder memory-mapped (heap held / raw) | {format_bytes(held_mm)} "
        f"({held_mm / raw_bytes:.3f}x); pages on demand | | |"
    )
    del dataset, mapped

    # -- 3. Atari frames -----------------------------------------------------------------------
    n, episode = args.atari_frames, 1000
    episodes = n // episode

    def build_atari() -> TrajectoryDataset:
        frames = np.empty((n + episodes, 64, 64, 3), np.uint8)
        frames[:] = 7  # touch every page
        starts = np.arange(0, n + 1, episode)
        return TrajectoryDataset(
            frames,
            np.zeros(n, np.int64),
            np.ones(n, np.float32),
            starts,
            np.ones(episodes, bool),
            np.zeros(episodes, bool),
            DatasetMetadata("atari-synthetic"),
        )

    atari, held_atari, _ = measure_load(build_atari)
    raw_atari = (n + episodes) * 64 * 64 * 3 + n * 8 + n * 4 + 2 * episodes
    wm = SequenceSampler(atari, seq_len=20)
    wm.sample(64, rng)
    rates = [20 / time_batches(lambda: wm.sample(64, rng), 20) for _ in range(3)]
    rows.append(
        f"| {n:,} Atari frames 64x64x3 in memory (held / raw) | {format_bytes(held_atari)} / "
        f"{format_bytes(raw_atari)} = **{held_atari / raw_atari:.2f}x**, dtype {atari.observations.dtype} | | |"
    )
    rows.append(
        f"| world-model batch 64 x 20 frames (uint8) from them (batches/s) | {med(rates):,.0f} | | |"
    )

    command = ".venv/bin/python benchmarks/data.py"
    markdown = "\n".join(
        [
            "## Data: DT batch sampling and dataset memory",
            "",
            f"`{command}` (synthetic HalfCheetah-sized data: 17-dim observations, 6-dim actions, "
            "1000-step episodes; d3rlpy 2.8.1 `sample_trajectory_batch(64, 20)` in its own venv, "
            f"sides alternating A B A B; both {THREADS} thread(s)).",
            "",
            f"Machine: {machine_line()}.",
            "",
            *rows,
            "",
            "seqrl's batch is complete training input (torch tensors, returns-to-go scaled by 1/1000, "
            "timesteps, mask; first column also normalises observations); d3rlpy's is numpy arrays "
            "before its own torch conversion. seqrl draws a step uniformly over all transitions, "
            "which is the DT paper's length-proportional episode draw, and cuts all 64 windows with "
            "one vectorised gather. 'Raw arrays' are the file's observations, actions, rewards, "
            "terminals and timeouts (not next_observations, of which the dataset keeps one row per "
            "episode); 'held' is what tracemalloc still counts after loading.",
        ]
    )
    print(markdown)
    print(json.dumps({"ours": ours, "ours_plain": ours_plain, "d3rlpy": theirs}))
    if not args.no_write:
        write_section("data", markdown)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
