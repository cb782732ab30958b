"""Commands of the data layer: ``seqrl collect`` and ``seqrl datasets list|info|build-d4rl``."""

from __future__ import annotations

import argparse

from seqrl.errors import UsageError

TRUSTED = (
    "sb3:PATH loads a Stable-Baselines3 .zip through SB3's own loader; such files hold pickled "
    "objects that run code when loaded, so use only files from a trusted source (seqrl's own "
    "checkpoints never need unpickling)."
)


def register(registry) -> None:  # noqa: ANN001 - seqrl.cli.Registry
    """Add ``seqrl collect`` and ``seqrl datasets`` to the CLI."""
    collect = registry.command(
        "collect",
        help="run a policy in an env and write the steps as a Minari dataset",
        description="Run a policy through seqrl's rollout loop on vectorized envs and write exactly "
        "--steps transitions as the Minari dataset --name (under MINARI_DATASETS_PATH, default "
        "~/.minari/datasets; `minari list local` shows it). Episodes still running at the end are "
        "kept, flagged truncated. Nothing is written if the collection is interrupted.\n\n"
        + TRUSTED,
    )
    collect.add_argument("--env", required=True, help="gymnasium env id, e.g. Hopper-v5")
    collect.add_argument(
        "--policy",
        required=True,
        help="random | sb3:PATH (SB3 .zip, trusted source only) | PATH of a seqrl checkpoint",
    )
    collect.add_argument("--steps", type=int, required=True, help="transitions over all envs")
    collect.add_argument("--name", required=True, help="Minari dataset id (-v0 appended if no -vN)")
    collect.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="exploration: Gaussian std as a fraction of the half-range (Box) or epsilon (Discrete)",
    )
    collect.add_argument("--num-envs", type=int, default=1, help="envs stepped together")
    collect.add_argument("--seed", type=int, default=0, help="env i is seeded with seed + i")
    collect.add_argument(
        "--atari-preset",
        choices=("dqn", "iris", "twm"),
        default=None,
        help="Atari preprocessing protocol (ALE ids only): dqn 84x84 gray x4, iris 64x64 RGB, "
        "twm 64x64 gray x4 (default: a world-model checkpoint's own protocol, else dqn)",
    )
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.set_defaults(handler=_collect)

    datasets = registry.command(
        "datasets",
        help="list, inspect or build datasets",
        description="List the datasets under Minari's root, inspect one, or build D4RL-style datasets.",
    )
    sub = datasets.add_subparsers(
        dest="datasets_command", metavar="{list,info,build-d4rl}", required=True
    )
    lst = sub.add_parser(
        "list",
        help="datasets under Minari's root (MINARI_DATASETS_PATH)",
        description="The datasets under Minari's root (MINARI_DATASETS_PATH, default ~/.minari/datasets).",
        formatter_class=datasets.formatter_class,
    )
    lst.set_defaults(handler=_list)
    info = sub.add_parser(
        "info",
        help="episodes, steps, spaces, infos, size and returns of one dataset",
        description="Summarise a dataset: a Minari id, a seqrl dataset folder, a D4RL .hdf5 file "
        "or a DQN-Replay folder.",
        formatter_class=datasets.formatter_class,
    )
    info.add_argument("dataset", metavar="NAME_OR_PATH", help="Minari id or path")
    info.add_argument("--env", default=None, help="gymnasium env id: check spaces, episode limit")
    info.add_argument(
        "--max-episode-steps",
        type=int,
        default=None,
        help="episode limit for D4RL files without 'timeouts'",
    )
    info.add_argument(
        "--no-download",
        action="store_true",
        help="do not try to download a Minari id that is not local",
    )
    info.set_defaults(handler=_info)
    build = sub.add_parser(
        "build-d4rl",
        help="train an SB3 agent and write medium / medium-replay / expert datasets",
        description="Train a Stable-Baselines3 agent for --steps, checkpointing at --medium-fraction "
        "of them (medium) and at the end (expert); write PREFIX-medium-replay-v0 (the replay buffer "
        "up to the medium checkpoint), and PREFIX-medium-v0 / PREFIX-expert-v0 (--dataset-steps "
        "transitions of each checkpoint) as Minari datasets. The checkpoints are SB3 .zip files "
        "written to --checkpoint-dir; they are loaded back only through SB3's loader.\n\n"
        + TRUSTED,
        formatter_class=datasets.formatter_class,
    )
    build.add_argument("--env", required=True, help="gymnasium env id, e.g. Hopper-v5")
    build.add_argument(
        "--algo", choices=("sac", "td3", "ddpg", "ppo"), default="sac", help="SB3 algorithm"
    )
    build.add_argument("--steps", type=int, required=True, help="training steps")
    build.add_argument(
        "--dataset-steps",
        type=int,
        default=1_000_000,
        help="transitions per medium / expert dataset",
    )
    build.add_argument(
        "--prefix", default=None, help="dataset id prefix (default: env id, lowercased)"
    )
    build.add_argument(
        "--medium-fraction", type=float, default=0.5, help="when the medium checkpoint is taken"
    )
    build.add_argument(
        "--learning-starts", type=int, default=None, help="SB3 learning_starts (default: SB3's)"
    )
    build.add_argument("--checkpoint-dir", default=None, help="default: runs/build-d4rl-PREFIX")
    build.add_argument(
        "--num-envs", type=int, default=1, help="envs stepped together in the rollouts"
    )
    build.add_argument("--seed", type=int, default=0, help="training seed; rollouts use seed + 1")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(handler=_build)


