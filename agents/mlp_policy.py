"""A deterministic MLP policy (observation -> hidden ReLU layers -> tanh action) as a seqrl agent.

This is how seqrl ships behaviour policies (e.g. the SAC actors that ``make demo`` collects its
dataset with): the actor's weights are stored in a seqrl checkpoint (``algo="mlp-policy"``), so
they load with ``weights_only=True`` and never need unpickling. ``seqrl eval``, ``seqrl rollout``
and ``seqrl collect`` accept such a file as POLICY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from seqrl.checkpoint import Checkpoint, load_state, save_checkpoint
from seqrl.config import from_dict
from seqrl.errors import CheckpointError, UsageError

ALGO = "mlp-policy"


@dataclass
class MLPPolicyConfig:
    """Shape of the policy network and where it came from."""

    obs_dim: int = 17
    act_dim: int = 6
    hidden: tuple[int, ...] = (256, 256)
    env: str = field(default="", metadata={"help": "env id the policy was trained on"})
    source: str = field(default="", metadata={"help": "how the weights were obtained"})


class MLPPolicy(torch.nn.Module):
    """``(N, obs_dim) -> (N, act_dim)`` in [-1, 1]: Linear-ReLU stack, linear head, tanh."""

    def __init__(self, cfg: MLPPolicyConfig) -> None:
        super().__init__()
        dims = [cfg.obs_dim, *cfg.hidden, cfg.act_dim]
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action in [-1, 1]."""
        x = obs
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return torch.tanh(self.layers[-1](x))


class MLPPolicyAgent:
    """Acts with an :class:`MLPPolicy`, rescaled to the env's Box action bounds."""

    def __init__(self, policy: MLPPolicy, action_space: spaces.Box, device: str = "cpu") -> None:
        self.policy = policy.to(device).eval()
        self.device = device
        self.low = action_space.low.astype(np.float32)
        self.high = action_space.high.astype(np.float32)

    def reset(self, num_envs: int) -> None:
        """Stateless: nothing to reset."""

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(N, obs_dim)`` -> ``(N, act_dim)`` float32 actions within the action bounds."""
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device)
        unit = self.policy(obs).cpu().numpy()
        return (self.low + (unit + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Stateless: nothing to record."""


def save_mlp_policy(
    path: str | Path, policy: MLPPolicy, cfg: MLPPolicyConfig, extra: dict[str, Any]
) -> Path:
    """Write ``policy`` as a seqrl checkpoint (``algo="mlp-policy"``)."""
    return save_checkpoint(
        path, algo=ALGO, config=cfg, step=0, state={"model": policy.state_dict()}, extra=extra
    )


def agent_from_checkpoint(
    checkpoint: Checkpoint, env: Any, device: str = "cpu", arg: str | None = None
) -> MLPPolicyAgent:
    """The :data:`~seqrl.agents.policies.POLICY_LOADERS` entry for ``mlp-policy`` checkpoints."""
    if arg is not None:
        raise UsageError(f"policy '{checkpoint.path}@{arg}': an MLP policy takes no @ARG")
    cfg = from_dict(MLPPolicyConfig, checkpoint.config, where=str(checkpoint.path))
    if not isinstance(env.action_space, spaces.Box):
        raise CheckpointError(f"{checkpoint.path}: an MLP policy needs a Box action space")
    policy = MLPPolicy(cfg)
    load_state(policy, checkpoint.state["model"], what="policy weights", path=checkpoint.path)
    return MLPPolicyAgent(policy, env.action_space, device)
