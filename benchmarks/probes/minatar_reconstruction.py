"""Probe: which of a MinAtar game's objects does an IRIS tokenizer keep?

MinAtar draws its 10 x 10 state as cells of one colour per object channel (``seqrl.envs.minatar``).
This loads an ``iris`` run's last checkpoint and replay buffer, encodes and decodes ``--frames``
replay frames with the tokenizer, reads both images back as cells (the palette colour nearest to
each cell's centre pixel) and prints, per object channel (Breakout: paddle, ball, trail, brick),
the share of the real frames' cells of that object that the reconstruction draws as that object,
and how many cells it draws as that object where the real frame has none. ``--image FILE`` also
writes a PNG: real frames on the top row, reconstructions below.

``--fresh N`` trains a new tokenizer of the run's configuration (``--reconstruction``,
``--vocab``, ``--restart`` and ``--encoder-scope`` override its pixel loss, codebook size,
dead-code restarts and encoder scope) for
N updates on the run's replay instead, and prints the same shares on held-out replay frames every
``--every`` updates (with the share of all cells read back right): which loss makes the tokenizer
draw which object.

Both modes also print how stable the tokens are, on pairs of consecutive replay frames: the
share of the 16 x 16-pixel patches whose pixels do not change from one frame to the next, and
the share of those whose token does not change either. A GPT can copy a kept token; a token that
flips while its patch stays the same is one it must learn to predict from the rest of the frame.
With ``--fresh`` the table also gives the share of the held-out frames' tokens that are the same
as at the previous report: a GPT trained beside the tokenizer learns targets that move by that
much.

A diagnostic, not a peer benchmark: docs/iris.md (MinAtar section) quotes its output::

    python benchmarks/probes/minatar_reconstruction.py runs/t7/iris-minatar-seed1
    python benchmarks/probes/minatar_reconstruction.py runs/t7/iris-minatar-seed1 \\
        --fresh 1500 --reconstruction mse
    python benchmarks/probes/minatar_reconstruction.py runs/t11/iris-minatar-seed0 \\
        --fresh 1000 --restart 0
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from seqrl.checkpoint import load_checkpoint, load_state
from seqrl.config import from_dict
from seqrl.data import ReplayBuffer, SequenceSampler
from seqrl.envs import make_env
from seqrl.envs.minatar import MinAtarImage, is_minatar
from seqrl.training import seed_everything, update
from seqrl.world_models.iris import build_world_model
from seqrl.world_models.train_iris import IRISAgentConfig

GRID = 10


def minatar_wrapper(env: object) -> MinAtarImage:
    """The MinAtarImage wrapper inside ``env``'s wrapper chain."""
    while not isinstance(env, MinAtarImage):
        if not hasattr(env, "env"):
            raise ValueError("the run's env draws no MinAtar images")
        env = env.env
    return env


