"""Overhead of seqrl's rollout loop over raw gymnasium vector stepping (random agent).

For each env the same vector env (``seqrl.envs.make_vec_env``, 8 envs, SAME_STEP autoreset) is
stepped in turn (A B C A B C ...) by

- A: a bare loop ``vec_env.step(vec_env.action_space.sample())``;
- B: ``run_episodes(RandomAgent, steps=S, record=False)``: what ``evaluate`` runs;
- C: ``run_episodes(..., record=True)``: what ``rollout`` / ``seqrl collect`` run (arrays kept);
- D: B on the envpool backend (``EnvConfig(backend="envpool")``, same 8 envs), when envpool is
  installed.

Reported: median steps/s of each over the repeats, by wall clock and by process CPU time (the
machines are shared; CPU time is less sensitive to other processes), the medians of the paired
ratios (each B run over the A run next to it) B/A and C/A
(target for B: at least 0.9), and D/A (what the envpool backend gains). Then E: the loop's
own time per vector step, against a zero-cost vector env (episodes end with CartPole's rate). Run: ``python benchmarks/envs.py [--quick]``; writes the ``envs`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from gymnasium.vector import AutoresetMode, VectorEnv  # noqa: E402
from gymnasium.vector.utils import batch_space  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_line, write_section  # noqa: E402
from seqrl.agents import RandomAgent  # noqa: E402
from seqrl.envs import EnvConfig, make_vec_env, run_episodes  # noqa: E402
from seqrl.envs.envpool_backend import envpool_available  # noqa: E402

NUM_ENVS = 8
ENVS = {  # env id -> total transitions per measurement
    "CartPole-v1": 16_000,
    "Hopper-v5": 8_000,
    "ALE/Pong-v5": 4_000,
}


def raw_steps(vec_env, steps: int) -> tuple[float, float]:
    """A: (wall, CPU) steps/s of bare vector stepping with batched random actions."""
    calls = steps // vec_env.num_envs
    wall, cpu = time.perf_counter(), time.process_time()
    vec_env.reset(seed=0)  # timed, as in the loop
    vec_env.action_space.seed(0)
    for _ in range(calls):
        vec_env.step(vec_env.action_space.sample())
    done = calls * vec_env.num_envs
    return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)


class ZeroCostVectorEnv(VectorEnv):
    """E: a vector env that costs (almost) nothing; env i's episode ends with probability 1/22."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._dones = np.random.default_rng(0).random((4096, num_envs)) < 1 / 22
        self._obs = np.zeros((num_envs, 4), np.float32)
        self._final = np.array([self._obs[0]] * num_envs, dtype=object)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        self._t = 0
        return self._obs.copy(), {}

    def step(self, actions):
        self._t += 1
        dones = self._dones[self._t % 4096]
        info = {"final_obs": self._final} if dones.any() else {}
        n = self.num_envs
        return self._obs.copy(), np.ones(n), dones.copy(), np.zeros(n, dtype=bool), info


def loop_overhead_us(repeats: int, calls: int = 2000) -> float:
    """E: median extra microseconds per vector step of ``run_episodes`` over a bare loop."""
    vec_env = ZeroCostVectorEnv(NUM_ENVS)
    extra = []
    for _ in range(repeats):  # A B A B ...
        t = time.perf_counter()
        vec_env.reset(seed=0)
        for _ in range(calls):
            vec_env.step(vec_env.action_space.sample())
        bare = time.perf_counter() - t
        agent = RandomAgent(vec_env.single_action_space, seed=0)
        t = time.perf_counter()
        run_episodes(agent, vec_env, steps=calls * NUM_ENVS, seed=0, record=False)
        extra.append((time.perf_counter() - t - bare) / calls * 1e6)
    return statistics.median(extra)


