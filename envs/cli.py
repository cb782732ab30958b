"""``seqrl eval`` and ``seqrl rollout``: any policy spec, any gymnasium env, one evaluator;
``seqrl aggregate``: rliable's aggregates of many evaluations' normalized scores."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from seqrl.config import to_dict
from seqrl.envs.atari import is_atari
from seqrl.envs.config import ATARI_PRESETS, EnvConfig, atari_preset_name
from seqrl.envs.evaluate import evaluate
from seqrl.envs.factory import check_env_id, make_vec_env
from seqrl.envs.rollout import run_episodes
from seqrl.envs.scores import minari_ref_scores
from seqrl.envs.video import FrameRecorder, check_video_path, write_video
from seqrl.errors import UsageError
from seqrl.io import atomic_write_text
from seqrl.training import select_device

POLICY_HELP = (
    "'random', 'sb3:PATH' (a Stable-Baselines3 .zip; it is unpickled, so only from a trusted "
    "source), or a seqrl checkpoint file / run directory"
)


def _add_common(parser: argparse.ArgumentParser, default_envs: str) -> None:
    parser.add_argument("policy", metavar="POLICY", help=POLICY_HELP)
    parser.add_argument(
        "--env",
        required=True,
        metavar="ID",
        help="gymnasium id, e.g. CartPole-v1, Hopper-v5, ALE/Pong-v5",
    )
    parser.add_argument(
        "--episodes", type=int, required=True, metavar="N", help="complete episodes to play"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the first reset (env i gets seed + i) and of the policy's sampling",
    )
    parser.add_argument(
        "--num-envs",
        type=int,
        default=None,
        metavar="K",
        help=f"envs stepped together ({default_envs})",
    )
    parser.add_argument(
        "--atari-preset",
        choices=sorted(ATARI_PRESETS),
        default=None,
        help="Atari protocol preset (ALE ids only; default: a world-model checkpoint's own "
        "protocol, else dqn)",
    )
    parser.add_argument(
        "--backend",
        choices=["gymnasium", "envpool"],
        default="gymnasium",
        help="vector env implementation (envpool: where installed; no videos)",
    )
    parser.add_argument("--device", default="cpu", help="torch device for learned policies")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(registry: Any) -> None:
    """Add ``seqrl eval``, ``seqrl aggregate`` and ``seqrl rollout`` to the CLI."""
    p = registry.command(
        "eval", help="evaluate a policy: returns, confidence interval, normalized scores"
    )
    _add_common(p, "default: min(episodes, 10)")
    p.add_argument(
        "--dataset",
        metavar="MINARI_ID",
        help="normalize with this local Minari dataset's reference scores",
    )
    p.add_argument("--out", metavar="PATH", help="write the results as JSON here")
    p.set_defaults(handler=eval_command)

    p = registry.command(
        "aggregate",
        help="aggregate normalized scores of many evaluations (rliable: mean, median, IQM, "
        "optimality gap)",
        description="Aggregate the normalized scores of `seqrl eval --out` files, one file per "
        "run (seed) and game, with rliable's stratified bootstrap confidence intervals: the mean "
        "and median of the per-game means, and the interquartile mean and optimality gap over "
        "all runs x games (Agarwal et al. 2021, arXiv 2108.13264). Every game needs the same "
        "number of runs.",
    )
    p.add_argument(
        "files", nargs="+", metavar="EVAL_JSON", help="files written by seqrl eval --out"
    )
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--out", metavar="PATH", help="write the aggregates as JSON here")
    p.set_defaults(handler=aggregate_command)

    p = registry.command("rollout", help="play a policy and record a video (.mp4 or .gif)")
    _add_common(p, "default: 1")
    p.add_argument("--video", metavar="PATH", help="record the episodes to this .mp4 or .gif file")
    p.add_argument("--fps", type=int, default=30, help="video frames per second")
    p.set_defaults(handler=rollout_command)


def _env_config(args: argparse.Namespace, default_envs: int) -> EnvConfig:
    if args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    num_envs = default_envs if args.num_envs is None else args.num_envs
    if num_envs < 1:
        raise UsageError(f"--num-envs must be >= 1, got {num_envs}")
    check_env_id(args.env)
    select_device(args.device)  # `--device cuda` on a CPU machine: a usage error, up front
    from seqrl.agents.policies import policy_env_config

    return policy_env_config(
        args.policy,
        args.env,
        num_envs=num_envs,
        seed=args.seed,
        atari_preset=args.atari_preset,
        backend=args.backend,
    )


def _check_out_path(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--out {path}: is a directory")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: cannot create a file under {ancestor}")


def eval_command(args: argparse.Namespace) -> int:
    """``seqrl eval``: print a results table and optionally write JSON."""
    from seqrl.agents.policies import EnvSpaces, load_policy

    cfg = _env_config(args, default_envs=min(args.episodes, 10))
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_out_path(out)
    normalization: Any = "auto"
    if args.dataset:
        from seqrl.data.minari_source import resolve_minari_id  # `hop-r`: its latest version

        normalization = minari_ref_scores(resolve_minari_id(args.dataset))
    vec_env = make_vec_env(cfg, train=False)
    try:
        agent = load_policy(
            args.policy, EnvSpaces.of(vec_env, cfg.id), device=args.device, seed=args.seed
        )
        torch.manual_seed(args.seed)  # policies that sample with torch's generator
        result = evaluate(
            agent,
            vec_env,
            args.episodes,
            seed=args.seed,
            normalization=normalization,
            progress=not args.quiet,
        )
    finally:
        vec_env.close()
    result.env_id = cfg.id
    print(f"policy    {args.policy}")
    print(result.table())
    if out is not None:
        payload = {
            "policy": args.policy,
            # the preset whose protocol was played (None: another, e.g. a checkpoint's own)
            "atari_preset": atari_preset_name(cfg.atari) if is_atari(cfg.id) else None,
            "env": to_dict(cfg),
        }
        payload.update(result.to_dict())
        atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def _read_evaluation(path: Path) -> tuple[str, float, tuple[str, float]]:
    """(game, normalized mean, (normalization kind, scale)) of one ``seqrl eval --out`` file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a seqrl eval JSON file ({exc})") from None
    if not isinstance(data, dict) or "env_id" not in data or "returns" not in data:
        raise UsageError(f"{path}: not a seqrl eval JSON file (no 'env_id' and 'returns')")
    if "normalized_mean" not in data:
        raise UsageError(
            f"{path}: {data['env_id']} has no normalized score (Atari games get human-normalized "
            "scores, D4RL envs D4RL scores; others need seqrl eval --dataset MINARI_ID)"
        )
    normalization = data.get("normalization", {})
    kind = str(normalization.get("kind", "?"))
    scale = float(normalization.get("scale", 1.0 if kind == "hns" else 100.0))
    return str(data["env_id"]), float(data["normalized_mean"]), (kind, scale)


