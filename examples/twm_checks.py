"""TWM's CPU checks on real ALE frames (issue 7): reconstruction, next-frame and open-loop error.

Collects frames of a named game with a random policy (gymnasium ``AtariPreprocessing``: frame skip
4, max-pool, 64x64 grayscale; single frames, no stack, to keep the run cheap), trains a small TWM
(``twm-minatar`` sizes with 32 x 32 latents) on the first episodes' windows and evaluates on held-out windows of the
last part against the copy-the-previous-frame baseline, over all pixels and over changed pixels
(``seqrl.world_models.evaluation``). Writes the table into the "checks" section of ``docs/twm.md``::

    python examples/twm_checks.py --game Pong --frames 3000 --updates 1500

About 5 minutes on 2 idle CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import time
from pathlib import Path

import ale_py
import gymnasium as gym
import numpy as np
import seqrl  # noqa: F401  (sets OMP_WAIT_POLICY)
import torch
from seqrl.types import TrajectoryBatch
from seqrl.world_models.evaluation import WorldModelReport, evaluate_world_model
from seqrl.world_models.twm import build_world_model, twm_minatar

DOC = Path(__file__).resolve().parent.parent / "docs" / "twm.md"


def collect_frames(game: str, frames: int, seed: int) -> tuple[list[tuple[np.ndarray, ...]], int]:
    """Random-policy episodes (observations (T, 64, 64) uint8, actions, rewards, terminals) and
    the number of actions."""
    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
    env = gym.wrappers.AtariPreprocessing(
        env, frame_skip=4, screen_size=64, grayscale_obs=True, noop_max=0
    )
    rng = np.random.default_rng(seed)
    episodes, total = [], 0
    obs, _ = env.reset(seed=seed)
    while total < frames:
        o, a, r, d = [], [], [], []
        done = False
        while not done and total < frames:
            action = int(rng.integers(env.action_space.n))
            nxt, reward, term, trunc, _ = env.step(action)
            o.append(obs), a.append(action), r.append(reward), d.append(term)
            obs, total, done = nxt, total + 1, term or trunc
        episodes.append((np.stack(o), np.array(a), np.array(r, np.float32), np.array(d)))
        obs, _ = env.reset()
    return episodes, int(env.action_space.n)


def windows(episodes: list, length: int, stride: int) -> list[tuple[np.ndarray, ...]]:
    """All windows of ``length`` steps inside one episode."""
    return [
        tuple(x[s : s + length] for x in ep)
        for ep in episodes
        for s in range(0, len(ep[1]) - length + 1, stride)
    ]


def to_batch(rows: list[tuple[np.ndarray, ...]], burn_in: int) -> TrajectoryBatch:
    """Stack windows into a TrajectoryBatch with ``burn_in`` leading context slots."""
    b, t = len(rows), len(rows[0][1])
    burn = torch.zeros(b, t, dtype=torch.bool)
    burn[:, :burn_in] = True
    return TrajectoryBatch(
        observations=torch.from_numpy(np.stack([w[0] for w in rows])),
        actions=torch.from_numpy(np.stack([w[1] for w in rows])).long(),
        rewards=torch.from_numpy(np.stack([w[2] for w in rows])),
        returns_to_go=torch.zeros(b, t),
        timesteps=torch.zeros(b, t, dtype=torch.long),
        mask=torch.ones(b, t, dtype=torch.bool),
        terminals=torch.from_numpy(np.stack([w[3] for w in rows])),
        extras={"burn_in": burn},
    )


def run(args: argparse.Namespace) -> tuple[WorldModelReport, dict[str, float]]:
    """Collect, train, evaluate; returns the report and run facts."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    steps, num_actions = collect_frames(args.game, args.frames, args.seed)
    # hold out the last fifth of the frames (the tail of the last episode(s))
    flat = [(i, s) for i, ep in enumerate(steps) for s in range(len(ep[1]))]
    cut = flat[int(0.8 * len(flat))]
    train_eps = steps[: cut[0]] + [tuple(x[: cut[1]] for x in steps[cut[0]])]
    test_eps = [tuple(x[cut[1] :] for x in steps[cut[0]])] + steps[cut[0] + 1 :]
    seq = args.burn_in + args.seq_len
    train = windows([e for e in train_eps if len(e[1]) >= seq], seq, 1)
    test = windows(
        [e for e in test_eps if len(e[1]) >= args.context + args.horizon],
        args.context + args.horizon,
        4,
    )
    cfg = twm_minatar()
    cfg = dataclasses.replace(
        cfg,
        obs=dataclasses.replace(
            cfg.obs, categoricals=args.latents, classes=args.latents, channels=args.channels
        ),
        optim=dataclasses.replace(cfg.optim, lr=args.lr),
        burn_in=args.burn_in,
        sequence_length=args.seq_len,
    )
    obs_space = gym.spaces.Box(0, 255, (64, 64), np.uint8)
    model = build_world_model(cfg, obs_space, gym.spaces.Discrete(num_actions))
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay
    )
    train_start = time.time()
    for update in range(args.updates):
        idx = rng.integers(len(train), size=args.batch_size)
        out = model.loss(to_batch([train[i] for i in idx], args.burn_in))
        opt.zero_grad()
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_norm)
        opt.step()
        if update % 100 == 0:
            print(
                f"update {update}: loss {out.total.item():.1f} "
                f"decoder {float(out.metrics['decoder_loss']):.1f} z_ce {float(out.metrics['z_ce']):.2f}",
                flush=True,
            )
    model.eval()
    report = evaluate_world_model(
        model, to_batch(test, 0), context=args.context, horizon=args.horizon
    )
    facts = {
        "train_frames": sum(len(e[1]) for e in train_eps),
        "test_windows": len(test),
        "train_seconds": time.time() - train_start,
        "total_seconds": time.time() - start,
    }
    return report, facts


