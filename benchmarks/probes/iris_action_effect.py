"""Probe: does an IRIS world model's next frame depend on the action?

Loads an ``iris`` run's last checkpoint and replay buffer and prints, on 64 replay windows of the
GPT's length, its teacher-forced losses with the actions taken and with uniform random actions
instead. A GPT that uses the action predicts the next frame worse with the wrong one; equal
losses mean it ignores the action. On MinAtar Breakout runs (rgb frames) it also imagines 6 steps
from 128 replay contexts with a constant action (no-op, left, right) and prints the mean paddle
column of each imagined frame (in the game, left and right move the paddle one column a step),
and how often the replay's paddle moved the way its action says.

``--fresh N`` instead trains new GPTs for N updates on the run's replay, on the tokens of the
checkpoint's (frozen) tokenizer, once per ``--variants`` name (the run's configuration with one
change, or several joined by ``+``, same seeds: see ``VARIANTS``), and prints the two losses
every ``--every`` updates: whether a GPT learns to use the action, and how soon.

A diagnostic, not a peer benchmark: docs/iris.md (MinAtar section) quotes its output::

    python benchmarks/probes/iris_action_effect.py runs/t13/iris-minatar-seed0
    python benchmarks/probes/iris_action_effect.py runs/t13/iris-minatar-seed0 --fresh 3000 \\
        --every 250 --variants run action-inputs lr1e-3 action-inputs+lr1e-3
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from seqrl.checkpoint import load_checkpoint, load_state
from seqrl.config import from_dict
from seqrl.data import ReplayBuffer, SequenceSampler
from seqrl.envs.minatar import is_minatar
from seqrl.training import seed_everything, update
from seqrl.world_models.imagination import imagine
from seqrl.world_models.iris import build_world_model
from seqrl.world_models.loop import build_learner, make_samplers
from seqrl.world_models.train_iris import IRISAgentConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagined_ends import PADDLE, imagined_frames, run_palette  # noqa: E402 (sibling probes)
from minatar_reconstruction import cells  # noqa: E402

ACTIONS = ((0, "no-op"), (1, "left"), (2, "right"))  # MinAtar/Breakout-v1's minimal action set

VARIANTS = {
    "run": lambda d: d,
    "rotary": lambda d: replace(d, backbone=replace(d.backbone, positions="rotary")),
    "action-inputs": lambda d: replace(d, action_inputs=True),
    "depth4": lambda d: replace(d, backbone=replace(d.backbone, depth=4)),
    "width128": lambda d: replace(d, backbone=replace(d.backbone, width=128, heads=4)),
    "lr1e-3": lambda d: replace(d, lr=1e-3),
}
"""``--variants`` name -> the change to the run's ``DynamicsConfig``."""


def action_losses(model: torch.nn.Module, batch, num_actions: int) -> tuple[dict, dict]:
    """The GPT's eval-mode metrics on ``batch`` with its actions and with random ones."""
    g = torch.Generator().manual_seed(0)
    shuffled = replace(
        batch, actions=torch.randint(0, num_actions, batch.actions.shape, generator=g)
    )
    was_training = model.training
    model.eval()
    with torch.no_grad():
        taken = model.dynamics.loss(batch).metrics
        random = model.dynamics.loss(shuffled).metrics
    model.train(was_training)
    return taken, random


class ConstantAction:
    """A policy with the actor-critic's interface that always takes ``action`` and records the
    paddle's column in each frame it is given (NaN where none is drawn)."""

    def __init__(self, action: int, palette: np.ndarray) -> None:
        self.action, self.palette, self.columns = action, palette, []

    def burn_in(self, features: torch.Tensor, mask: torch.Tensor) -> None:
        return None

    def step(self, feature: torch.Tensor, state: None) -> tuple[torch.Tensor, None, None]:
        frames = imagined_frames(feature)
        self.columns.append(paddle_columns(frames, self.palette))
        logits = torch.full((len(frames), 3), -30.0)
        logits[:, self.action] = 30.0
        return logits, None, None