def aggregate_command(args: argparse.Namespace) -> int:
    """``seqrl aggregate``: print (and optionally write) rliable's aggregates of eval files."""
    from seqrl.envs.aggregate import aggregate_scores, score_matrix

    if args.reps < 1:
        raise UsageError(f"--reps must be >= 1, got {args.reps}")
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_out_path(out)
    rows = [_read_evaluation(Path(f)) for f in args.files]
    kinds = sorted({kind for _, _, kind in rows})
    if len(kinds) > 1:
        mixed = ", ".join(f"{kind} (scale {scale:g})" for kind, scale in kinds)
        raise UsageError(f"the files mix normalizations: {mixed}; aggregate one kind at a time")
    ((kind, scale),) = kinds
    matrix, games = score_matrix((game, score) for game, score, _ in rows)
    # the optimality gap counts shortfalls below the scale's "solved": 1 HNS, 100 D4RL points
    agg = aggregate_scores(matrix, reps=args.reps, seed=args.seed, gamma=scale)
    label = {"hns": "human-normalized", "d4rl": "D4RL-normalized"}.get(kind, "normalized")
    print(
        f"{agg.runs} run(s) x {agg.games} game(s), {label} scores; 95% stratified bootstrap "
        f"confidence intervals ({args.reps} resamples); optimality gap below {scale:g}"
    )
    for name in ("mean", "median", "iqm", "optimality_gap"):
        iv = getattr(agg, name)
        title = {"iqm": "IQM", "optimality_gap": "optimality gap"}.get(name, name)
        print(f"  {title:<15} {iv.value:8.3f}   ({iv.low:.3f} .. {iv.high:.3f})")
    per_game = matrix.mean(axis=0)
    width = max(len(g) for g in games)
    print("per game (mean over runs):")
    for game, score in zip(games, per_game, strict=True):
        print(f"  {game:<{width}}  {score:8.3f}")
    if out is not None:
        payload = {
            "files": [str(f) for f in args.files],
            "normalization": kind,
            "scale": scale,
            "reps": args.reps,
            "seed": args.seed,
            **agg.to_dict(),
            "per_game": {g: float(v) for g, v in zip(games, per_game, strict=True)},
        }
        atomic_write_text(out, json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def rollout_command(args: argparse.Namespace) -> int:
    """``seqrl rollout``: play episodes, print their returns, optionally record a video of env 0."""
    from seqrl.agents.policies import EnvSpaces, load_policy

    cfg = _env_config(args, default_envs=1)
    video = check_video_path(args.video) if args.video else None
    if args.fps < 1:
        raise UsageError(f"--fps must be >= 1, got {args.fps}")
    recorders: list[FrameRecorder] = []

    def record_first(env: Any, index: int) -> Any:
        if index != 0:
            return env
        recorders.append(FrameRecorder(env))
        return recorders[-1]

    vec_env = make_vec_env(
        cfg,
        train=False,
        render_mode="rgb_array" if video else None,
        wrap=record_first if video else None,
    )
    try:
        agent = load_policy(
            args.policy, EnvSpaces.of(vec_env, cfg.id), device=args.device, seed=args.seed
        )
        torch.manual_seed(args.seed)  # policies that sample with torch's generator
        played = run_episodes(
            agent,
            vec_env,
            episodes=args.episodes,
            seed=args.seed,
            record=False,
            progress=not args.quiet,
        )
    finally:
        vec_env.close()
    print(f"{'episode':>7}  {'env':>3}  {'return':>10}  {'length':>6}")
    for k, ep in enumerate(played):
        print(f"{k:>7}  {ep.env_index:>3}  {ep.episode_return:>10.2f}  {ep.length:>6}")
    if video is not None:
        recorder = recorders[-1]
        wanted = sum(1 for ep in played if ep.env_index == 0)
        frames = recorder.frames[: recorder.episode_ends[wanted - 1]] if wanted else recorder.frames
        write_video(video, frames, fps=args.fps)
        print(f"wrote {video} ({len(frames)} frames of env 0)")
    sys.stdout.flush()
    return 0