def table(args: argparse.Namespace, report: WorldModelReport, facts: dict[str, float]) -> str:
    """The markdown section written into docs/twm.md."""
    nf, ol = report.next_frame, report.open_loop
    load = os.getloadavg()[0]
    return "\n".join(
        [
            f"`python examples/twm_checks.py --game {args.game} --frames {args.frames} --updates {args.updates} "
            f"--latents {args.latents} --channels {args.channels} --lr {args.lr}` "
            f"(seed {args.seed}; {facts['train_frames']} training frames, {facts['test_windows']} held-out "
            f"windows of {args.context} context + {args.horizon} steps; training {facts['train_seconds']:.0f} s "
            f"on the CPU, load average {load:.1f}). Mean squared error on the [0, 1] pixel scale; "
            "reconstruction error of the held-out frames is "
            f"{report.reconstruction:.5f}.",
            "",
            "| prediction | model, all pixels | copy, all pixels | model, changed pixels | copy, changed pixels | changed share |",
            "|---|---|---|---|---|---|",
            f"| next frame | {nf.model_all:.5f} | {nf.copy_all:.5f} | {nf.model_changed:.4f} | {nf.copy_changed:.4f} | {nf.changed_fraction:.4f} |",
            f"| open loop, {report.horizon} steps | {ol.model_all:.5f} | {ol.copy_all:.5f} | {ol.model_changed:.4f} | {ol.copy_changed:.4f} | {ol.changed_fraction:.4f} |",
        ]
    )


def write_section(markdown: str) -> None:
    """Replace the text between the checks markers of docs/twm.md."""
    text = DOC.read_text()
    new = re.sub(
        r"(<!-- BEGIN checks -->\n).*?(\n<!-- END checks -->)",
        lambda m: m.group(1) + markdown + m.group(2),
        text,
        flags=re.S,
    )
    DOC.write_text(new)


def main() -> None:
    """Parse arguments, run the check, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=8)
    parser.add_argument("--burn-in", type=int, default=1)
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latents", type=int, default=32, help="categoricals = classes")
    parser.add_argument("--channels", type=int, default=16, help="CNN base channels")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    report, facts = run(args)
    markdown = table(args, report, facts)
    print(markdown)
    if not args.no_write:
        write_section(markdown)


if __name__ == "__main__":
    main()
