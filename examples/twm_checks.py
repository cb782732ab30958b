"""TWM's CPU checks on real ALE frames (issue 7): reconstruction, next-frame and open-loop error.

Plays a named game with a uniform random policy through seqrl's env layer (the TWM Atari
protocol: frame skip 4 with max-pooling, 64x64 grayscale; single frames, no stack, to keep the run
cheap), trains a small TWM (CNN width 16, 3 layers of width 128) on 80% of the steps with seqrl's
sampler and update step (observation model first, as the paper pretrains it, then everything), and
evaluates on held-out windows of the other 20% (episodes from other seeds) against the
copy-the-previous-frame baseline, over all pixels and over the pixels that change
(``seqrl.world_models.evaluation``): the prediction along the most likely latents, and with
``--samples N`` also the mean of N sampled rollouts (the model's predictive mean). Writes the
table into the ``checks-<game>`` section of ``docs/twm.md``::

    python examples/twm_checks.py --game Boxing --frames 3000 --pretrain 500 --updates 1500 --samples 16

About 20 to 30 minutes on one loaded CPU core with these settings.
``--weights FILE`` keeps the trained model (as in ``iris_checks.py``): scored again later, e.g.
with more ``--samples``, without training.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from seqrl.backbone import TransformerConfig
from seqrl.data import SequenceSampler
from seqrl.training import seed_everything, update
from seqrl.world_models.evaluation import WorldModelReport, evaluate_world_model
from seqrl.world_models.twm import (
    DynamicsConfig,
    ObservationModelConfig,
    TWMConfig,
    WorldModelOptimConfig,
    build_world_model,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _wm_checks_common import (  # noqa: E402
    ROOT,
    add_common_arguments,
    collect,
    held_out_windows,
    publish,
    report_markdown,
    train_or_load,
)

DOC = ROOT / "docs" / "twm.md"


def run(args: argparse.Namespace) -> tuple[WorldModelReport, dict[str, float]]:
    """Collect, train, evaluate; returns the report and run facts."""
    rng = seed_everything(args.seed)
    start = time.time()
    train, test = collect(args.game, args.frames, args.seed, preset="twm", data=args.data)
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

    def train_model() -> dict[str, float]:
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
        return {"train_seconds": time.time() - train_start}

    trained = train_or_load(args, "twm-checks", model, rng, train_model)
    model.eval()
    held_out = held_out_windows(test, args.context + args.horizon, args.test_windows, rng)
    report = evaluate_world_model(
        model, held_out, context=args.context, horizon=args.horizon, samples=args.samples
    )
    facts = {
        "train_frames": train.num_steps,
        "test_windows": held_out.batch_size,
        **trained,
        "total_seconds": time.time() - start,
    }
    return report, facts


def table(args: argparse.Namespace, report: WorldModelReport, facts: dict[str, float]) -> str:
    """The markdown section written into docs/twm.md."""
    command = (
        f"python examples/twm_checks.py --game {args.game} --frames {args.frames} "
        f"--pretrain {args.pretrain} --updates {args.updates} --latents {args.latents} "
        f"--channels {args.channels} --lr {args.lr}"
        + (f" --samples {args.samples}" if args.samples else "")
    )
    return report_markdown(command, args.seed, facts, args.context, args.horizon, report)


def main() -> None:
    """Parse arguments, run the check, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--pretrain", type=int, default=500, help="observation-model updates")
    parser.add_argument("--updates", type=int, default=1500, help="then world-model updates")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=8)
    parser.add_argument("--burn-in", type=int, default=1)
    parser.add_argument("--latents", type=int, default=32, help="categoricals = classes")
    parser.add_argument("--channels", type=int, default=16, help="CNN base channels")
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()
    report, facts = run(args)
    publish(args, table(args, report, facts), DOC)


if __name__ == "__main__":
    main()
