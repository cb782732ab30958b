"""Acting in the real environment with a world model's features and an actor-critic's policy.

The actor-critic of a world-model agent is trained on what the world model hands it in
imagination (TWM: latent states; IRIS: decoded frames). In the real environment it must see the
same kind of features, so :class:`WorldModelAgent` keeps the last ``context_len`` real steps of
every env, asks the world model for their features (``imagine_start``, exactly as imagination
starts from real context) and feeds the last step's features to the policy, carrying the
policy's recurrent state from step to step.

The models of a world-model agent are built here too (:func:`build_models`, for the loop and
for loading), with the agent evaluations act with (:func:`evaluation_agent`) and the policy
loader that lets ``seqrl eval`` / ``rollout`` / ``collect`` play a checkpoint
(:func:`policy_loader`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from seqrl.checkpoint import load_state
from seqrl.config import from_dict
from seqrl.errors import CheckpointError, UsageError
from seqrl.types import TrajectoryBatch


class WorldModelAgent:
    """The :class:`~seqrl.protocols.Agent` of a world model plus an actor-critic.

    Args:
        world_model: implements ``imagine_start`` (the :class:`~seqrl.protocols.WorldModel`
            protocol).
        actor_critic: :class:`~seqrl.agents.actor_critic.ActorCritic`.
        context_len: real steps handed to ``imagine_start`` (the world model's memory).
        frame_stack: observations stacked per step, as the replay sampler stacks them (the
            episode's first frame repeats before its start).
        epsilon: probability of a uniformly random action.
        temperature: the policy's logits are divided by it; 0 takes the most likely action.
        seed: seed of the agent's own sampling.
        device: where the models live.
    """

    def __init__(
        self,
        world_model: Any,
        actor_critic: Any,
        *,
        context_len: int = 1,
        frame_stack: int = 1,
        epsilon: float = 0.0,
        temperature: float = 1.0,
        seed: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if context_len < 1 or frame_stack < 1:
            raise ValueError("context_len and frame_stack must be >= 1")
        self.world_model = world_model
        self.actor_critic = actor_critic
        self.context_len = context_len
        self.frame_stack = frame_stack
        self.epsilon = epsilon
        self.temperature = temperature
        self.device = torch.device(device)
        self.num_actions = int(world_model.num_actions)
        self._rng = np.random.default_rng(seed)
        self._generator = torch.Generator().manual_seed(int(self._rng.integers(2**62)))
        self.reset(1)

    def reset(self, num_envs: int) -> None:
        """Forget every env's steps and the policy state."""
        self.num_envs = num_envs
        span = self.context_len + self.frame_stack - 1
        self._obs: list[deque[np.ndarray]] = [deque(maxlen=span) for _ in range(num_envs)]
        self._steps = np.zeros(num_envs, dtype=np.int64)  # real steps seen this episode
        self._actions: list[deque[int]] = [deque(maxlen=self.context_len) for _ in range(num_envs)]
        self._rewards: list[deque[float]] = [
            deque(maxlen=self.context_len) for _ in range(num_envs)
        ]
        self._policy_state = self.actor_critic.initial_state(num_envs)
        if self._policy_state is not None:
            self._policy_state = _to(self._policy_state, self.device)

    def context(self) -> TrajectoryBatch:
        """The last ``context_len`` steps of every env as a left-padded batch (last slot: now)."""
        n, k, s = self.num_envs, self.context_len, self.frame_stack
        first_obs = self._obs[0][-1]
        obs_shape = first_obs.shape if s == 1 else (s, *first_obs.shape)
        observations = np.zeros((n, k, *obs_shape), dtype=first_obs.dtype)
        actions = np.zeros((n, k), dtype=np.int64)
        rewards = np.zeros((n, k), dtype=np.float32)
        mask = np.zeros((n, k), dtype=bool)
        timesteps = np.zeros((n, k), dtype=np.int64)
        for i in range(n):
            frames = list(self._obs[i])
            seen = min(int(self._steps[i]), k)  # real slots of this env
            # frames[j] is the observation of step steps - len(frames) + j
            first_step = int(self._steps[i]) - len(frames)
            for slot in range(k - seen, k):
                step = int(self._steps[i]) - (k - slot)  # episode step of this slot
                if s == 1:
                    observations[i, slot] = frames[step - first_step]
                else:
                    for j in range(s):  # oldest first; before the episode: its first frame
                        back = max(step - (s - 1 - j), 0)
                        observations[i, slot, j] = frames[max(back - first_step, 0)]
                timesteps[i, slot] = step
            mask[i, k - seen :] = True
            past = list(self._actions[i])[-(seen - 1) :] if seen > 1 else []
            actions[i, k - len(past) - 1 : k - 1] = past
            rewards[i, k - len(past) - 1 : k - 1] = (
                list(self._rewards[i])[-len(past) :] if past else []
            )
        zeros = torch.zeros(n, k)
        return TrajectoryBatch(
            observations=torch.from_numpy(observations),
            actions=torch.from_numpy(actions),
            rewards=torch.from_numpy(rewards),
            returns_to_go=zeros,
            timesteps=torch.from_numpy(timesteps),
            mask=torch.from_numpy(mask),
            terminals=torch.zeros(n, k, dtype=torch.bool),
            extras={"burn_in": torch.from_numpy(mask.copy())},
        )

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """Append each env's observation, then sample every env's action at once."""
        for i in range(self.num_envs):
            self._obs[i].append(np.array(observations[i]))
            self._steps[i] += 1
        context = self.context().to(self.device)
        _, features = self.world_model.imagine_start(context)
        logits, _, self._policy_state = self.actor_critic.step(features[:, -1], self._policy_state)
        logits = logits.float().cpu()
        if self.temperature <= 0:
            actions = logits.argmax(-1).numpy()
        else:
            probs = torch.softmax(logits / self.temperature, dim=-1)
            actions = torch.multinomial(probs, 1, generator=self._generator)[:, 0].numpy()
        if self.epsilon > 0:
            explore = self._rng.random(self.num_envs) < self.epsilon
            actions = np.where(
                explore, self._rng.integers(self.num_actions, size=self.num_envs), actions
            )
        for i in range(self.num_envs):
            self._actions[i].append(int(actions[i]))
        return actions.astype(np.int64)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Record rewards; envs whose episode ended start afresh."""
        for i in range(self.num_envs):
            self._rewards[i].append(float(rewards[i]))
        ended = np.asarray(dones, dtype=bool)
        if ended.any():
            for row in np.flatnonzero(ended).tolist():
                self._obs[row].clear()
                self._actions[row].clear()
                self._rewards[row].clear()
                self._steps[row] = 0
            if self._policy_state is not None:
                self._policy_state = self.actor_critic.reset_rows(
                    self._policy_state, torch.from_numpy(ended).to(self.device)
                )


def _to(state: Any, device: torch.device) -> Any:
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, tuple | list):
        return type(state)(_to(s, device) for s in state)
    return state


def build_models(
    cfg: Any,
    observation_space: Any,
    action_space: Any,
    build_world_model: Callable[[Any, Any, Any], torch.nn.Module],
    device: torch.device,
) -> tuple[Any, Any]:
    """The world model of ``cfg.world_model`` and the actor-critic that acts on its features."""
    from seqrl.agents.actor_critic import ActorCritic

    world_model: Any = build_world_model(cfg.world_model, observation_space, action_space)
    world_model.to(device)
    actor_critic = ActorCritic(world_model.feature_shape, world_model.num_actions, cfg.actor_critic)
    actor_critic.to(device)
    return world_model, actor_critic


def evaluation_agent(
    cfg: Any,
    world_model: Any,
    actor_critic: Any,
    device: torch.device | str,
    temperature: float | None = None,
) -> Any:
    """The agent that evaluations act with: ``cfg.eval.temperature`` (or ``temperature``), no
    exploration, its sampling seeded from ``cfg.loop.seed``; the loop's evaluations and
    ``seqrl eval`` / ``rollout`` of a checkpoint both use it."""
    return WorldModelAgent(
        world_model,
        actor_critic,
        context_len=cfg.actor_critic.burn_in + 1,
        frame_stack=int(getattr(world_model, "frame_stack", 1)),
        temperature=cfg.eval.temperature if temperature is None else temperature,
        seed=cfg.loop.seed + 10_000,
        device=device,
    )


def policy_loader(
    config_class: type, build_world_model: Callable[[Any, Any, Any], torch.nn.Module]
) -> Callable[..., Any]:
    """The policy loader (:data:`seqrl.agents.policies.POLICY_LOADERS`) of one world model's
    checkpoints: ``seqrl eval`` and ``seqrl rollout`` then act as the loop's evaluations do.

    The returned ``load(checkpoint, env, device, arg)`` rebuilds both models from the
    checkpoint's config for ``env``'s spaces and loads their weights; ``arg`` (a policy spec
    ``PATH@T``) is the sampling temperature, 0 for the most likely action (default: the
    config's ``eval.temperature``).
    """

    def load(checkpoint: Any, env: Any, device: str = "cpu", arg: str | None = None) -> Any:
        temperature = None if arg is None else _temperature(arg, f"{checkpoint.path}@{arg}")
        missing = [k for k in ("world_model", "actor_critic") if k not in checkpoint.state]
        if missing:
            raise CheckpointError(
                f"{checkpoint.path}: this {checkpoint.algo} checkpoint holds no "
                f"{' or '.join(missing)} weights"
            )
        cfg = from_dict(config_class, checkpoint.config, where=f"{checkpoint.path}: config")
        world_model, actor_critic = build_models(
            cfg, env.observation_space, env.action_space, build_world_model, torch.device(device)
        )
        where = checkpoint.path
        load_state(world_model, checkpoint.state["world_model"], what="world model", path=where)
        load_state(actor_critic, checkpoint.state["actor_critic"], what="actor-critic", path=where)
        world_model.eval()
        actor_critic.eval()
        return evaluation_agent(cfg, world_model, actor_critic, device, temperature)

    load.__doc__ = (
        f"The policy loader of {config_class.__name__} checkpoints ({__name__}.policy_loader)."
    )
    return load


def _temperature(text: str, spec: str) -> float:
    """The sampling temperature after ``@`` in a policy spec; UsageError unless a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"policy '{spec}': the temperature after @ must be a number >= 0")
    return value