def cells(images: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Images ``(N, S, S[, 3])`` -> ``(N, 10, 10)`` palette index of each cell's centre pixel
    (0: background, c + 1: object channel c)."""
    size = images.shape[1]
    centres = np.arange(GRID) * size // GRID + size // (2 * GRID)
    px = images[:, centres][:, :, centres].astype(np.float64)
    pal = palette.astype(np.float64)
    if px.ndim == 3:  # grayscale
        px, pal = px[..., None], pal[:, None]
    return ((px[..., None, :] - pal) ** 2).sum(-1).argmin(-1)


def shares(
    got: np.ndarray, want: np.ndarray, names: list[tuple[str, int]]
) -> list[tuple[str, int, float, int]]:
    """Per object channel: (name, real cells, share drawn by ``got``, cells drawn where absent)."""
    rows = []
    for name, channel in names:
        code = channel + 1
        present = want == code
        drawn = float((got[present] == code).mean()) if present.any() else float("nan")
        rows.append((name, int(present.sum()), drawn, int(((got == code) & ~present).sum())))
    return rows


def reconstruct(model: torch.nn.Module, real: torch.Tensor) -> np.ndarray:
    """The tokenizer's reconstructions of ``real`` as uint8 images in the observations' layout."""
    with torch.no_grad():
        recon = model.reconstruct(real)  # floats in [0, 1]
    return (recon.numpy() * 255.0).round().clip(0, 255).astype(np.uint8)


def token_stability(model: torch.nn.Module, pairs: torch.Tensor) -> tuple[float, float]:
    """On ``pairs`` of consecutive observations ``(N, 2, ...)``: the share of token patches
    whose pixels do not change, and the share of those whose token does not change either."""
    tok = model.tokenizer
    with torch.no_grad():
        frames = tok.frames(pairs)  # (N, 2, C, 64, 64)
        tokens = tok.encode(frames)  # (N, 2, K)
    g = tok.grid
    size = frames.shape[-1] // g
    moved = (frames[:, 1] - frames[:, 0]).abs().amax(1)  # (N, 64, 64)
    still = moved.view(-1, g, size, g, size).amax((2, 4)).flatten(1) == 0  # (N, K)
    kept = tokens[:, 1] == tokens[:, 0]
    return float(still.float().mean()), float(kept[still].float().mean())


def train_fresh(
    model: torch.nn.Module,
    replay: ReplayBuffer,
    real: torch.Tensor,
    pairs: torch.Tensor,
    palette: np.ndarray,
    names: list[tuple[str, int]],
    args: argparse.Namespace,
) -> None:
    """Train ``model``'s (new) tokenizer on ``replay`` and print the shares every ``args.every``."""
    tok = model.tokenizer
    spec = model.training_spec("tokenizer")
    optimizer = torch.optim.Adam(tok.parameters(), lr=spec.lr, eps=spec.eps)
    sampler = SequenceSampler(replay, seq_len=1, burn_in=0)
    rng = seed_everything(args.seed + 1)
    want = cells(real.numpy(), palette)
    header = " | ".join(n for n, _ in names)
    print(
        f"| updates | L1 | cells right | {header} | codes used | tokens kept on still patches "
        "| tokens kept since the last report |"
    )
    print("|---|---|---|" + "---|" * (len(names) + 3))
    frames = tok.frames(real)
    last = None
    start = time.perf_counter()
    tok.train()
    for i in range(1, args.fresh + 1):
        batch = sampler.sample(tok.cfg.batch_size, rng)
        metrics = update(tok.loss, batch, optimizer, clip_norm=spec.clip_norm)
        if i % args.every == 0 or i == args.fresh:
            model.eval()
            got = cells(reconstruct(model, real), palette)
            _, kept = token_stability(model, pairs)
            tokens = tok.encode(frames)
            since = "-" if last is None else f"{float((tokens == last).float().mean()):.2f}"
            last = tokens
            tok.train()
            drawn = " | ".join(f"{d:.2f}" for _, _, d, _ in shares(got, want, names))
            right = float((got == want).mean())
            used = metrics["codebook_used"]
            print(
                f"| {i} | {metrics['l1']:.4f} | {right:.3f} | {drawn} | {used:.2f} | {kept:.2f} "
                f"| {since} |",
                flush=True,
            )
    print(f"({time.perf_counter() - start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an iris run directory on a MinAtar env")
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image", type=Path, help="write 8 real / reconstructed pairs as a PNG")
    parser.add_argument("--fresh", type=int, default=0, help="train a new tokenizer N updates")
    parser.add_argument("--reconstruction", choices=("l1", "mse"), help="with --fresh")
    parser.add_argument("--vocab", type=int, help="with --fresh: codebook size")
    parser.add_argument(
        "--restart", type=int, help="with --fresh: restart_dead_codes (0: no restarts)"
    )
    parser.add_argument(
        "--encoder-scope", choices=("frame", "patch"), help="with --fresh: encoder_scope"
    )
    parser.add_argument("--every", type=int, default=250, help="with --fresh: report interval")
    args = parser.parse_args()
    if args.frames <= 0 or args.fresh < 0 or args.every <= 0:
        parser.error("--frames and --every must be positive, --fresh not negative")
    overrides = {
        "reconstruction": args.reconstruction,
        "vocab_size": args.vocab,
        "restart_dead_codes": args.restart,
        "encoder_scope": args.encoder_scope,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides and not args.fresh:
        parser.error("--reconstruction, --vocab, --restart, --encoder-scope: only with --fresh")
    ckpt = load_checkpoint(args.run, algo="iris")
    cfg = from_dict(IRISAgentConfig, ckpt.config)
    if not is_minatar(cfg.env.id):
        raise ValueError(f"{args.run}: env {cfg.env.id} is not a MinAtar game")
    env = make_env(cfg.env)
    wrapper = minatar_wrapper(env)
    if wrapper._colours is None:
        raise ValueError(f"{args.run}: the env gives MinAtar states, not images")
    palette = wrapper._colours
    names = sorted(wrapper.env.unwrapped.game.env.channels.items(), key=lambda kv: kv[1])
    env.close()
    replay = ReplayBuffer.load(args.run / str(ckpt.extra["replay"]))
    wm_cfg = cfg.world_model
    if overrides:
        wm_cfg = replace(wm_cfg, tokenizer=replace(wm_cfg.tokenizer, **overrides))
    torch.manual_seed(args.seed)
    model = build_world_model(wm_cfg, replay.observation_space, replay.action_space)
    batch = SequenceSampler(replay, seq_len=1, burn_in=0).sample(
        args.frames, np.random.default_rng(args.seed)
    )
    real = batch.observations[:, 0]
    pairs = (
        SequenceSampler(replay, seq_len=2, burn_in=0)
        .sample(args.frames, np.random.default_rng(args.seed + 2))
        .observations
    )
    if args.fresh:
        print(
            f"{args.run}: a new tokenizer ({wm_cfg.tokenizer.reconstruction} loss) trained on "
            f"the replay; shares of each object's cells drawn, on {args.frames} replay frames"
        )
        train_fresh(model, replay, real, pairs, palette, names, args)
        return
    load_state(model, ckpt.state["world_model"], what="world model", path=ckpt.path)
    model.eval()
    real_np = real.numpy()
    recon_np = reconstruct(model, real)
    got, want = cells(recon_np, palette), cells(real_np, palette)
    print(
        f"{args.run}: checkpoint at env step {ckpt.step}, {args.frames} replay frames; "
        f"cells equal {float((got == want).mean()):.3f}, "
        f"frames with every cell right {float((got == want).all(axis=(1, 2)).mean()):.2f}"
    )
    print(
        "| object | cells in the real frames | drawn by the reconstruction | drawn where absent |"
    )
    print("|---|---|---|---|")
    for name, count, drawn, spurious in shares(got, want, names):
        print(f"| {name} | {count} | {drawn:.2f} | {spurious} |")
    still, kept = token_stability(model, pairs)
    print(
        f"patches whose pixels do not change between consecutive frames: {still:.2f}; "
        f"their tokens kept: {kept:.2f}"
    )
    if args.image is not None:
        import imageio.v3 as iio

        pairs = [np.concatenate([real_np[i], recon_np[i]], axis=0) for i in range(8)]
        iio.imwrite(args.image, np.concatenate(pairs, axis=1))
        print(f"wrote {args.image}")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a diagnostic: one line, not a traceback
        sys.exit(f"error: {exc}")