def loop_steps(vec_env, steps: int, record: bool) -> tuple[float, float]:
    """B / C: (wall, CPU) steps/s of seqrl's rollout loop with a random agent."""
    agent = RandomAgent(vec_env.single_action_space, seed=0)
    wall, cpu = time.perf_counter(), time.process_time()
    played = run_episodes(agent, vec_env, steps=steps, seed=0, record=record)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert sum(e.length for e in played) == steps
    return steps / wall, steps / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps, no doc update")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with_envpool = envpool_available()
    for env_id, steps in ENVS.items():
        steps = steps // 10 if args.quick else steps
        vec_env = make_vec_env(EnvConfig(id=env_id, num_envs=NUM_ENVS))
        pool = None
        if with_envpool:
            pool = make_vec_env(EnvConfig(id=env_id, num_envs=NUM_ENVS, backend="envpool"))
            loop_steps(pool, NUM_ENVS * 50, record=False)  # warm-up
        loop_steps(vec_env, NUM_ENVS * 50, record=False)  # warm-up
        a, b, c, d = [], [], [], []
        for _ in range(args.repeats):  # A B C D A B C D ...
            a.append(raw_steps(vec_env, steps))
            b.append(loop_steps(vec_env, steps, record=False))
            c.append(loop_steps(vec_env, steps, record=True))
            if pool is not None:
                d.append(loop_steps(pool, steps, record=False))
        vec_env.close()
        if pool is not None:
            pool.close()
        for k, clock in enumerate(("wall", "CPU")):
            ma, mb, mc = (statistics.median(x[k] for x in runs) for runs in (a, b, c))
            md = statistics.median(x[k] for x in d) if d else float("nan")
            rb, rc = (
                statistics.median(x[k] / y[k] for x, y in zip(r, a, strict=True)) for r in (b, c)
            )
            rd = (
                statistics.median(x[k] / y[k] for x, y in zip(d, a, strict=True))
                if d
                else float("nan")
            )
            rows.append((env_id, clock, steps, ma, mb, rb, mc, rc, md, rd))
            print(
                f"{env_id:<14} {clock:<4} raw {ma:>9.0f}  evaluate {mb:>9.0f} ({rb:.2f})  "
                f"record {mc:>9.0f} ({rc:.2f})  envpool evaluate {md:>9.0f} ({rd:.2f})"
            )
    overhead = loop_overhead_us(args.repeats)
    print(f"loop overhead against a zero-cost vector env: {overhead:.1f} us per vector step")
    lines = [
        "## Environments: rollout-loop overhead (`benchmarks/envs.py`)",
        "",
        f"`python benchmarks/envs.py` on {machine_line()}; torch threads 1.",
        f"{NUM_ENVS} envs (`make_vec_env`, SyncVectorEnv, SAME_STEP autoreset, Atari with the `dqn` preset),",
        f"random agent, median of {args.repeats} alternating repeats (A B C D ...).",
        "",
        "| env | clock | steps | A: raw `vec_env.step` steps/s | B: `evaluate` loop steps/s | B/A | C: `rollout` (arrays kept) steps/s | C/A | D: `evaluate` loop, envpool backend steps/s | D/A |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for env_id, clock, steps, ma, mb, rb, mc, rc, md, rd in rows:
        lines.append(
            f"| {env_id} | {clock} | {steps} | {ma:.0f} | {mb:.0f} | {rb:.2f} | {mc:.0f} | {rc:.2f} | {md:.0f} | {rd:.2f} |"
        )
    lines += [
        "",
        "Ratios are medians of paired ratios (each run over the raw run next to it).",
        "Target: B/A >= 0.90 (evaluator overhead within 10% of raw vector stepping). On a shared",
        "machine the wall-clock ratios move by about 15% between identical runs; the CPU-time ratios",
        f"measure the loop's own cost. E: the loop adds {overhead:.1f} us per vector step of {NUM_ENVS} envs",
        "(median over the repeats, against a zero-cost vector env whose episodes end as often as",
        "CartPole's; a random agent's actions cost the same on both sides), which matters only for",
        f"envs as cheap as CartPole ({rows[0][0]}: {NUM_ENVS / rows[0][3] * 1e6:.0f} us per raw vector step here). C keeps every",
        "observation, action and reward (what `seqrl collect` needs). D runs the same loop on",
        '`EnvConfig(backend="envpool")` (envpool\'s default threads; its CPU time counts all of',
        "them; `nan`: envpool not installed); its NEXT_STEP reset calls are not counted as steps.",
    ]
    if not args.quick:
        write_section("envs", "\n".join(lines))
        print("wrote the envs section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
