"""Collect a dataset by running a policy through the shared rollout loop, and write it for Minari.

``collect`` builds the vector env and the policy with the envs and agents layers
(:func:`seqrl.envs.make_vec_env`, :func:`seqrl.agents.policies.load_policy`), runs
:func:`seqrl.envs.rollout` for exactly ``steps`` transitions (episodes still running at the end are
kept, flagged truncated) and writes the result as a Minari dataset. Nothing is written before the
rollout has finished, and the write itself is atomic, so an interrupted collection leaves nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.data.minari_source import is_local_minari, minari_root, write_minari
from seqrl.errors import UsageError
from seqrl.protocols import Agent


def minari_id(name: str) -> str:
    """A valid Minari id from ``name``: ``-v0`` is appended when no ``-vN`` version is given."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*", name):
        raise UsageError(
            f"--name: '{name}' is not a valid dataset name (letters, digits, - _ . and /)"
        )
    return name if re.search(r"-v\d+$", name) else f"{name}-v0"


@dataclass
class NoisyAgent:
    """Exploration noise around any agent.

    Box actions: Gaussian noise of std ``noise * (high - low) / 2`` per dimension, clipped to the
    bounds. Discrete actions: with probability ``noise`` a uniformly random action.
    """

    agent: Agent
    action_space: gym.Space
    noise: float
    rng: np.random.Generator

    def reset(self, num_envs: int) -> None:
        """Forward to the wrapped agent."""
        self.agent.reset(num_envs)

    def act(self, observations: np.ndarray) -> np.ndarray:
        """The wrapped agent's ``(N, ...)`` actions, perturbed."""
        actions = np.asarray(self.agent.act(observations))
        if self.noise <= 0:
            return actions
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            scale = self.noise * (space.high - space.low) / 2.0
            noisy = actions + self.rng.normal(size=actions.shape) * scale
            return np.clip(noisy, space.low, space.high).astype(actions.dtype)
        if isinstance(space, gym.spaces.Discrete):
            explore = self.rng.random(len(actions)) < self.noise
            random = self.rng.integers(space.start, space.start + space.n, size=len(actions))
            return np.where(explore, random, actions).astype(actions.dtype)
        raise UsageError(f"--noise: unsupported action space {space}")

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Forward to the wrapped agent."""
        self.agent.observe(rewards, dones)


def collect(
    env_id: str,
    policy: str,
    steps: int,
    name: str | None = None,
    noise: float = 0.0,
    num_envs: int = 1,
    seed: int = 0,
    atari_preset: str | None = None,
    progress: bool = False,
) -> TrajectoryDataset:
    """Roll ``policy`` out for ``steps`` transitions; write it as Minari dataset ``name`` if given.

    Args:
        env_id: gymnasium id.
        policy: ``random``, ``sb3:PATH`` (an SB3 ``.zip``; pickled, trusted sources only) or the
            path of a seqrl checkpoint; resolved by :func:`seqrl.agents.policies.load_policy`.
        steps: transitions over all envs.
        name: Minari dataset id (``-v0`` appended when no version); None: do not write.
        noise: exploration noise level (see :class:`NoisyAgent`).
        num_envs: envs stepped together.
        seed: env seeds (env ``i`` gets ``seed + i``) and the noise generator's seed.
        atari_preset: the Atari preprocessing protocol for ALE ids (``dqn``, ``iris``, ``twm``);
            None: a world-model checkpoint's own protocol, else ``dqn``
            (:func:`seqrl.agents.policies.policy_env_config`).
        progress: show a progress bar over the steps.
    """
    from seqrl.agents.policies import EnvSpaces, load_policy, policy_env_config
    from seqrl.envs import make_vec_env, rollout
    from seqrl.envs.config import atari_preset_name
    from seqrl.envs.scores import ref_scores_for

    if steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    if noise < 0:
        raise UsageError(f"--noise must be >= 0, got {noise}")
    dataset_id = minari_id(name) if name is not None else None
    if dataset_id is not None and is_local_minari(dataset_id):
        raise UsageError(f"--name: dataset '{dataset_id}' already exists under {minari_root()}")
    cfg = policy_env_config(policy, env_id, num_envs=num_envs, seed=seed, atari_preset=atari_preset)
    vec_env = make_vec_env(cfg)
    try:
        agent: Agent = load_policy(policy, EnvSpaces.of(vec_env, env_id), seed=seed)
        if noise > 0:
            agent = NoisyAgent(
                agent, vec_env.single_action_space, noise, np.random.default_rng(seed)
            )
        trajectories = rollout(agent, vec_env, steps=steps, seed=seed, progress=progress)
        obs_space, act_space = vec_env.single_observation_space, vec_env.single_action_space
    finally:
        vec_env.close()
    ref = ref_scores_for(env_id)
    metadata = DatasetMetadata(
        name=dataset_id or f"{env_id}-{policy}",
        source="seqrl",
        location=dataset_id or "",
        env_id=env_id,
        observation_space=obs_space,
        action_space=act_space,
        ref_min_score=ref.low if ref else None,
        ref_max_score=ref.high if ref else None,
        extra={
            "policy": policy,
            "noise": noise,
            "steps": steps,
            "seed": seed,
            "atari": atari_preset_name(cfg.atari),
        },
    )
    dataset = TrajectoryDataset.from_trajectories(trajectories, metadata)
    if dataset_id is not None:
        algorithm = policy if not policy.startswith("sb3:") else "sb3"
        write_minari(
            dataset, dataset_id, algorithm_name=f"seqrl collect ({algorithm}, noise {noise})"
        )
    return dataset