def _collect(args: argparse.Namespace) -> int:
    from seqrl.data.collect import collect
    from seqrl.data.stats import dataset_stats

    if args.num_envs < 1:
        raise UsageError(f"--num-envs must be >= 1, got {args.num_envs}")
    dataset = collect(
        args.env,
        args.policy,
        args.steps,
        name=args.name,
        noise=args.noise,
        num_envs=args.num_envs,
        seed=args.seed,
        atari_preset=args.atari_preset,
        progress=not args.quiet,
    )
    stats = dataset_stats(dataset)
    print(
        f"wrote Minari dataset '{dataset.metadata.name}': {stats.episodes} episodes, {stats.steps} steps, "
        f"mean return {stats.return_mean:.3f}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from seqrl.data.minari_source import minari_root
    from seqrl.data.sources import list_datasets

    entries = list_datasets()
    print(f"datasets under {minari_root()}:")
    if not entries:
        print("  (none)")
    for e in entries:
        print(
            f"  {e.dataset_id:40s} {e.episodes:8d} episodes {e.steps:10d} steps  env {e.env_id or '-'}"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from seqrl.data.sources import load_dataset
    from seqrl.data.stats import dataset_stats

    dataset = load_dataset(
        args.dataset,
        env_id=args.env,
        max_episode_steps=args.max_episode_steps,
        download=not args.no_download,
    )
    meta = dataset.metadata
    print(f"{meta.name} ({meta.source}: {meta.location})")
    print(f"env: {meta.env_id or '-'}")
    print(
        f"observations: {dataset.observation_shape} {dataset.observations.dtype}; space {meta.observation_space}"
    )
    print(f"actions: {dataset.action_shape} {dataset.actions.dtype}; space {meta.action_space}")
    print(f"final observation kept: {'yes' if dataset.has_final_observation else 'no'}")
    infos = ", ".join(
        f"{key} {tuple(value.shape[1:])} {value.dtype}" for key, value in dataset.infos.items()
    )
    print(f"infos: {infos or 'none'}")
    skipped = meta.extra.get("skipped_infos") or {}
    if skipped:
        print("infos skipped: " + "; ".join(f"{key} ({why})" for key, why in skipped.items()))
    for line in dataset_stats(dataset).lines():
        print(line)
    if meta.ref_min_score is not None and meta.ref_max_score is not None:
        print(f"reference scores: min {meta.ref_min_score}, max {meta.ref_max_score}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from seqrl.data.build_d4rl import build_d4rl_datasets

    prefix = args.prefix or args.env.split("/")[-1].lower()
    result = build_d4rl_datasets(
        args.env,
        train_steps=args.steps,
        dataset_steps=args.dataset_steps,
        prefix=prefix,
        checkpoint_dir=args.checkpoint_dir or f"runs/build-d4rl-{prefix}",
        algo=args.algo,
        medium_fraction=args.medium_fraction,
        seed=args.seed,
        learning_starts=args.learning_starts,
        num_envs=args.num_envs,
        progress=not args.quiet,
    )
    for kind, dataset_id in result.dataset_ids.items():
        print(f"{kind}: Minari dataset '{dataset_id}'")
    for kind, path in result.checkpoints.items():
        print(f"{kind} checkpoint: {path}")
    return 0
