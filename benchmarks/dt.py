"""Decision Transformer speed and memory on the CPU, side by side with d3rlpy 2.8.1.

Paper: Chen et al. 2021, https://arxiv.org/abs/2106.01345. Config: the paper's gym model (embed 128,
3 layers, 1 head, ReLU MLP, dropout 0.1, K = 20, batch 64, AdamW lr 1e-4, weight decay 1e-4,
gradient clip 0.25, 10k warm-up steps, returns-to-go / 1000, observations standardised).

1. **Training**: updates per second, each update = sample a batch of 64 windows of 20 steps from a
   synthetic Hopper-sized dataset (11-dim observations, 3-dim actions, 200 episodes of 1000
   steps) + one optimiser step. seqrl: the ``dt-paper-gym`` preset model, ``WindowSampler`` and
   ``seqrl.training.update``; its ``dt`` preset (SwiGLU, banded attention) as a third column.
   d3rlpy: ``DecisionTransformerConfig`` set up as its ``reproductions/offline/decision_transformer.py``
   (VectorEncoderFactory([128]) as the state embedding, SIMPLE timestep encoding, AdamWFactory with
   the same clip and warm-up, StandardObservationScaler, MultiplyRewardScaler(0.001)),
   ``sample_trajectory_batch(64, length=20)`` and ``algo.update(batch)``, on the same arrays.
2. **Evaluation**: policy cost per environment step with 10 envs on synthetic observations (no env
   stepping). seqrl: one ``DTAgent.act`` + ``observe`` over all 10 envs per step, in ``window``
   mode (``dt-paper-gym`` model) and ``cached`` mode (``dt`` model, KV cache). d3rlpy: 10
   ``as_stateful_wrapper(target_return=3600)`` objects, ``predict(obs, reward)`` once per env per
   step. The first K steps fill the contexts and are not timed.
3. **Peak memory**: max RSS (``resource.getrusage``) of each measurement's own process.

Every measurement runs in a fresh subprocess (seqrl: ``.venv/bin/python``; d3rlpy: its own venv,
it pins gymnasium 1.0.0) with the same torch thread count and ``OMP_WAIT_POLICY`` (PASSIVE unless
set); the sides take turns (A B A B) and the table quotes medians over rounds and the median of the
per-round ratios, at 1 and at 2 torch threads (``--threads``). d3rlpy's loss sums the squared error
over action dimensions where the paper (and seqrl) averages it: the reported losses differ by the
action size, the work per update does not.

Run from the repository root::

    .venv/bin/python benchmarks/dt.py            # writes the "dt" section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
D3RLPY_PYTHON = os.environ.get(
    "D3RLPY_PYTHON", str(Path(__file__).resolve().parent.parent / ".venv-d3rlpy" / "bin" / "python")
)
TARGET_RETURN = 3600.0  # the paper's hopper target
BATCH, CONTEXT = 64, 20


# --- the synthetic dataset ----------------------------------------------------------------------


def synthetic_hopper(path: Path, episodes: int, length: int, seed: int = 0) -> None:
    """Write a Hopper-sized D4RL-style ``.npz`` (every episode ends in a timeout) plus obs statistics.

    Keys: observations ``(N, 11)`` float32, actions ``(N, 3)`` float32 in [-1, 1], rewards ``(N,)``
    float32, terminals / timeouts ``(N,)`` bool, obs_mean / obs_std ``(11,)`` float32 (the DT code's
    statistics, ``std + 1e-6``); the caller adds eval_obs ``(steps, envs, 11)``.
    """
    rng = np.random.default_rng(seed)
    n = episodes * length
    timeouts = np.zeros(n, bool)
    timeouts[length - 1 :: length] = True
    observations = rng.normal(size=(n, 11)).astype(np.float32) * 2.0 + 1.0
    np.savez(
        path,
        observations=observations,
        actions=rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        rewards=rng.uniform(0, 6, size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=timeouts,
        obs_mean=observations.mean(0),
        obs_std=observations.std(0) + 1e-6,
    )


# --- the seqrl side (runs in a subprocess of .venv/bin/python) ----------------------------------


def seqrl_worker(
    task: str, preset: str, data: str, steps: int, warmup: int, threads: int
) -> dict[str, Any]:
    """One seqrl measurement: ``train`` (updates/s) or ``window``/``cached`` (seconds per env step).

    ``preset`` may end in ``+bf16`` (bfloat16 autocast, ``--loop.precision bf16``) and/or
    ``+compile`` (evaluation through ``torch.compile``, ``--eval.compile``)."""
    import resource

    import torch
    from gymnasium import spaces
    from seqrl.agents.dt import DTAgent, build_model
    from seqrl.agents.train_dt import PRESETS, make_optimizer, make_scheduler
    from seqrl.data import DatasetMetadata, TrajectoryDataset, WindowSampler, observation_stats
    from seqrl.trainer import precision_dtype
    from seqrl.training import seed_everything, update

    torch.set_num_threads(threads)
    seed_everything(0)
    arrays = np.load(data)
    preset, *flags = preset.split("+")
    amp = precision_dtype("bf16" if "bf16" in flags else "fp32")
    cfg = PRESETS[preset]()
    obs_space = spaces.Box(-np.inf, np.inf, (11,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    model = build_model(cfg.model, obs_space, act_space)
    params = sum(p.numel() for p in model.parameters())
    result: dict[str, Any] = {
        "params": params,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }

    if task == "train":
        ends = np.flatnonzero(arrays["timeouts"] | arrays["terminals"]) + 1
        dataset = TrajectoryDataset(
            arrays["observations"],
            arrays["actions"],
            arrays["rewards"],
            np.concatenate([[0], ends]),
            arrays["terminals"][ends - 1],
            arrays["timeouts"][ends - 1],
            DatasetMetadata(name="hopper-synthetic"),
        )
        stats = observation_stats(dataset)
        model.set_normalization(stats.mean, stats.std)
        sampler = WindowSampler(
            dataset,
            context=cfg.train_context or cfg.model.context,
            return_scale=cfg.model.return_scale,
            max_timestep=cfg.model.max_timestep,
        )
        optimizer = make_optimizer(model, cfg.optim)
        scheduler = make_scheduler(optimizer, cfg.optim, cfg.loop.steps)
        rng = np.random.default_rng(0)
        model.train()

        def step() -> dict[str, float]:
            batch = sampler.sample(cfg.optim.batch_size, rng)
            return update(
                model.loss,
                batch,
                optimizer,
                clip_norm=cfg.optim.clip_norm,
                scheduler=scheduler,
                amp_dtype=amp,
            )

        for _ in range(warmup):
            step()
        t = time.perf_counter()
        for _ in range(steps):
            metrics = step()
        result["seconds"] = time.perf_counter() - t
        result["rate"] = steps / result["seconds"]
        result["loss"] = metrics["loss"]
        result["batch"] = cfg.optim.batch_size
    else:
        model.set_normalization(arrays["obs_mean"], arrays["obs_std"])
        eval_obs = arrays["eval_obs"]
        num_envs = eval_obs.shape[1]
        agent = DTAgent(
            model,
            [TARGET_RETURN],
            mode=task,  # type: ignore[arg-type]
            amp_dtype=amp,
            compile="compile" in flags,
        )
        agent.reset(num_envs)
        rewards = np.ones(num_envs, np.float32)
        dones = np.zeros(num_envs, bool)
        skip = cfg.model.context
        start = time.perf_counter()
        for t in range(skip):
            agent.act(eval_obs[t])
            agent.observe(rewards, dones)
        result["untimed_seconds"] = time.perf_counter() - start  # compiling, where compiled
        start = time.perf_counter()
        for t in range(skip, len(eval_obs)):
            action = agent.act(eval_obs[t])
            agent.observe(rewards, dones)
        result["seconds"] = time.perf_counter() - start
        result["per_env_step"] = result["seconds"] / ((len(eval_obs) - skip) * num_envs)
        result["action_shape"] = list(action.shape)
    result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result


# --- the d3rlpy side (its source is written to a file and run by the d3rlpy venv) ---------------


def d3rlpy_worker(
    task: str, preset: str, data: str, steps: int, warmup: int, threads: int
) -> dict[str, Any]:
    """One d3rlpy measurement: ``train`` (updates/s) or ``stateful`` (seconds per env step)."""
    import resource
    import time

    import d3rlpy
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    d3rlpy.seed(0)
    arrays = np.load(data)
    from d3rlpy_peer import paper_gym_dt  # benchmarks/, put on sys.path by worker_script

    algo = paper_gym_dt(
        d3rlpy,
        warmup_steps=10000,
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(
            mean=arrays["obs_mean"], std=arrays["obs_std"]
        ),
    ).create(device="cpu:0")
    algo.create_impl((11,), 3)
    transformer = algo.impl.modules.transformer
    result = {
        "params": sum(p.numel() for p in transformer.parameters()),
        "torch": torch.__version__,
        "d3rlpy": d3rlpy.__version__,
        "threads": torch.get_num_threads(),
    }
    if task == "train":
        dataset = d3rlpy.dataset.MDPDataset(
            arrays["observations"],
            arrays["actions"],
            arrays["rewards"],
            arrays["terminals"],
            timeouts=arrays["timeouts"],
        )

        def step() -> dict[str, float]:
            batch = dataset.sample_trajectory_batch(64, length=20)
            return algo.update(batch)

        for _ in range(warmup):
            step()
        t = time.perf_counter()
        for _ in range(steps):
            metrics = step()
        result["seconds"] = time.perf_counter() - t
        result["rate"] = steps / result["seconds"]
        result["loss"] = metrics["loss"]
        result["batch"] = 64
    else:
        eval_obs = arrays["eval_obs"]
        num_envs = eval_obs.shape[1]
        wrappers = [algo.as_stateful_wrapper(target_return=3600.0) for _ in range(num_envs)]
        reward = 0.0
        skip = 20
        for t in range(skip):
            for i in range(num_envs):
                wrappers[i].predict(eval_obs[t, i], reward)
            reward = 1.0
        start = time.perf_counter()
        for t in range(skip, len(eval_obs)):
            for i in range(num_envs):
                action = wrappers[i].predict(eval_obs[t, i], reward)
        result["seconds"] = time.perf_counter() - start
        result["per_env_step"] = result["seconds"] / ((len(eval_obs) - skip) * num_envs)
        result["action_shape"] = list(np.shape(action))
    result["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result


# --- running the workers ------------------------------------------------------------------------

MARKER = "RESULT "


def worker_script(fn: Callable[..., dict[str, Any]]) -> str:
    """A standalone program: ``fn``'s source and a main that prints ``RESULT {json}``."""
    header = (
        "from __future__ import annotations\n"
        "import json, sys, time\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from typing import Any\n"
        "import numpy as np\n"
        f"TARGET_RETURN = {TARGET_RETURN!r}\n\n\n"
    )
    main = (
        '\n\nif __name__ == "__main__":\n'
        "    task, preset, data, steps, warmup, threads = sys.argv[1:7]\n"
        f"    out = {fn.__name__}(task, preset, data, int(steps), int(warmup), int(threads))\n"
        f"    print({MARKER!r} + json.dumps(out), flush=True)\n"
    )
    return header + inspect.getsource(fn) + main