def paddle_columns(frames: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 frames -> the paddle's leftmost column (NaN where none)."""
    bottom = cells(frames, palette)[:, -1]
    return np.array(
        [np.flatnonzero(row == PADDLE)[0] if (row == PADDLE).any() else np.nan for row in bottom]
    )


def replay_agreement(replay: ReplayBuffer, palette: np.ndarray, n: int = 2000) -> str:
    """How often, over ``n`` replay steps, the paddle moved the way the action says."""
    batch = SequenceSampler(replay, seq_len=2).sample(n, np.random.default_rng(0))
    frames = batch.observations.numpy()
    moved = paddle_columns(frames[:, 1], palette) - paddle_columns(frames[:, 0], palette)
    actions = batch.actions[:, 0].numpy()
    parts = []
    for action, name, expected in ((0, "no-op", 0), (1, "left", -1), (2, "right", 1)):
        seen = (actions == action) & ~np.isnan(moved)
        parts.append(f"{name} {float((moved[seen] == expected).mean()):.3f} of {int(seen.sum())}")
    return "share of steps where the paddle moved as the action says: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an iris run directory")
    parser.add_argument("--fresh", type=int, default=0, help="train new GPTs N updates")
    parser.add_argument(
        "--variants", nargs="+", default=["run"], help=f"each {sorted(VARIANTS)} or a+b (both)"
    )
    parser.add_argument("--every", type=int, default=300, help="with --fresh: report interval")
    args = parser.parse_args()
    if args.fresh < 0 or args.every <= 0:
        parser.error("--fresh must not be negative, --every must be positive")
    for variant in args.variants:
        if unknown := set(variant.split("+")) - set(VARIANTS):
            parser.error(f"--variants: unknown {sorted(unknown)} (known: {sorted(VARIANTS)})")
    ckpt = load_checkpoint(args.run, algo="iris")
    cfg = from_dict(IRISAgentConfig, ckpt.config)
    replay = ReplayBuffer.load(args.run / str(ckpt.extra["replay"]))
    num_actions = int(ckpt.extra["num_actions"])
    seq_len = cfg.world_model.dynamics.sequence_length
    fixed = SequenceSampler(replay, seq_len=seq_len).sample(64, np.random.default_rng(123))
    print(f"{args.run}: checkpoint at env step {ckpt.step}; 64 replay windows of {seq_len} steps")
    if args.fresh:
        fresh(cfg, ckpt, replay, fixed, num_actions, args)
        return
    learner = build_learner(
        cfg, replay.observation_space, replay.action_space, build_world_model, torch.device("cpu")
    )
    model = learner.world_model
    load_state(model, ckpt.state["world_model"], what="world model", path=ckpt.path)
    taken, random = action_losses(model, fixed, num_actions)
    print("| actions | next-token loss | token accuracy | end loss |")
    print("|---|---|---|---|")
    for name, m in (("taken", taken), ("uniform random", random)):
        print(f"| {name} | {m['obs_loss']:.4f} | {m['obs_accuracy']:.4f} | {m['end_loss']:.4f} |")
    if not (is_minatar(cfg.env.id) and "Breakout" in cfg.env.id):
        return
    _, ac_sampler = make_samplers(learner, replay, cfg)
    palette = run_palette(cfg.env)
    print(f"\nreplay: {replay_agreement(replay, palette)}")
    print("\nmean paddle column of each imagined frame (the first: the real context's last)")
    for action, name in ACTIONS:
        policy = ConstantAction(action, palette)
        context = ac_sampler.sample(128, seed_everything(0))
        imagine(model, policy, context, 6, temperature=1.0)
        columns = " ".join(f"{c:.2f}" for c in np.nanmean(np.array(policy.columns), axis=1))
        print(f"always {name}: {columns}")


def fresh(cfg, ckpt, replay, fixed, num_actions: int, args: argparse.Namespace) -> None:
    """Train a new GPT per variant on the frozen tokenizer's tokens."""
    print("| GPT | updates | loss, actions taken | loss, random actions | gap | s |")
    print("|---|---|---|---|---|---|")
    for variant in args.variants:
        wm_cfg = replace(
            cfg.world_model,
            tokenizer=replace(cfg.world_model.tokenizer, cache_tokens=True),  # frozen: same tokens
            dynamics=functools.reduce(
                lambda d, name: VARIANTS[name](d), variant.split("+"), cfg.world_model.dynamics
            ),
        )
        seed_everything(1)
        model = build_world_model(wm_cfg, replay.observation_space, replay.action_space)
        tokenizer = {
            k.removeprefix("tokenizer."): v
            for k, v in ckpt.state["world_model"].items()
            if k.startswith("tokenizer.")
        }
        model.tokenizer.load_state_dict(copy.deepcopy(tokenizer))
        spec = model.training_spec("world_model")
        optimizer = torch.optim.Adam(model.dynamics.parameters(), lr=spec.lr, eps=spec.eps)
        sampler = SequenceSampler(replay, seq_len=spec.seq_len, burn_in=spec.burn_in, pad_end=True)
        rng = np.random.default_rng(1)
        model.train()
        start = time.perf_counter()
        for i in range(1, args.fresh + 1):
            batch = sampler.sample(spec.batch_size, rng)
            update(model.dynamics.loss, batch, optimizer, clip_norm=spec.clip_norm)
            if i % args.every == 0 or i == args.fresh:
                taken, random = action_losses(model, fixed, num_actions)
                a, b = taken["obs_loss"], random["obs_loss"]
                print(
                    f"| {variant} | {i} | {a:.4f} | {b:.4f} | {b - a:.4f} "
                    f"| {time.perf_counter() - start:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a diagnostic: one line, not a traceback
        sys.exit(f"error: {exc}")
