"""The parts of the world-model checks on real ALE frames that every model shares.

Used by ``examples/twm_checks.py`` and ``examples/iris_checks.py`` (imported through their own
folder on ``sys.path``; examples are scripts, not package code): random-policy train and held-out
datasets of a named game, held-out windows that lie inside one episode, and the markdown of a
:class:`~seqrl.world_models.evaluation.WorldModelReport` for a ``checks-<game>`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from seqrl.checkpoint import capture_rng, load_checkpoint, load_state, restore_rng, save_checkpoint
from seqrl.data import DatasetMetadata, SequenceSampler, TrajectoryDataset
from seqrl.data.dataset import ARRAY_FILES
from seqrl.errors import CheckpointError
from seqrl.types import TrajectoryBatch
from seqrl.world_models.evaluation import WorldModelReport
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (docs/ and benchmarks/ live there)."""


def _save(path: Path, train: TrajectoryDataset, test: TrajectoryDataset) -> None:
    """Both datasets' arrays (seqrl's dataset files, ``ARRAY_FILES``) in one ``.npz``."""
    arrays = {}
    for name, part in (("train", train), ("test", test)):
        for key in ARRAY_FILES:
            arrays[f"{name}_{key}"] = getattr(part, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, num_actions=int(train.metadata.action_space.n), **arrays)
    tmp.replace(path)


def _load(path: Path, game: str) -> tuple[TrajectoryDataset, TrajectoryDataset]:
    """The datasets :func:`_save` wrote, with ALE's spaces rebuilt from the arrays."""
    from gymnasium import spaces

    with np.load(path) as z:
        arrays = dict(z)
    obs = arrays["train_observations"]
    meta = {
        "env_id": f"ALE/{game}-v5",
        "observation_space": spaces.Box(0, 255, obs.shape[1:], np.uint8),
        "action_space": spaces.Discrete(int(arrays["num_actions"])),
    }
    return tuple(  # type: ignore[return-value]
        TrajectoryDataset(
            *(arrays[f"{name}_{key}"] for key in ARRAY_FILES),
            DatasetMetadata(name=name, **meta),
        )
        for name in ("train", "test")
    )


def collect(
    game: str, frames: int, seed: int, preset: str, data: Path | None = None
) -> tuple[TrajectoryDataset, TrajectoryDataset]:
    """Uniform random-policy steps of ``ALE/<game>-v5`` under the Atari protocol ``preset`` with
    single frames (``frame_stack=1``): ``int(0.8 * frames)`` steps for training (seed ``seed``)
    and the rest held out (episodes of seed ``seed + 1000``).

    ``data``: an ``.npz`` file that keeps both datasets: read when it exists, else collected and
    written there (numpy arrays only, so that a machine with torch and gymnasium but without ALE
    can train on them).
    """
    if data is not None and data.exists():
        train, test = _load(data, game)
        if train.num_steps + test.num_steps != frames:
            held = train.num_steps + test.num_steps
            print(
                f"error: --data {data}: holds {held} steps, not --frames {frames}", file=sys.stderr
            )
            raise SystemExit(2)
        return train, test
    from seqrl.agents.baselines import RandomAgent
    from seqrl.envs import EnvConfig, atari_preset, make_vec_env, rollout

    atari = dataclasses.replace(atari_preset(preset), frame_stack=1)
    vec = make_vec_env(EnvConfig(id=f"ALE/{game}-v5", atari=atari), train=True)
    agent = RandomAgent(vec.single_action_space, seed=seed)
    train_steps = rollout(agent, vec, steps=int(0.8 * frames), seed=seed)
    test_steps = rollout(agent, vec, steps=frames - int(0.8 * frames), seed=seed + 1000)
    spaces = {
        "observation_space": vec.single_observation_space,
        "action_space": vec.single_action_space,
    }
    vec.close()
    train, test = (
        TrajectoryDataset.from_trajectories(
            part, DatasetMetadata(name=name, env_id=f"ALE/{game}-v5", **spaces)
        )
        for name, part in (("train", train_steps), ("test", test_steps))
    )
    if data is not None:
        _save(data, train, test)
    return train, test


def held_out_windows(
    test: TrajectoryDataset, window: int, count: int, rng: np.random.Generator
) -> TrajectoryBatch:
    """``count`` windows of ``window`` steps drawn from ``test``, keeping only those that lie
    inside one episode (every slot real); the batch may hold fewer than ``count`` rows."""
    held_out = SequenceSampler(test, seq_len=window).sample(count, rng)
    keep = held_out.mask.all(dim=1)
    return dataclasses.replace(
        held_out,
        **{
            f.name: getattr(held_out, f.name)[keep]
            for f in dataclasses.fields(held_out)
            if f.name != "extras"
        },
        extras={k: v[keep] for k, v in held_out.extras.items()},
    )


