"""Build D4RL-style ``medium`` / ``medium-replay`` / ``expert`` datasets for any gymnasium env.

The recipe of D4RL (Fu et al. 2020, arXiv 2004.07219, Sec. 5) with Stable-Baselines3:

1. train an SB3 agent (SAC by default) for ``train_steps``, saving a checkpoint when
   ``medium_fraction`` of the steps are done (``medium.zip``) and at the end (``expert.zip``);
2. ``medium-replay``: every transition in the replay buffer up to the medium checkpoint;
3. ``medium`` / ``expert``: ``dataset_steps`` transitions of each checkpoint, rolled out through
   :func:`seqrl.data.collect.collect` (the shared rollout loop).

D4RL picks "medium" by score (about a third of the expert's); here it is a fraction of the training
budget, which is the knob a user can set in advance. The checkpoints are SB3 ``.zip`` files
(pickles, loaded back only through SB3's loader, by :func:`~seqrl.agents.policies.load_policy`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
from seqrl.data.collect import collect, minari_id
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.data.minari_source import is_local_minari, minari_root, write_minari
from seqrl.errors import UsageError
from seqrl.io import atomic_path

Algo = Literal["sac", "td3", "ddpg", "ppo"]


@dataclass
class BuildResult:
    """What :func:`build_d4rl_datasets` wrote: Minari ids by kind, and the SB3 checkpoints."""

    dataset_ids: dict[str, str]
    checkpoints: dict[str, Path]


def _algo_class(algo: Algo):  # noqa: ANN202 - an SB3 class
    import stable_baselines3 as sb3

    return {"sac": sb3.SAC, "td3": sb3.TD3, "ddpg": sb3.DDPG, "ppo": sb3.PPO}[algo]


def _learn(model: object, progress: bool, **kwargs: object) -> None:
    """``model.learn`` (SB3), with its progress bar when ``progress``, minus the warning that
    the bar's ``tqdm.rich`` is experimental."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="rich is experimental")
        model.learn(progress_bar=progress, **kwargs)  # type: ignore[attr-defined]


def _save_model(model: object, path: Path) -> None:
    """``model.save`` (SB3) through a temporary file renamed into place: a run killed while
    saving leaves no half-written ``.zip``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        model.save(fh)  # type: ignore[attr-defined]


def replay_to_dataset(model: object, env_id: str, upto: int, name: str) -> TrajectoryDataset:
    """The first ``upto`` transitions of an SB3 off-policy model's replay buffer (one env).

    Actions are mapped back from SB3's [-1, 1] storage to the env's bounds; episodes end at SB3's
    ``dones`` (terminated = done and not a time-limit ``timeout``); the trailing unfinished episode
    is kept, truncated; each episode keeps its final observation (``next_observations``).
    """
    from seqrl.envs.scores import ref_scores_for  # here: seqrl.envs is slow to import

    buffer = model.replay_buffer  # type: ignore[attr-defined]
    rows = min(upto, buffer.buffer_size if buffer.full else buffer.pos)
    obs = buffer.observations[:rows, 0]
    next_obs = buffer.next_observations[:rows, 0]
    actions = model.policy.unscale_action(buffer.actions[:rows, 0])  # type: ignore[attr-defined]
    rewards = buffer.rewards[:rows, 0].astype(np.float32)
    dones = buffer.dones[:rows, 0].astype(bool)
    timeouts = buffer.timeouts[:rows, 0].astype(bool)
    ends = np.flatnonzero(dones) + 1
    bounds = np.concatenate([[0], ends]).astype(np.int64)
    if bounds[-1] < rows:  # trailing unfinished episode
        bounds = np.concatenate([bounds, [rows]])
    episodes = len(bounds) - 1
    observations = np.empty((rows + episodes, *obs.shape[1:]), dtype=obs.dtype)
    episode_of_row = np.repeat(np.arange(episodes), np.diff(bounds))
    observations[np.arange(rows) + episode_of_row] = obs
    last = bounds[1:] - 1
    observations[last + np.arange(episodes) + 1] = next_obs[last]
    terminated = dones[last] & ~timeouts[last]
    env = gym.make(env_id)
    spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
    env.close()
    ref = ref_scores_for(env_id)
    metadata = DatasetMetadata(
        name=name,
        source="seqrl",
        location=name,
        env_id=env_id,
        ref_min_score=ref.low if ref else None,
        ref_max_score=ref.high if ref else None,
        extra={"kind": "medium-replay"},
        **spaces,
    )
    return TrajectoryDataset(
        observations,
        actions.astype(spaces["action_space"].dtype),
        rewards,
        bounds,
        terminated,
        ~terminated,
        metadata,
    )


def build_d4rl_datasets(
    env_id: str,
    train_steps: int,
    dataset_steps: int,
    prefix: str,
    checkpoint_dir: str | Path,
    algo: Algo = "sac",
    medium_fraction: float = 0.5,
    seed: int = 0,
    learning_starts: int | None = None,
    num_envs: int = 1,
    progress: bool = False,
) -> BuildResult:
    """Train, checkpoint, roll out and write ``{prefix}-medium``, ``-medium-replay``, ``-expert``.

    ``medium-replay`` needs an off-policy algorithm (a replay buffer); with ``ppo`` it is skipped.
    ``progress`` shows SB3's progress bar while training and seqrl's while collecting.
    """
    if train_steps < 2 or dataset_steps < 1:
        raise UsageError(
            f"--steps must be >= 2 and --dataset-steps >= 1, got {train_steps}, {dataset_steps}"
        )
    if not 0 < medium_fraction < 1:
        raise UsageError(f"--medium-fraction must be in (0, 1), got {medium_fraction}")
    kinds = ["medium", "medium-replay", "expert"] if algo != "ppo" else ["medium", "expert"]
    ids = {kind: minari_id(f"{prefix}-{kind}") for kind in kinds}
    for dataset_id in ids.values():
        if is_local_minari(dataset_id):
            raise UsageError(
                f"--prefix: dataset '{dataset_id}' already exists under {minari_root()}"
            )
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    cls = _algo_class(algo)
    env = gym.make(env_id)
    kwargs: dict[str, object] = {"seed": seed, "verbose": 0}
    if algo != "ppo":
        kwargs["buffer_size"] = train_steps
        if learning_starts is not None:
            kwargs["learning_starts"] = learning_starts
    model = cls("MlpPolicy", env, **kwargs)
    medium_steps = max(1, int(train_steps * medium_fraction))
    _learn(model, progress, total_timesteps=medium_steps)
    checkpoints = {"medium": checkpoint_dir / "medium.zip", "expert": checkpoint_dir / "expert.zip"}
    _save_model(model, checkpoints["medium"])
    written: dict[str, str] = {}
    if "medium-replay" in ids:
        replay = replay_to_dataset(model, env_id, medium_steps, ids["medium-replay"])
        write_minari(
            replay, ids["medium-replay"], algorithm_name=f"SB3 {algo.upper()} replay buffer"
        )
        written["medium-replay"] = ids["medium-replay"]
    _learn(model, progress, total_timesteps=train_steps - medium_steps, reset_num_timesteps=False)
    _save_model(model, checkpoints["expert"])
    env.close()
    for kind in ("medium", "expert"):
        collect(
            env_id,
            f"sb3:{checkpoints[kind]}",
            steps=dataset_steps,
            name=ids[kind],
            num_envs=num_envs,
            seed=seed + 1,
            progress=progress,
        )
        written[kind] = ids[kind]
    return BuildResult(dataset_ids=written, checkpoints=checkpoints)
