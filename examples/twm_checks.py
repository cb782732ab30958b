"""TWM's CPU checks on real ALE frames (issue 7): reconstruction, next-frame and open-loop error.

Plays a named game with a uniform random policy through seqrl's env layer (the TWM Atari
protocol: frame skip 4 with max-pooling, 64x64 grayscale; single frames, no stack, to keep the run
cheap), trains a small TWM (CNN width 16, 3 layers of width 128) on 80% of the steps with seqrl's
sampler and update step (observation model first, as the paper pretrains it, then everything), and
evaluates on held-out windows of the other 20% (episodes from other seeds) against the copy-the-previous-frame baseline, over all
pixels and over the pixels that change (``seqrl.world_models.evaluation``). Writes the table into
the "checks" section of ``docs/twm.md``::

    python examples/twm_checks.py --game Pong --frames 3000 --pretrain 500 --updates 1500

About 5 to 10 minutes on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import torch
from seqrl.agents.baselines import RandomAgent
from seqrl.backbone import TransformerConfig
from seqrl.data import DatasetMetadata, SequenceSampler, TrajectoryDataset
from seqrl.envs import EnvConfig, atari_preset, make_vec_env, rollout
from seqrl.training import seed_everything, update
from seqrl.world_models.evaluation import WorldModelReport, evaluate_world_model
from seqrl.world_models.twm import (
    DynamicsConfig,
    ObservationModelConfig,
    TWMConfig,
    WorldModelOptimConfig,
    build_world_model,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "twm.md"


def collect(game: str, frames: int, seed: int) -> tuple[TrajectoryDataset, TrajectoryDataset]:
    """Random-policy steps of ``game``: 80% for training and, from other seeds, 20% held out."""
    atari = dataclasses.replace(atari_preset("twm"), frame_stack=1)
    vec = make_vec_env(EnvConfig(id=f"ALE/{game}-v5", atari=atari), train=True)
    agent = RandomAgent(vec.single_action_space, seed=seed)
    train = rollout(agent, vec, steps=int(0.8 * frames), seed=seed)
    test = rollout(agent, vec, steps=frames - int(0.8 * frames), seed=seed + 1000)
    spaces = {
        "observation_space": vec.single_observation_space,
        "action_space": vec.single_action_space,
    }
    vec.close()
    return tuple(  # type: ignore[return-value]
        TrajectoryDataset.from_trajectories(
            part, DatasetMetadata(name=name, env_id=f"ALE/{game}-v5", **spaces)
        )
        for name, part in (("train", train), ("test", test))
    )


def run(args: argparse.Namespace) -> tuple[WorldModelReport, dict[str, float]]:
    """Collect, train, evaluate; returns the report and run facts."""
    rng = seed_everything(args.seed)
    start = time.time()
    train, test = collect(args.game, args.frames, args.seed)
    cfg = TWMConfig(  # a small TWM: 1/3 of the paper's CNN width, 3 of its 10 layers
        obs=ObservationModelConfig(
            kind="image",
            categoricals=args.latents,
            classes=args.latents,
            channels=args.channels,
            hidden=(256,),
        ),
        dynamics=DynamicsConfig(
            backbone=TransformerConfig(
                width=128, depth=3, heads=4, ff="mlp", activation="silu", positions="rotary"
            ),
            z_head=(256, 256),
            reward_head=(128, 128),
            discount_head=(128, 128),
        ),
        optim=WorldModelOptimConfig(lr=args.lr),
        burn_in=args.burn_in,
        sequence_length=args.seq_len,
    )
    meta = train.metadata
    model = build_world_model(cfg, meta.observation_space, meta.action_space)
    spec = model.training_spec("world_model")
    opt = torch.optim.Adam(
        model.parameters(), lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay
    )
    sampler = SequenceSampler(train, seq_len=args.seq_len, burn_in=args.burn_in)
    train_start = time.time()
    for step in range(args.pretrain + args.updates):
        batch = sampler.sample(args.batch_size, rng)
        loss_fn = model.pretrain_loss if step < args.pretrain else model.loss
        metrics = update(loss_fn, batch, opt, clip_norm=spec.clip_norm)
        if step % 100 == 0:
            shown = {k: round(v, 4) for k, v in metrics.items() if k in ("loss", "z_ce")}
            print(f"update {step}: {shown}", flush=True)
    model.eval()
    window = args.context + args.horizon
    held_out = SequenceSampler(test, seq_len=window).sample(args.test_windows, rng)
    keep = held_out.mask.all(dim=1)  # windows that fit inside one episode
    held_out = dataclasses.replace(
        held_out,
        **{
            f.name: getattr(held_out, f.name)[keep]
            for f in dataclasses.fields(held_out)
            if f.name != "extras"
        },
        extras={k: v[keep] for k, v in held_out.extras.items()},
    )
    report = evaluate_world_model(model, held_out, context=args.context, horizon=args.horizon)
    facts = {
        "train_frames": train.num_steps,
        "test_windows": int(keep.sum()),
        "train_seconds": time.time() - train_start,
        "total_seconds": time.time() - start,
    }
    return report, facts


def table(args: argparse.Namespace, report: WorldModelReport, facts: dict[str, float]) -> str:
    """The markdown section written into docs/twm.md."""
    nf, ol = report.next_frame, report.open_loop
    load = os.getloadavg()[0]
    command = (
        f"python examples/twm_checks.py --game {args.game} --frames {args.frames} "
        f"--pretrain {args.pretrain} --updates {args.updates} --latents {args.latents} "
        f"--channels {args.channels} --lr {args.lr}"
    )
    return "\n".join(
        [
            f"`{command}` (seed {args.seed}; {facts['train_frames']:.0f} training frames, "
            f"{facts['test_windows']:.0f} held-out windows of {args.context} context + "
            f"{args.horizon} steps; training {facts['train_seconds']:.0f} s on the CPU, load "
            f"average {load:.1f}). Mean squared error on the [0, 1] pixel scale; reconstruction "
            f"error of the held-out frames is {report.reconstruction:.5f}.",
            "",
            "| prediction | model, all pixels | copy, all pixels | model, changed pixels "
            "| copy, changed pixels | changed share |",
            "|---|---|---|---|---|---|",
            f"| next frame | {nf.model_all:.5f} | {nf.copy_all:.5f} | {nf.model_changed:.4f} "
            f"| {nf.copy_changed:.4f} | {nf.changed_fraction:.4f} |",
            f"| open loop, {report.horizon} steps | {ol.model_all:.5f} | {ol.copy_all:.5f} "
            f"| {ol.model_changed:.4f} | {ol.copy_changed:.4f} | {ol.changed_fraction:.4f} |",
        ]
    )


def main() -> None:
    """Parse arguments, run the check, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--frames", type=int, default=3000, help="random-policy agent steps")
    parser.add_argument("--pretrain", type=int, default=500, help="observation-model updates")
    parser.add_argument("--updates", type=int, default=1500, help="then world-model updates")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=8)
    parser.add_argument("--burn-in", type=int, default=1)
    parser.add_argument("--context", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--test-windows", type=int, default=200)
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
        sys.path.insert(0, str(ROOT))
        from benchmarks.report import write_section

        write_section(f"checks-{args.game.lower()}", markdown, doc=DOC)


if __name__ == "__main__":
    main()