def report_markdown(
    command: str,
    seed: int,
    facts: dict[str, float],
    context: int,
    horizon: int,
    report: WorldModelReport,
    where: str = "the CPU",
) -> str:
    """The command and facts line, then the table of next-frame and open-loop errors against
    the copy-the-previous-frame baseline (and of the mean of sampled rollouts when the report has
    them, ``report.samples > 0``). ``facts`` holds ``train_frames``, ``test_windows`` and
    ``train_seconds``; ``where`` names the device that trained; the load average is read now."""
    nf, ol = report.next_frame, report.open_loop
    load = os.getloadavg()[0]
    rows = [
        ("next frame", nf),
        (f"open loop, {report.horizon} steps", ol),
    ]
    if report.next_frame_mean is not None and report.open_loop_mean is not None:
        rows += [
            (f"next frame, mean of {report.samples} samples", report.next_frame_mean),
            (f"open loop, {report.horizon} steps, mean of {report.samples}", report.open_loop_mean),
        ]
    return "\n".join(
        [
            f"`{command}` (seed {seed}; {facts['train_frames']:.0f} training frames, "
            f"{facts['test_windows']:.0f} held-out windows of {context} context + "
            f"{horizon} steps; training {facts['train_seconds']:.0f} s on {where}, load "
            f"average {load:.1f}). Mean squared error on the [0, 1] pixel scale; reconstruction "
            f"error of the held-out frames is {report.reconstruction:.5f}.",
            "",
            "| prediction | model, all pixels | copy, all pixels | model, changed pixels "
            "| copy, changed pixels | changed share |",
            "|---|---|---|---|---|---|",
            *(
                f"| {label} | {e.model_all:.5f} | {e.copy_all:.5f} | {e.model_changed:.4f} "
                f"| {e.copy_changed:.4f} | {e.changed_fraction:.4f} |"
                for label, e in rows
            ),
        ]
    )


def write_checks_section(section: str, markdown: str, doc: Path) -> None:
    """Replace (or append) the section ``section`` of ``doc`` with ``markdown``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.report import write_section

    write_section(section, markdown, doc=doc)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every check shares: the game and its data, the held-out windows, the seed,
    ``--samples`` (predictive-mean rows), ``--no-write`` and ``--weights``."""
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--frames", type=int, default=3000, help="random-policy agent steps")
    parser.add_argument("--context", type=int, default=8, help="real steps before a prediction")
    parser.add_argument("--horizon", type=int, default=10, help="open-loop steps")
    parser.add_argument("--test-windows", type=int, default=200, help="held-out windows drawn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="also score the mean of this many sampled rollouts (the predictive mean)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="NPZ",
        help="keep the collected train/test datasets in this .npz (read it when it exists)",
    )
    parser.add_argument(
        "--section", help="the docs section written (default: checks-<game>, lower case)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="keep the trained model here: written after training, read instead of training "
        "when it exists (same training flags; e.g. to score more --samples)",
    )


# flags that decide how a trained model is scored, not how it trains: a --weights file may be
# scored under other values of these (and of each script's ``same_training``)
SCORING_FLAGS = (
    "context",
    "horizon",
    "test_windows",
    "samples",
    "data",
    "section",
    "no_write",
    "weights",
)


def train_or_load(
    args: argparse.Namespace,
    algo: str,
    model: nn.Module,
    rng: np.random.Generator,
    train: Callable[[], dict[str, float]],
    same_training: tuple[str, ...] = (),
) -> dict[str, float]:
    """``train()`` the model and return its facts (training seconds ...), keeping the result in
    ``--weights`` when given; or, when that file exists, load it instead of training.

    The file is a seqrl checkpoint of ``algo`` (tensors and JSON, read with ``weights_only=True``):
    the model, the facts, the random state after training (restored into ``rng`` and torch, so
    that the held-out windows and sampled rollouts are those of the run that trained it) and
    every flag but ``SCORING_FLAGS`` and ``same_training`` (flags that leave the trained weights
    as they are). Loading under another value of one of those flags exits 2 naming it."""
    path = args.weights
    kept = {k: v for k, v in vars(args).items() if k not in SCORING_FLAGS + same_training}
    if path is None or not path.exists():
        facts = train()
        if path is not None:
            save_checkpoint(
                path,
                algo=algo,
                config=kept,
                step=0,
                state={"model": model.state_dict()},
                rng=capture_rng({"checks": rng}),
                extra=facts,
            )
            print(f"saved the trained model to {path}", flush=True)
        return facts
    try:
        ckpt = load_checkpoint(path, algo=algo)
        for name, value in kept.items():
            if ckpt.config.get(name) != value:
                flag = "--" + name.replace("_", "-")
                print(
                    f"error: --weights {path}: trained with {flag} {ckpt.config.get(name)}, "
                    f"not {value}",
                    file=sys.stderr,
                )
                raise SystemExit(2)
        load_state(model, ckpt.state["model"], what="the model", path=path)
        restore_rng(ckpt.rng, {"checks": rng})
    except CheckpointError as exc:
        print(f"error: --weights {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"loaded the trained model from {path} (no training)", flush=True)
    return {name: float(value) for name, value in ckpt.extra.items()}


def publish(args: argparse.Namespace, markdown: str, doc: Path) -> None:
    """Print the section and, unless ``--no-write``, record it in ``doc``."""
    print(markdown)
    if not args.no_write:
        write_checks_section(args.section or f"checks-{args.game.lower()}", markdown, doc)
