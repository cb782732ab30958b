"""Turn a policy spec into an :class:`~seqrl.protocols.Agent` for an environment.

A spec (shared by ``seqrl eval``, ``seqrl rollout`` and ``seqrl collect``) is one of

- ``random``: :class:`~seqrl.agents.baselines.RandomAgent`;
- ``sb3:PATH`` or ``sb3:ALGO:PATH``: a Stable-Baselines3 model (trusted files only: SB3 unpickles);
- a seqrl checkpoint file or run directory: read with :func:`seqrl.checkpoint.load_checkpoint`
  (never unpickles) and handed to the factory registered for its ``algo`` in
  :data:`POLICY_LOADERS`.

An algorithm makes its checkpoints loadable by adding ``"algo": "module:function"`` to
:data:`POLICY_LOADERS`, where ``function(checkpoint, env, device, arg) -> Agent`` (see
:class:`AgentFactory`); ``arg`` is the text after ``@`` in a ``PATH@ARG`` spec, or None. If the checkpoint's ``extra`` holds ``observation_space`` /
``action_space`` (written with :func:`space_to_dict`), they are checked against the env first.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from seqrl.agents.baselines import SB3_ALGOS, RandomAgent, SB3Agent
from seqrl.checkpoint import Checkpoint, load_checkpoint
from seqrl.envs.config import EnvConfig
from seqrl.errors import CheckpointError, UsageError
from seqrl.protocols import Agent

POLICY_LOADERS: dict[str, str] = {
    "dt": "seqrl.agents.dt:agent_from_checkpoint",
    "mlp-policy": "seqrl.agents.mlp_policy:agent_from_checkpoint",
    "twm": "seqrl.world_models.train_twm:agent_from_checkpoint",
    "iris": "seqrl.world_models.train_iris:agent_from_checkpoint",
}
"""Checkpoint ``algo`` -> ``"module:function"`` building its agent, e.g.
``"dt": "seqrl.agents.dt:agent_from_checkpoint"``."""


@dataclass(frozen=True)
class EnvSpaces:
    """What a policy needs to know about the env it will act in: the single env's spaces."""

    env_id: str
    observation_space: gym.Space
    action_space: gym.Space

    @classmethod
    def of(cls, vec_env: VectorEnv, env_id: str | None = None) -> EnvSpaces:
        """The spaces of one env of ``vec_env``."""
        from seqrl.envs.evaluate import vec_env_id

        name = env_id or vec_env_id(vec_env)
        return cls(name, vec_env.single_observation_space, vec_env.single_action_space)


class AgentFactory(Protocol):
    """Builds an agent from a checkpoint of its algorithm (the targets of :data:`POLICY_LOADERS`)."""

    def __call__(
        self, checkpoint: Checkpoint, env: EnvSpaces, device: str, arg: str | None
    ) -> Agent: ...


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A JSON-ready description of a Box / Discrete / MultiDiscrete / MultiBinary space."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": [int(x) for x in space.nvec.ravel()]}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": [int(x) for x in space.shape]}
    return {"type": type(space).__name__}


def describe_space(space: gym.Space | dict[str, Any]) -> str:
    """``Box(4,)``, ``Discrete(6)``, ... for error messages."""
    d = space if isinstance(space, dict) else space_to_dict(space)
    if d["type"] == "Box":
        return f"Box{tuple(d['shape'])}"
    if d["type"] == "Discrete":
        return f"Discrete({d['n']})"
    return f"{d['type']}({d.get('nvec', d.get('n', ''))})"


def _matches(trained: dict[str, Any], env: dict[str, Any]) -> bool:
    if trained["type"] != env["type"]:
        return False
    if trained["type"] == "Box":
        a, b = tuple(trained["shape"]), tuple(env["shape"])
        # SB3 trains image policies channels-first and transposes HWC observations itself
        transposed = (
            len(a) == 3 and len(b) == 3 and (a == (b[2], b[0], b[1]) or b == (a[2], a[0], a[1]))
        )
        return a == b or transposed
    return {k: v for k, v in trained.items() if k != "dtype"} == {
        k: v for k, v in env.items() if k != "dtype"
    }


def check_spaces(
    trained_obs: gym.Space | dict[str, Any],
    trained_act: gym.Space | dict[str, Any],
    env: EnvSpaces,
    what: str,
) -> None:
    """UsageError (one line) when the env's spaces differ from those the policy was trained on."""
    for kind, trained, actual in (
        ("observation", trained_obs, env.observation_space),
        ("action", trained_act, env.action_space),
    ):
        t = trained if isinstance(trained, dict) else space_to_dict(trained)
        if not _matches(t, space_to_dict(actual)):
            raise UsageError(
                f"{what} was trained on {kind} space {describe_space(t)}, "
                f"but {env.env_id} has {describe_space(actual)}"
            )