@dataclass
class Job:
    """One measurement: a column of the table, the interpreter and worker that run it."""

    column: str
    python: str
    script: Path
    task: str
    preset: str


def run_job(
    job: Job, data: Path, steps: int, warmup: int, threads: int, log: Path
) -> dict[str, Any]:
    """Run ``job`` in a fresh subprocess; its result dict plus the load average around it."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"],
        "PYTHONWARNINGS": "ignore",
    }
    argv = [
        job.python,
        str(job.script),
        job.task,
        job.preset,
        str(data),
        str(steps),
        str(warmup),
        str(threads),
    ]
    load_before = os.getloadavg()[0]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}\n")
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{job.column} ({job.task}) failed with exit {proc.returncode}; see {log}")
    result = json.loads(lines[-1][len(MARKER) :])
    result["load"] = (load_before + os.getloadavg()[0]) / 2
    return result


def fmt_rounds(values: list[float], spec: str) -> str:
    """``a, b, c`` formatted with ``spec``."""
    return ", ".join(format(v, spec) for v in values)


Runs = dict[tuple[int, str], list[dict[str, Any]]]
"""Results by (torch threads, column): one dict per round."""


def table(
    title: str, jobs: list[Job], runs: Runs, threads: list[int], metric: str, baseline: str
) -> list[str]:
    """Markdown rows: parameters, the metric and the ratio to ``baseline`` per thread count, peak RSS.

    ``metric`` is ``rate`` (updates/s, higher is better) or ``per_env_step`` (shown in ms, lower is
    better); ratios are seqrl over d3rlpy for rates and d3rlpy over seqrl for costs, taken per round.
    """
    med = statistics.median
    scale, spec = (1.0, ".2f") if metric == "rate" else (1e3, ".3f")

    def cells(fn: Callable[[Job], str]) -> str:
        return "| " + " | ".join(fn(j) for j in jobs) + " |"

    rows = [
        f"| {title} | " + " | ".join(j.column for j in jobs) + " |",
        "|---" * (len(jobs) + 1) + "|",
        "| parameters " + cells(lambda j: f"{runs[threads[0], j.column][0]['params']:,}"),
    ]
    for n in threads:
        values = {j.column: [scale * float(r[metric]) for r in runs[n, j.column]] for j in jobs}
        base = values[baseline]
        ratios = {
            c: [a / b if metric == "rate" else b / a for a, b in zip(v, base, strict=True)]
            for c, v in values.items()
        }
        what = (
            f"updates/s (batch {BATCH} x K={CONTEXT}, sample + update)"
            if metric == "rate"
            else "policy cost per env step, ms"
        )
        versus = "seqrl / d3rlpy updates/s" if metric == "rate" else "d3rlpy cost / seqrl cost"
        rows.append(
            f"| {what}, {n} thread{'s' if n > 1 else ''}: median (rounds) "
            + cells(
                lambda j, v=values: f"{med(v[j.column]):{spec}} ({fmt_rounds(v[j.column], spec)})"
            )
        )
        rows.append(
            f"| {versus}, {n} thread{'s' if n > 1 else ''}: median of per-round ratios (rounds) "
            + cells(
                lambda j, q=ratios: (
                    "1"
                    if j.column == baseline
                    else f"**{med(q[j.column]):.2f}x** ({fmt_rounds(q[j.column], '.2f')})"
                )
            )
        )
    rows.append(
        "| peak RSS of the process (max over rounds and thread counts) "
        + cells(
            lambda j: (
                f"{max(r['maxrss_kib'] for n in threads for r in runs[n, j.column]) / 1024:,.0f} MiB"
            )
        )
    )
    return rows


def main() -> None:
    """Run the benchmark, print the table and write the ``dt`` section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="A B rounds (each side once per round)"
    )
    parser.add_argument("--updates", type=int, default=50, help="timed training updates per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed training updates first")
    parser.add_argument(
        "--eval-steps", type=int, default=200, help="env steps per evaluation (the first K untimed)"
    )
    parser.add_argument("--envs", type=int, default=10, help="evaluation envs")
    parser.add_argument(
        "--episodes", type=int, default=200, help="synthetic dataset: episodes of 1000 steps"
    )
    parser.add_argument(
        "--threads",
        default="1,2",
        help="torch thread counts, each used by both sides (comma-separated)",
    )
    parser.add_argument("--d3rlpy", default=D3RLPY_PYTHON, help="python of the d3rlpy 2.8.1 venv")
    parser.add_argument(
        "--only", choices=("train", "eval"), help="run one part and only print (no docs update)"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print, do not update docs/benchmarks.md"
    )
    args = parser.parse_args()
    threads = [int(n) for n in args.threads.split(",")]
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    sys.path.insert(0, str(HERE))
    from report import machine_line, write_section

    started = time.perf_counter()
    caption = machine_line()
    tmp = Path(tempfile.mkdtemp(prefix="seqrl-bench-dt-"))
    data = tmp / "hopper-synthetic.npz"
    synthetic_hopper(data, args.episodes, 1000)
    with np.load(data) as z:
        arrays = dict(z)
    arrays["eval_obs"] = (
        np.random.default_rng(1).normal(size=(args.eval_steps, args.envs, 11)).astype(np.float32)
    )
    np.savez(data, **arrays)
    del arrays
    ours_py, theirs_py = tmp / "seqrl_worker.py", tmp / "d3rlpy_worker.py"
    ours_py.write_text(worker_script(seqrl_worker))
    theirs_py.write_text(worker_script(d3rlpy_worker))
    log = tmp / "workers.log"
    python = sys.executable

    train_jobs = [
        Job("seqrl dt-paper-gym", python, ours_py, "train", "dt-paper-gym"),
        Job("d3rlpy 2.8.1", args.d3rlpy, theirs_py, "train", ""),
        Job("seqrl dt-paper-gym, bf16", python, ours_py, "train", "dt-paper-gym+bf16"),
        Job("seqrl dt (SwiGLU, banded)", python, ours_py, "train", "dt"),
    ]
    eval_jobs = [
        Job("seqrl window (dt-paper-gym)", python, ours_py, "window", "dt-paper-gym"),
        Job("d3rlpy 2.8.1 stateful wrapper", args.d3rlpy, theirs_py, "stateful", ""),
        Job("seqrl window, bf16", python, ours_py, "window", "dt-paper-gym+bf16"),
        Job("seqrl window, compiled", python, ours_py, "window", "dt-paper-gym+compile"),
        Job("seqrl window, bf16, compiled", python, ours_py, "window", "dt-paper-gym+bf16+compile"),
        Job("seqrl cached (dt)", python, ours_py, "cached", "dt"),
        Job("seqrl cached, bf16", python, ours_py, "cached", "dt+bf16"),
    ]
    parts = [p for p in ("train", "eval") if args.only in (None, p)]
    runs: Runs = {(n, j.column): [] for n in threads for j in train_jobs + eval_jobs}
    for r in range(args.rounds):
        for n in threads:
            if "train" in parts:
                for job in train_jobs:
                    res = run_job(job, data, args.updates, args.warmup, n, log)
                    runs[n, job.column].append(res)
                    print(
                        f"round {r + 1}, {n} thread(s), train {job.column}: {res['rate']:.2f} updates/s "
                        f"(load {res['load']:.2f})",
                        flush=True,
                    )
            if "eval" in parts:
                for job in eval_jobs:
                    res = run_job(job, data, args.eval_steps, 0, n, log)
                    runs[n, job.column].append(res)
                    print(
                        f"round {r + 1}, {n} thread(s), eval {job.column}: "
                        f"{1e3 * res['per_env_step']:.3f} ms/env step (load {res['load']:.2f})",
                        flush=True,
                    )

    rows: list[str] = []
    if "train" in parts:
        rows += table("training, CPU", train_jobs, runs, threads, "rate", train_jobs[1].column)
        rows.append("")
    if "eval" in parts:
        title = f"evaluation, {args.envs} envs, steps {CONTEXT + 1}-{args.eval_steps}"
        rows += table(title, eval_jobs, runs, threads, "per_env_step", eval_jobs[1].column)
    loads = [res["load"] for done in runs.values() for res in done]
    compiling = [
        res["untimed_seconds"]
        for (_, column), done in runs.items()
        if column.endswith("compiled")
        for res in done
    ]
    first = next(done[0] for done in runs.values() if done)
    minutes = (time.perf_counter() - started) / 60
    notes = [
        f"Decision Transformer at the paper's gym config on the CPU: torch {first['torch']} on both sides, "
        f"the same torch thread count on both sides ({', '.join(map(str, threads))}), "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} on both sides; {args.rounds} rounds, the sides "
        f"in turn (A B A B), each measurement in a fresh process; {args.updates} timed updates after "
        f"{args.warmup} warm-up updates; synthetic Hopper-sized data ({args.episodes} episodes x 1000 "
        f"steps, obs 11, act 3). Load average (1 min) during the measurements: "
        f"{min(loads):.2f}-{max(loads):.2f} (other jobs share the machine); the run took {minutes:.1f} min.",
        "",
        "d3rlpy is configured as its `reproductions/offline/decision_transformer.py` (state embedding "
        "`VectorEncoderFactory([128])`, SIMPLE timestep embedding); the two models are the same layer for "
        "layer except that d3rlpy's timestep table has 1002 rows against seqrl's 1000 (256 more parameters). The `window` column is the `dt-paper-gym` model re-running the last K steps; "
        "`cached` is the `dt` preset model (SwiGLU, banded attention over 3K tokens) decoding with the KV "
        "cache. seqrl acts in all envs with one batched `act` + `observe` per step; d3rlpy calls "
        "`predict(obs, reward)` once per env. Untrained models (the cost does not depend on the weights). "
        "Peak RSS is the whole process: interpreter, torch and, for training, the dataset.",
        "",
        "The `bf16` columns are the same seqrl models with `--loop.precision bf16`: forward passes "
        "autocast to bfloat16 (products on the CPU's bfloat16 units: AMX or AVX-512 BF16), weights, "
        "gradients' accumulation into "
        "them and the optimizer in float32. d3rlpy has no CPU autocast; its columns are float32. "
        "seqrl's dropout draws its CPU masks from 16 random bits per element (`seqrl.backbone."
        "Dropout`) where d3rlpy's, torch's, draws one `bernoulli_` number per element.",
        "",
        "The `compiled` columns act through `torch.compile` (`--eval.compile`: inductor, static "
        "shapes, its `freezing` option: oneDNN (bf16) or MKL (float32) linear layers, bias and "
        "ReLU fused in bf16). Compiling happens during the untimed first K steps: "
        + (
            f"{min(compiling):.1f}-{max(compiling):.1f} s per process. "
            if compiling
            else "not measured in this run. "
        )
        + "d3rlpy's `compile_graph` applies to CUDA devices only, so its CPU column is eager.",
    ]
    text = "\n".join(rows).strip()
    print()
    print(text)
    print()
    print("\n".join(notes))
    if not args.no_write and args.only is None:
        command = " ".join([".venv/bin/python benchmarks/dt.py", *sys.argv[1:]])
        markdown = (
            "## Decision Transformer: training and evaluation speed against d3rlpy\n\n"
            f"`{command}`  \n{caption}\n\n{text}\n\n" + "\n".join(notes)
        )
        print(f"wrote {write_section('dt', markdown)}")
    shutil.rmtree(tmp, ignore_errors=True)  # kept (with workers.log) when a worker fails


if __name__ == "__main__":
    main()
