"""seqrl's Decision Transformer side by side with d3rlpy 2.8.1's on the demo's mixed-quality data.

Both libraries train the DT paper's gym configuration (context 20, embed 128, 3 layers, 1 head,
ReLU MLP, dropout 0.1, batch 64, AdamW lr 1e-4 weight decay 1e-4, clip 0.25, returns / 1000,
standardized observations, max timestep 1000) for the same number of updates with a linear
warm-up over a tenth of them, on the same HalfCheetah-v5 dataset (``seqrl.agents.demo``), and
are evaluated at the same target return (the dataset's best episode return, rounded) for the same
number of episodes. Seeds alternate seqrl / d3rlpy. Scores are D4RL-normalized (halfcheetah:
random -280.178953, expert 12135.0). The table goes into the "d3rlpy" section of ``docs/dt.md``::

    OMP_WAIT_POLICY=PASSIVE python examples/dt_vs_d3rlpy.py --updates 2000 --episodes 5 --seeds 0 1 2

d3rlpy pins gymnasium 1.0.0, so it runs in its own virtual environment (``--d3rlpy-python``):
this file is also its worker (``--worker d3rlpy``), which imports only numpy, torch, gymnasium
and d3rlpy. The seqrl side runs in this interpreter. Both use ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

DOC = Path(__file__).resolve().parent.parent / "docs" / "dt.md"
BEGIN, END = "<!-- BEGIN d3rlpy -->", "<!-- END d3rlpy -->"
HEADING = "## Side by side with d3rlpy"
D4RL_HALFCHEETAH = (-280.178953, 12135.0)  # D4RL REF_MIN_SCORE / REF_MAX_SCORE for halfcheetah
D3RLPY_PYTHON = os.environ.get(
    "D3RLPY_PYTHON", str(Path(__file__).resolve().parent.parent / ".venv-d3rlpy" / "bin" / "python")
)


def normalize(returns: np.ndarray) -> np.ndarray:
    """D4RL score in percent: ``100 * (return - random) / (expert - random)``, shape of ``returns``."""
    low, high = D4RL_HALFCHEETAH
    return 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)


# --- data ---------------------------------------------------------------------------------------


def export_npz(dataset: Any, path: Path) -> None:
    """Write ``dataset`` flat, one row per step, in d3rlpy's ``MDPDataset`` layout.

    observations (S, obs_dim) (the final observation of each episode dropped), actions (S, act_dim),
    rewards (S,), terminals (S,) and timeouts (S,): 1 on an episode's last step when it
    terminated, resp. otherwise (truncated or cut by the collection budget).
    """
    obs, acts, rews, terms, timeouts = [], [], [], [], []
    for i in range(len(dataset)):
        episode = dataset[i]
        steps = len(episode.actions)
        term, timeout = np.zeros(steps, np.float32), np.zeros(steps, np.float32)
        if episode.terminated:
            term[-1] = 1.0
        else:
            timeout[-1] = 1.0
        obs.append(episode.obs)
        acts.append(episode.actions)
        rews.append(episode.rewards)
        terms.append(term)
        timeouts.append(timeout)
    np.savez(
        path,
        observations=np.concatenate(obs).astype(np.float32),
        actions=np.concatenate(acts).astype(np.float32),
        rewards=np.concatenate(rews).astype(np.float32),
        terminals=np.concatenate(terms),
        timeouts=np.concatenate(timeouts),
    )


# --- seqrl side (this interpreter) ---------------------------------------------------------------


def run_seqrl(dataset: Any, seed: int, target: float, args: argparse.Namespace) -> dict[str, Any]:
    """Train seqrl's ``dt-paper-gym`` for ``args.updates`` updates and evaluate it at ``target``."""
    import torch
    from seqrl.agents.train_dt import PRESETS, EvalConfig, train_dt
    from seqrl.run import RunDir
    from seqrl.trainer import LoopConfig

    torch.set_num_threads(args.threads)
    base = PRESETS["dt-paper-gym"]()
    cfg = replace(
        base,
        window_anchor=args.window_anchor,
        dataset=str(dataset.metadata.location),
        env=args.env,
        model=replace(base.model, timestep_init=args.timestep_init, action_loss=args.action_loss),
        optim=replace(base.optim, warmup_steps=args.updates // 10),
        eval=EvalConfig(
            targets=(target,), episodes=args.episodes, mode="window", seed=10_000 + 100 * seed
        ),
        loop=LoopConfig(
            steps=args.updates,
            log_every=100,
            eval_every=0,
            checkpoint_every=args.updates,
            seed=seed,
            precision=args.precision,
        ),
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(name=f"seqrl-{seed}", root=tmp, config=cfg)
        _, results = train_dt(cfg, run, quiet=True, dataset=dataset)
    returns = np.asarray(results[0].returns, dtype=np.float64)
    return {"returns": returns.tolist(), "seconds": time.perf_counter() - start}


# --- d3rlpy side (worker in d3rlpy's interpreter) ------------------------------------------------


def d3rlpy_worker(args: argparse.Namespace) -> None:
    """Train and evaluate d3rlpy's DecisionTransformer; prints one JSON line with the returns."""
    import d3rlpy
    import gymnasium as gym
    import torch

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    data = np.load(args.npz)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"],
        actions=data["actions"],
        rewards=data["rewards"],
        terminals=data["terminals"],
        timeouts=data["timeouts"],
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from d3rlpy_peer import paper_gym_dt

    # d3rlpy's own reproduction script, with the warm-up scaled to the budget as on the seqrl side
    algo = paper_gym_dt(
        d3rlpy,
        warmup_steps=args.updates // 10,
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
    ).create(device="cpu:0")
    start = time.perf_counter()
    algo.fit(
        dataset,
        n_steps=args.updates,
        n_steps_per_epoch=args.updates,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        show_progress=False,
        save_interval=10**9,
    )
    trained = time.perf_counter()
    env = gym.make(args.env)
    actor = algo.as_stateful_wrapper(target_return=args.target)
    returns = []
    for episode in range(args.episodes):  # as d3rlpy's evaluate_transformer_with_environment
        actor.reset()
        observation, _ = env.reset(seed=10_000 + 100 * args.seed + episode)
        reward, total, done = 0.0, 0.0, False
        while not done:
            action = actor.predict(observation, reward)
            observation, reward, terminated, truncated, _ = env.step(action)
            reward = float(reward)
            total += reward
            done = terminated or truncated
        returns.append(total)
    env.close()
    end = time.perf_counter()
    print(
        json.dumps({"returns": returns, "seconds": end - start, "train_seconds": trained - start}),
        flush=True,
    )


def run_d3rlpy(npz: Path, seed: int, target: float, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`d3rlpy_worker` in d3rlpy's interpreter; returns its JSON result."""
    command = [
        args.d3rlpy_python,
        str(Path(__file__).resolve()),
        "--worker",
        "d3rlpy",
        "--npz",
        str(npz),
        "--seed",
        str(seed),
        "--target",
        str(target),
        "--updates",
        str(args.updates),
        "--episodes",
        str(args.episodes),
        "--threads",
        str(args.threads),
        "--env",
        args.env,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"d3rlpy worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- report -------------------------------------------------------------------------------------


def table(
    results: dict[str, list[dict[str, Any]]],
    seeds: list[int],
    target: float,
    data_line: str,
    args: argparse.Namespace,
) -> str:
    """The markdown table of per-seed and mean +- std returns and normalized scores."""
    finished = min(len(results["seqrl"]), len(results["d3rlpy"]))
    status = (
        ""
        if finished == len(seeds)
        else f" **Partial: {finished} of {len(seeds)} seed pairs finished.**"
    )
    command = (
        f"OMP_WAIT_POLICY=PASSIVE python examples/dt_vs_d3rlpy.py --updates {args.updates} --episodes {args.episodes} "
        f"--seeds {' '.join(map(str, seeds))} --threads {args.threads} --timestep-init {args.timestep_init}"
        + (f" --action-loss {args.action_loss}" if args.action_loss != "mean" else "")
        + (f" --window-anchor {args.window_anchor}" if args.window_anchor != "start" else "")
        + (f" --precision {args.precision}" if args.precision != "fp32" else "")
    )
    loss = (
        "the paper's action loss (squared error averaged over action dimensions)"
        if args.action_loss == "mean"
        else "`--model.action_loss sum` (the squared error summed over action dimensions, as "
        "d3rlpy's loss; the paper's code averages)"
    )
    if args.window_anchor == "end":
        loss += (
            " and `--window_anchor end` (training windows end at the drawn step, as d3rlpy cuts "
            "them; the paper's code starts them there)"
        )
    if args.precision == "bf16":
        loss += (
            ", with `--loop.precision bf16` (training and evaluation autocast to bfloat16; "
            "d3rlpy in float32)"
        )
    lines = [
        f"Command: `{command}`.{status}",
        "",
        f"**Reduced budget**: {args.updates} updates per run with a {args.updates // 10}-update warm-up "
        f"(the paper: 100k updates, 10k warm-up), {args.episodes} evaluation episodes per seed (the paper: 100); "
        "everything else is the paper's gym configuration on both sides (seqrl preset `dt-paper-gym` with "
        f"`window` evaluation, `--model.timestep_init {args.timestep_init}` and {loss}; d3rlpy 2.8.1 "
        "`DecisionTransformerConfig` as in its reproduction script, which initialises its timestep "
        "embedding at N(0, 0.02), evaluated with its `as_stateful_wrapper`).",
        "",
        f"{data_line} Target return {target:g} (the dataset's best episode return, rounded) on both sides; "
        "scores are D4RL-normalized with the halfcheetah constants (random -280.18, expert 12135.0).",
        "",
        "| library | per seed: return (normalized) | return, mean +- std | normalized, mean +- std | wall time per run (train + eval) |",
        "|---|---|---|---|---|",
    ]
    for lib in ("seqrl", "d3rlpy"):
        runs = results[lib]
        if not runs:
            continue
        means = np.array([np.mean(r["returns"]) for r in runs])
        norms = normalize(means)
        per_seed = ", ".join(
            f"s{r['seed']}: {m:.0f} ({n:.1f})" for r, m, n in zip(runs, means, norms, strict=True)
        )
        secs = [r["seconds"] for r in runs]
        lines.append(
            f"| {lib} | {per_seed} | {means.mean():.0f} +- {means.std():.0f} | {norms.mean():.1f} +- {norms.std():.1f} "
            f"| {np.mean(secs) / 60:.1f} min ({', '.join(f'{s / 60:.1f}' for s in secs)}) |"
        )
    load = (
        f"load average at the end {os.getloadavg()[0]:.1f}"
        if not args.from_results
        else f"table rendered afterwards from `--from-results {Path(args.from_results).name}`"
    )
    lines += [
        "",
        f"Machine: {os.cpu_count()} CPU cores shared with other jobs, torch threads {args.threads} on both sides, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, {load}; wall times are therefore only indicative (speed is measured in `benchmarks/dt.py`). "
        "Std is over seeds (population std); each seed's return is the mean over its episodes.",
    ]
    return "\n".join(lines)


def write_doc(markdown: str) -> None:
    """Replace the d3rlpy section of ``docs/dt.md`` (appending heading and markers if absent)."""
    text = DOC.read_text()
    block = f"{BEGIN}\n{markdown}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    parser.add_argument(
        "--timestep-init",
        choices=["torch", "gpt2", "zeros"],
        default="gpt2",
        help="seqrl's timestep embedding init; gpt2 = N(0, 0.02), as d3rlpy initialises its own",
    )
    parser.add_argument(
        "--action-loss",
        choices=["mean", "sum"],
        default="mean",
        help="seqrl's squared action error over action dimensions: mean (the paper's code) or "
        "sum (as d3rlpy's loss)",
    )
    parser.add_argument(
        "--window-anchor",
        choices=["start", "end"],
        default="start",
        help="seqrl's training windows start at the drawn step (the paper's code) or end there "
        "(as d3rlpy's)",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="seqrl's --loop.precision (d3rlpy: float32 always)",
    )
    parser.add_argument(
        "--cache", default="~/.cache/seqrl/demo", help="where the demo dataset is kept"
    )
    parser.add_argument(
        "--d3rlpy-python", default=D3RLPY_PYTHON, help="interpreter of the d3rlpy venv"
    )
    parser.add_argument(
        "--only",
        choices=["both", "seqrl", "d3rlpy"],
        default="both",
        help="run one side only (sizing)",
    )
    parser.add_argument(
        "--results", default="", help="JSON file the per-seed results are written to as they finish"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; do not update docs/dt.md"
    )
    parser.add_argument(
        "--from-results",
        default="",
        help="train nothing: render the table from a --results file of an earlier run (the other "
        "flags must be those of that run)",
    )
    # worker-only arguments
    parser.add_argument("--worker", choices=["d3rlpy"], help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "d3rlpy":
        d3rlpy_worker(args)
        return

    from seqrl.agents.demo import DemoConfig, build_dataset

    dataset = build_dataset(replace(DemoConfig(), env=args.env, cache=args.cache), quiet=True)
    returns = dataset.episode_returns
    target = round(float(np.max(returns)), -1)
    data_line = (
        f"Data: the demo's mixed-quality {args.env} dataset, {len(dataset)} episodes, {dataset.num_steps} steps, "
        f"episode returns {np.min(returns):.0f} to {np.max(returns):.0f} (mean {np.mean(returns):.0f})."
    )
    results: dict[str, list[dict[str, Any]]] = {"seqrl": [], "d3rlpy": []}
    if args.from_results:
        try:
            saved = json.loads(Path(args.from_results).read_text())
            results, saved_target = saved["results"], float(saved["target"])
        except (OSError, ValueError, KeyError) as exc:
            print(
                f"--from-results {args.from_results}: not a results file ({exc})", file=sys.stderr
            )
            raise SystemExit(2) from None
        if saved_target != target:
            print(
                f"--from-results {args.from_results}: target {saved_target:g}, this dataset's is "
                f"{target:g}",
                file=sys.stderr,
            )
            raise SystemExit(2)
        markdown = table(results, args.seeds, target, data_line, args)
        if not args.no_write:
            write_doc(markdown)
        print(markdown)
        return
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "data.npz"
        export_npz(dataset, npz)
        for seed in args.seeds:
            for lib in ("seqrl", "d3rlpy"):
                if args.only not in ("both", lib):
                    continue
                out = (
                    run_seqrl(dataset, seed, target, args)
                    if lib == "seqrl"
                    else run_d3rlpy(npz, seed, target, args)
                )
                out["seed"] = seed
                results[lib].append(out)
                ret = float(np.mean(out["returns"]))
                print(
                    json.dumps(
                        {
                            "lib": lib,
                            "seed": seed,
                            "return": round(ret, 1),
                            "normalized": round(float(normalize(ret)), 2),
                            "seconds": round(out["seconds"], 1),
                            "returns": [round(r, 1) for r in out["returns"]],
                        }
                    ),
                    flush=True,
                )
                if args.results:
                    Path(args.results).write_text(
                        json.dumps({"target": target, "results": results}, indent=1)
                    )
            if args.only == "both":
                markdown = table(results, args.seeds, target, data_line, args)
                if not args.no_write:
                    write_doc(markdown)
    if args.only == "both":
        print(markdown)


if __name__ == "__main__":
    main()