def _factory(algo: str, path: Path | None) -> AgentFactory:
    target = POLICY_LOADERS.get(algo)
    if target is None:
        known = ", ".join(sorted(POLICY_LOADERS)) or "none registered"
        raise CheckpointError(
            f"{path}: no agent for checkpoints of algorithm '{algo}' (known: {known})"
        )
    module_name, _, function = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise CheckpointError(
            f"{path}: agent loader '{target}' for '{algo}' is unavailable ({exc})"
        ) from None


def checkpoint_spec(spec: str) -> tuple[Path, str | None]:
    """``PATH`` or ``PATH@ARG`` of a seqrl checkpoint spec -> (path, arg); UsageError (one
    line) unless the path exists. ``random`` and ``sb3:`` specs are not checkpoint specs."""
    path, arg = spec, None
    if not Path(spec).exists() and "@" in spec:  # PATH@ARG, e.g. a DT checkpoint and its target
        path, _, arg = spec.rpartition("@")
    if not Path(path).exists():
        raise UsageError(
            f"policy '{spec}': not 'random', 'sb3:PATH' or an existing seqrl checkpoint"
        )
    return Path(path), arg


def policy_env_config(
    spec: str,
    env_id: str,
    *,
    num_envs: int = 1,
    seed: int = 0,
    atari_preset: str | None = None,
    backend: str = "gymnasium",
) -> EnvConfig:
    """The env ``spec``'s policy acts in: ``env_id`` in the protocol a checkpoint was trained in
    (a world-model run's config ``env``: Atari preset, MinAtar images, time limit; a DT's
    evaluation protocol, ``extra["env_config"]``), else in the defaults with Atari preset
    ``dqn``. An ``atari_preset`` given overrides either; ``seqrl
    eval``, ``rollout`` and ``collect`` build their envs with it."""
    from seqrl.config import from_dict
    from seqrl.envs.config import atari_preset as preset

    trained = None
    if spec != "random" and not spec.startswith("sb3:"):
        checkpoint = load_checkpoint(checkpoint_spec(spec)[0])
        # world-model runs: the config's env; offline agents (whose config names only the
        # dataset's env id there) record the protocol they were evaluated in
        trained = checkpoint.config.get("env")
        if not isinstance(trained, dict):
            trained = checkpoint.extra.get("env_config")
    if isinstance(trained, dict):
        base = from_dict(EnvConfig, trained, where=f"policy '{spec}': env")
    else:
        base = EnvConfig(atari=preset("dqn"))
    if atari_preset is not None:
        base = replace(base, atari=preset(atari_preset))
    # the protocol is the observations' and the episodes'; how envs are stepped is this call's
    return replace(
        base,
        id=env_id,
        num_envs=num_envs,
        seed=seed,
        backend=backend,
        vectorization=EnvConfig().vectorization,
    )


def load_policy(
    spec: str, env: EnvSpaces | VectorEnv, *, device: str = "cpu", seed: int | None = None
) -> Agent:
    """The agent named by ``spec`` (module docstring), checked against ``env``'s spaces.

    Args:
        spec: ``random``, ``sb3:PATH``, ``sb3:ALGO:PATH`` or a seqrl checkpoint path, optionally
            ``PATH@ARG`` where the algorithm takes an argument (a DT's target return).
        env: the spaces of the env the agent will act in (or the vector env itself).
        device: torch device for learned policies.
        seed: seeds the random agent.

    Raises:
        UsageError: a malformed spec or spaces the policy was not trained for.
        CheckpointError: a missing file, a file that is not seqrl's (or SB3's), an unknown algo.
    """
    if isinstance(env, VectorEnv):
        env = EnvSpaces.of(env)
    if spec == "random":
        return RandomAgent(env.action_space, seed=seed)
    if spec.startswith("sb3:"):
        rest = spec[len("sb3:") :]
        algo, _, model = rest.partition(":")
        if algo.lower() not in SB3_ALGOS or not model:
            algo, model = "", rest
        if not model:
            raise UsageError("policy 'sb3:' needs a model path: sb3:PATH or sb3:ALGO:PATH")
        agent = SB3Agent(model, algo=algo or None, device=device)
        check_spaces(agent.observation_space, agent.action_space, env, f"SB3 model {model}")
        return agent
    path, arg = checkpoint_spec(spec)
    checkpoint = load_checkpoint(path, map_location=device)
    obs_space, act_space = (
        checkpoint.extra.get("observation_space"),
        checkpoint.extra.get("action_space"),
    )
    if obs_space is not None and act_space is not None:
        check_spaces(obs_space, act_space, env, f"checkpoint {checkpoint.path} ({checkpoint.algo})")
    return _factory(checkpoint.algo, checkpoint.path)(checkpoint, env, device, arg)
