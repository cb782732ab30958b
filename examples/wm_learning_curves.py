"""Learning curves of a world-model agent over several seeds, written into ``docs/world_models.md``.

Each seed is one ``seqrl train twm`` or ``seqrl train iris`` run (the algorithm is the preset's
prefix; the policy learns only from imagined rollouts); the
table lists the periodic evaluation returns (mean and spread over seeds) against environment
steps, the final evaluation, a uniform random policy's return on the same env, and the CPU time of
each run. Runs that were killed resume from their last checkpoint; finished runs are reused::

    python examples/wm_learning_curves.py --preset twm-cartpole --seeds 0 1 2 --jobs 2
    python examples/wm_learning_curves.py --preset twm-minatar --seeds 0 1 2 --jobs 2
    python examples/wm_learning_curves.py --preset iris-minatar --seeds 0 1 2 --jobs 2

TWM's tables go to ``docs/world_models.md``, IRIS's to ``docs/iris.md`` (section
``learning-<preset>``).

Extra ``--a.b=v`` arguments are passed to every run (e.g. ``--collect.steps=5000``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOCS = {"twm": ROOT / "docs" / "world_models.md", "iris": ROOT / "docs" / "iris.md"}


def algorithm(preset: str) -> str:
    """The ``seqrl train`` command of a preset, its name's prefix (``twm-minatar`` -> ``twm``)."""
    return preset.split("-")[0]


def run_seed(preset: str, seed: int, runs: Path, extra: list[str], threads: int) -> Path:
    """Train (or resume, or reuse) one seed's run; returns its run directory."""
    run_dir = runs / f"{preset}-seed{seed}"
    if (run_dir / "result.json").exists():  # written by the run when it finished
        return run_dir
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    algo = algorithm(preset)
    base = [sys.executable, "-m", "seqrl", "train", algo, "--run-dir", str(run_dir), "--quiet"]
    if (run_dir / "checkpoints" / "last.pt").exists():
        cmd = [*base, "--resume"]
    else:
        cmd = [*base, "--preset", preset, f"--loop.seed={seed}", f"--env.seed={seed}", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed} failed:\n{proc.stdout}\n{proc.stderr}")
    return run_dir


def eval_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    """(env steps, eval return) of every evaluation in the run's metrics.jsonl (final last)."""
    steps, returns = [], []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "eval/return" in row:
            steps.append(int(row["step"]))
            returns.append(float(row["eval/return"]))
    return steps, returns


def random_return(env_id: str, episodes: int = 30) -> float:
    """Mean return of a uniform random policy through the shared evaluator."""
    from seqrl.agents.baselines import RandomAgent
    from seqrl.envs import EnvConfig, evaluate, make_env

    env = make_env(EnvConfig(id=env_id))
    agent = RandomAgent(env.action_space, seed=0)
    env.close()
    return evaluate(agent, EnvConfig(id=env_id), episodes=episodes, seed=123).mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="twm-cartpole")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "curves")
    args, extra = parser.parse_known_args()
    algo = algorithm(args.preset)
    if algo not in DOCS:
        parser.error(f"--preset {args.preset}: expected a twm-* or iris-* preset")
    threads = max((os.cpu_count() or 1) // args.jobs, 1)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(args.jobs) as pool:
        dirs = list(
            pool.map(lambda s: run_seed(args.preset, s, args.runs, extra, threads), args.seeds)
        )

    config = json.loads((dirs[0] / "config.json").read_text())
    env_id = config["env"]["id"]
    curves = [eval_curve(d) for d in dirs]
    steps = curves[0][0]
    table = np.array([c[1][: len(steps)] for c in curves])  # (seeds, evaluations)
    results = [json.loads((d / "result.json").read_text()) for d in dirs]
    rand = random_return(env_id)
    lines = [
        f"`python examples/wm_learning_curves.py --preset {args.preset} --seeds "
        f"{' '.join(map(str, args.seeds))}{' ' + ' '.join(extra) if extra else ''}`: "
        f"{env_id}, {config['collect']['steps']} env steps "
        f"(the first {config['collect']['prefill']} random), "
        f"{config['eval']['episodes']} evaluation episodes "
        f"({config['eval']['final_episodes']} at the end), policy trained only in imagination. "
        f"Uniform random policy: {rand:.2f}.",
        "",
        "| env steps | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean +- std |",
        "|---|" + "---|" * (len(args.seeds) + 1),
    ]
    for j, step in enumerate(steps):
        row = table[:, j]
        label = f"{step} (final)" if j == len(steps) - 1 else str(step)
        lines.append(
            f"| {label} | "
            + " | ".join(f"{v:.1f}" for v in row)
            + f" | {row.mean():.1f} +- {row.std():.1f} |"
        )
    cpu = [r["cpu_s"] / 60 for r in results]
    wall = [r["wall_s"] / 60 for r in results]
    lines += [
        "",
        f"CPU time per run: {np.mean(cpu):.1f} min (wall {np.mean(wall):.1f} min, "
        f"{args.jobs} run(s) at once on {os.cpu_count()} cores, {threads} thread(s) each).",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    sys.path.insert(0, str(ROOT))
    from benchmarks.report import write_section

    write_section(f"learning-{args.preset}", markdown, doc=DOCS[algo])


if __name__ == "__main__":
    main()
