"""IRIS's CPU checks on real ALE frames (issue 8): tokenizer, next-frame and open-loop error.

Plays a named game with a uniform random policy through seqrl's env layer (IRIS's Atari protocol,
``atari_preset("iris")``: frame skip 4 with max-pooling, 64x64 RGB, one frame per observation),
trains a small IRIS on 80% of the steps with seqrl's sampler and update step, and evaluates on
held-out windows of the other 20% (episodes from other seeds) against the copy-the-previous-frame
baseline, over all pixels and over the pixels that change (``seqrl.world_models.evaluation``),
plus the tokenizer's codebook usage on the held-out frames. The schedule follows IRIS's
(``config/trainer.yaml``: the tokenizer starts 20 epochs before the world model, then both train
the same number of steps per epoch): first ``--tokenizer-updates`` tokenizer updates alone, then
``--updates`` world-model updates, each preceded by ``--tokenizer-ratio`` tokenizer updates
(1: the paper's; 0 freezes the tokenizer). Writes the table into the ``checks-<game>`` section of
``docs/iris.md``::

    python examples/iris_checks.py --game Pong --frames 3000 --tokenizer-updates 1000 --updates 1500

Model sizes (defaults): a tokenizer of 16 base channels with ``channel_mult`` (1, 1, 2, 2, 4)
(a 4x4 grid of 16 tokens), one residual block per level, no attention, 512 codes of dimension 64
(0.88 M parameters; the paper's: 64 channels, 2 blocks, attention at 8 and 16); a GPT of 3 layers
of width 128 over 20 frames x 17 tokens (0.82 M; the paper's: 10 layers of 256); batches of 32
frames and 8 sequences of 20 frames (the paper: 256 and 64). Roughly 40 minutes of one thread on
the loaded 2-core machine with the command above (no perceptual loss: see ``docs/iris.md``).

``--weights FILE`` keeps the trained model: written after training, read instead of training when
it exists (with the random state after training, so the held-out windows and sampled rollouts are
those of the run that trained it), e.g. to score more ``--samples`` without training again.

``--model paper --device cuda`` trains ``iris-atari100k``'s tokenizer and GPT on a GPU instead;
``--data FILE.npz`` keeps the collected frames, so that they can be collected here and trained on
a machine without ALE (``benchmarks/gpu.sh iris_checks_paper``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from seqrl.backbone import TransformerConfig
from seqrl.data import SequenceSampler, TrajectoryDataset
from seqrl.trainer import precision_dtype
from seqrl.training import seed_everything, update
from seqrl.world_models.evaluation import WorldModelReport, evaluate_world_model
from seqrl.world_models.iris import (
    IRIS,
    DynamicsConfig,
    IRISConfig,
    build_world_model,
    iris_atari100k,
)
from seqrl.world_models.iris_tokenizer import PERCEPTUAL_NOTE, TokenizerConfig, codebook_usage
from torch import nn

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

DOC = ROOT / "docs" / "iris.md"

SHOWN = ("loss", "reconstruction_loss", "codebook_used", "obs_loss", "obs_accuracy")


def paper_iris(args: argparse.Namespace) -> IRISConfig:
    """The paper's tokenizer and GPT (``iris-atari100k``: 64 base channels, attention at 8 and 16,
    512 codes of 512 dimensions; 10 layers of width 256; learning rates 1e-4), with the batch
    sizes, sequence length and dead-code restarts of ``args``."""
    cfg = iris_atari100k()
    return replace(
        cfg,
        tokenizer=replace(
            cfg.tokenizer,
            batch_size=args.tokenizer_batch_size,
            restart_dead_codes=args.restart_dead_codes,
            reconstruction=args.reconstruction,
            cache_tokens=args.cache_tokens,
        ),
        dynamics=replace(
            cfg.dynamics,
            sequence_length=args.seq_len,
            batch_size=args.batch_size,
            backbone=replace(cfg.dynamics.backbone, max_len=args.seq_len * 17),
        ),
    )


def small_iris(args: argparse.Namespace) -> IRISConfig:
    """A small IRIS: a narrow convolutional tokenizer and a 3-layer GPT (sizes from ``args``)."""
    return IRISConfig(
        tokenizer=TokenizerConfig(
            vocab_size=args.vocab,
            embed_dim=args.embed_dim,
            channels=args.channels,
            channel_mult=(1, 1, 2, 2, 4),
            res_blocks=1,
            attn_resolutions=(),
            z_channels=args.embed_dim,
            norm_groups=8,
            batch_size=args.tokenizer_batch_size,
            lr=args.tokenizer_lr,
            restart_dead_codes=args.restart_dead_codes,
            reconstruction=args.reconstruction,
            cache_tokens=args.cache_tokens,
        ),
        dynamics=DynamicsConfig(
            backbone=TransformerConfig(
                width=args.width,
                depth=args.depth,
                heads=4,
                ff="mlp",
                activation="gelu",
                positions="learned",
                max_len=args.seq_len * 17,
                dropout=0.1,
                attn_dropout=0.1,
            ),
            sequence_length=args.seq_len,
            batch_size=args.batch_size,
            lr=args.lr,
        ),
    )


def parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _adam(model: IRIS, name: str) -> tuple[torch.optim.Optimizer, float | None]:
    spec = model.training_spec(name)
    params = model.components()[name].parameters()
    opt = torch.optim.Adam(params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay)
    return opt, spec.clip_norm


@torch.no_grad()
def held_out_codebook(model: IRIS, test: TrajectoryDataset) -> tuple[int, float, float]:
    """(frames, fraction of the codes used, perplexity) of the tokens of every held-out frame."""
    obs = torch.from_numpy(np.concatenate([np.asarray(t.observations) for t in test]))
    device = next(model.parameters()).device
    tokens = torch.cat(
        [
            model.tokenizer.encode(model.tokenizer.frames(chunk.to(device))).cpu()
            for chunk in obs.split(256)
        ]
    )
    used, perplexity = codebook_usage(tokens, model.cfg.tokenizer.vocab_size)
    return int(obs.shape[0]), used, perplexity


def train_model(
    args: argparse.Namespace,
    model: IRIS,
    train: TrajectoryDataset,
    rng: np.random.Generator,
    device: torch.device,
) -> dict[str, float]:
    """The tokenizer alone, then the world model (each preceded by ``--tokenizer-ratio``
    tokenizer updates); returns the training seconds (all, tokenizer alone) and the tokenizer
    updates done."""
    tok_opt, tok_clip = _adam(model, "tokenizer")
    wm_opt, wm_clip = _adam(model, "world_model")
    tok_spec, wm_spec = model.training_spec("tokenizer"), model.training_spec("world_model")
    frames = SequenceSampler(train, seq_len=tok_spec.seq_len, burn_in=tok_spec.burn_in)
    sequences = SequenceSampler(train, seq_len=wm_spec.seq_len, burn_in=wm_spec.burn_in)
    model.train()
    train_start = time.time()
    tok_done, tok_due = 0, float(args.tokenizer_updates)
    amp = precision_dtype(args.precision)

    def tokenizer_update() -> dict[str, float]:
        nonlocal tok_done
        batch = frames.sample(tok_spec.batch_size, rng).to(device)
        tok_done += 1
        return update(model.tokenizer.loss, batch, tok_opt, clip_norm=tok_clip, amp_dtype=amp)

    for step in range(args.tokenizer_updates):
        metrics = tokenizer_update()
        if step % 100 == 0:
            shown = {k: round(v, 4) for k, v in metrics.items() if k in SHOWN}
            print(
                f"tokenizer update {step} ({time.time() - train_start:.0f} s): {shown}", flush=True
            )
    tokenizer_seconds = time.time() - train_start
    for step in range(args.updates):
        tok_due += args.tokenizer_ratio
        while tok_done < int(tok_due):
            tok_metrics = tokenizer_update()
        batch = sequences.sample(wm_spec.batch_size, rng).to(device)
        metrics = update(model.dynamics.loss, batch, wm_opt, clip_norm=wm_clip, amp_dtype=amp)
        if step % 100 == 0:
            if tok_done > args.tokenizer_updates:
                metrics = {**{f"tok_{k}": v for k, v in tok_metrics.items()}, **metrics}
            shown = {k: round(v, 4) for k, v in metrics.items() if k.removeprefix("tok_") in SHOWN}
            print(
                f"world-model update {step} ({time.time() - train_start:.0f} s): {shown}",
                flush=True,
            )
    return {
        "train_seconds": time.time() - train_start,
        "tokenizer_seconds": tokenizer_seconds,
        "tokenizer_updates": tok_done,
    }


def run(args: argparse.Namespace) -> tuple[WorldModelReport, dict[str, float]]:
    """Collect, train the tokenizer then the world model (or load them: ``--weights``),
    evaluate; the report and run facts."""
    rng = seed_everything(args.seed)
    start = time.time()
    train, test = collect(args.game, args.frames, args.seed, preset="iris", data=args.data)
    meta = train.metadata
    config = paper_iris(args) if args.model == "paper" else small_iris(args)
    device = torch.device(args.device)
    model = build_world_model(config, meta.observation_space, meta.action_space).to(device)
    print(PERCEPTUAL_NOTE, flush=True)
    sizes = {name: parameters(part) for name, part in model.components().items()}
    print(f"parameters: {sizes}", flush=True)
    trained = train_or_load(
        args,
        "iris-checks",
        model,
        rng,
        lambda: train_model(args, model, train, rng, device),
        same_training=("device", "cache_tokens"),
    )
    model.eval()
    held_out = held_out_windows(test, args.context + args.horizon, args.test_windows, rng)
    held_out = held_out.to(device)
    report = evaluate_world_model(
        model, held_out, context=args.context, horizon=args.horizon, samples=args.samples
    )
    test_frames, used, perplexity = held_out_codebook(model, test)
    facts = {
        **trained,
        "train_frames": train.num_steps,
        "test_windows": held_out.batch_size,
        "total_seconds": time.time() - start,
        "test_frames": test_frames,
        "codebook_used": used,
        "codebook_perplexity": perplexity,
        "tokenizer_parameters": sizes["tokenizer"],
        "world_model_parameters": sizes["world_model"],
    }
    return report, facts


def table(args: argparse.Namespace, report: WorldModelReport, facts: dict[str, float]) -> str:
    """The markdown section written into docs/iris.md."""
    sizes = (
        f"--model paper --batch-size {args.batch_size} "
        f"--tokenizer-batch-size {args.tokenizer_batch_size}"
        if args.model == "paper"
        else f"--channels {args.channels} --vocab {args.vocab} --embed-dim {args.embed_dim} "
        f"--width {args.width} --depth {args.depth} --batch-size {args.batch_size} "
        f"--tokenizer-lr {args.tokenizer_lr} --lr {args.lr}"
    )
    command = (
        f"python examples/iris_checks.py --game {args.game} --frames {args.frames} "
        f"--tokenizer-updates {args.tokenizer_updates} --updates {args.updates} "
        f"--tokenizer-ratio {args.tokenizer_ratio} {sizes} --samples {args.samples}"
        + (f" --restart-dead-codes {args.restart_dead_codes}" if args.restart_dead_codes else "")
        + (f" --reconstruction {args.reconstruction}" if args.reconstruction != "l1" else "")
        + (" --cache-tokens" if args.cache_tokens else "")
        + (" --precision bf16" if args.precision == "bf16" else "")
        + (f" --device {args.device}" if args.device != "cpu" else "")
    )
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU"
    vocab = 512 if args.model == "paper" else args.vocab
    return "\n".join(
        [
            report_markdown(
                command, args.seed, facts, args.context, args.horizon, report, where=where
            ),
            "",
            f"Codebook on the {facts['test_frames']:.0f} held-out frames: "
            f"{facts['codebook_used'] * vocab:.0f} of {vocab} codes used "
            f"({facts['codebook_used']:.3f}), perplexity {facts['codebook_perplexity']:.1f}. "
            f"Tokenizer {facts['tokenizer_parameters'] / 1e6:.2f} M parameters, "
            f"{facts['tokenizer_updates']:.0f} updates of {args.tokenizer_batch_size} frames "
            f"(the first {args.tokenizer_updates} alone, {facts['tokenizer_seconds']:.0f} s); "
            f"world model (GPT) "
            f"{facts['world_model_parameters'] / 1e6:.2f} M parameters, {args.updates} updates "
            f"of {args.batch_size} x {args.seq_len} frames; no perceptual loss.",
        ]
    )


def main() -> None:
    """Parse arguments, run the check, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--tokenizer-updates", type=int, default=1000, help="tokenizer updates before the GPT"
    )
    parser.add_argument("--updates", type=int, default=1500, help="then world-model updates")
    parser.add_argument(
        "--tokenizer-ratio",
        type=float,
        default=1.0,
        help="tokenizer updates per world-model update after the first phase (IRIS: 1; 0 freezes)",
    )
    parser.add_argument(
        "--model",
        choices=("small", "paper"),
        default="small",
        help="small: the sizes below (CPU); paper: iris-atari100k's tokenizer and GPT and their "
        "learning rates (a GPU)",
    )
    parser.add_argument("--device", default="cpu", help="torch device that trains and evaluates")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per GPT update")
    parser.add_argument(
        "--tokenizer-batch-size", type=int, default=32, help="frames per tokenizer update"
    )
    parser.add_argument("--seq-len", type=int, default=20, help="frames per GPT sequence")
    parser.add_argument("--vocab", type=int, default=512, help="codebook size")
    parser.add_argument("--embed-dim", type=int, default=64, help="codebook vector dimension")
    parser.add_argument("--channels", type=int, default=16, help="tokenizer base channels")
    parser.add_argument("--width", type=int, default=128, help="GPT width")
    parser.add_argument("--depth", type=int, default=3, help="GPT layers")
    parser.add_argument("--tokenizer-lr", type=float, default=3e-4)
    parser.add_argument("--lr", type=float, default=3e-4, help="GPT learning rate")
    parser.add_argument(
        "--restart-dead-codes",
        type=int,
        default=0,
        help="reset codes unused for this many tokenizer batches (0: never, as the paper)",
    )
    parser.add_argument(
        "--reconstruction",
        choices=("l1", "mse"),
        default="l1",
        help="the tokenizer's pixel loss: l1 (the paper) or mse (docs/iris.md, deviations)",
    )
    parser.add_argument(
        "--cache-tokens",
        action="store_true",
        help="the tokenizer's cache_tokens: with --tokenizer-ratio 0 the GPT's batches encode "
        "each training frame once (the same tokens, much faster on the CPU)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: autocast the tokenizer's and the GPT's updates (as --loop.precision bf16; "
        "the tokenizer's about 1.6x faster on CPUs with AMX); evaluation stays float32",
    )
    args = parser.parse_args()
    report, facts = run(args)
    publish(args, table(args, report, facts), DOC)


if __name__ == "__main__":
    main()
