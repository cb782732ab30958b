"""``seqrl train twm``: a TWM agent learns a world model from its own experience and acts from it.

TWM (Robine et al. 2023, https://arxiv.org/abs/2303.07109) on the shared world-model loop
(:mod:`seqrl.world_models.loop`): collect, train the world model (:mod:`seqrl.world_models.twm`),
train the actor-critic on imagined rollouts (:mod:`seqrl.agents.actor_critic`), evaluate,
checkpoint with the replay buffer, resume.

Presets (``twm-atari100k`` is checked against ``docs/twm.md``):

- ``twm-atari100k``: the paper's Atari 100k run (a GPU run: about 125k updates of each part).
- ``twm-cartpole``: CartPole-v1 from its state vector, 4k env steps (about 10 CPU-minutes).
- ``twm-minatar``: MinAtar Breakout rendered as 64x64 grayscale frames, 10k env steps (about 25
  CPU-minutes).

Their learning curves over 3 seeds are in ``docs/world_models.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seqrl.agents.actor_critic import ActorCriticConfig
from seqrl.envs import EnvConfig, atari_preset
from seqrl.run import RunDir
from seqrl.world_models.agent import policy_loader
from seqrl.world_models.loop import (
    CollectConfig,
    ComponentSchedule,
    LoopResult,
    WMEvalConfig,
    WMLoopConfig,
    register_command,
    train_world_model_agent,
)
from seqrl.world_models.twm import TWMConfig, build_world_model

ALGO = "twm"


@dataclass
class TWMAgentConfig:
    """Everything a TWM run needs; saved resolved in the run directory and each checkpoint."""

    env: EnvConfig = field(default_factory=lambda: EnvConfig(id="ALE/Pong-v5"))
    world_model: TWMConfig = field(default_factory=TWMConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    world_model_train: ComponentSchedule = field(default_factory=ComponentSchedule)
    actor_critic_train: ComponentSchedule = field(default_factory=ComponentSchedule)
    collect: CollectConfig = field(default_factory=CollectConfig)
    eval: WMEvalConfig = field(default_factory=WMEvalConfig)
    loop: WMLoopConfig = field(default_factory=WMLoopConfig)


# One world-model update and one actor-critic update every 0.76 env steps: jrobine/twm
# trainer.py spends budget 1e9 - 5e7 on (95k env steps) at 100 x 16 + 400 x 15 samples per step.
TWM_UPDATES_PER_STEP = 1 / 0.76


def twm_atari100k() -> TWMAgentConfig:
    """The paper's Atari 100k run (values and sources: ``docs/twm.md``)."""
    from seqrl.agents.actor_critic import ac_twm
    from seqrl.world_models.twm import twm_atari100k as model

    return TWMAgentConfig(
        env=EnvConfig(id="ALE/Pong-v5", atari=atari_preset("twm")),
        world_model=model(),
        actor_critic=ac_twm(),
        world_model_train=ComponentSchedule(
            start=5000, ratio=TWM_UPDATES_PER_STEP, pretrain=18_750
        ),
        actor_critic_train=ComponentSchedule(start=5000, ratio=TWM_UPDATES_PER_STEP),
        collect=CollectConfig(steps=100_000, prefill=5000, chunk=1, sampling="visits"),
        eval=WMEvalConfig(every=5000, episodes=10, final_episodes=100),
        loop=WMLoopConfig(log_every=1000, checkpoint_every=10_000),
    )


def _small_actor_critic(horizon: int, batch_size: int) -> ActorCriticConfig:
    """TWM's actor-critic with 128 x 2 MLPs, faster learning rates and IRIS's plain entropy bonus
    (TWM's thresholded term let the CartPole policy collapse early in a 6k-step trial)."""
    return ActorCriticConfig(
        hidden_dims=(128, 128),
        actor_lr=3e-4,
        critic_lr=1e-3,
        entropy_mode="bonus",
        entropy_weight=1e-3,
        horizon=horizon,
        batch_size=batch_size,
        burn_in=1,
    )


def twm_cartpole() -> TWMAgentConfig:
    """CartPole-v1 from the state vector: a small TWM that learns on 2 CPU cores."""
    from seqrl.world_models.twm import twm_cartpole as model

    return TWMAgentConfig(
        env=EnvConfig(id="CartPole-v1"),
        world_model=model(),
        actor_critic=_small_actor_critic(horizon=15, batch_size=256),
        world_model_train=ComponentSchedule(start=500, ratio=0.5, pretrain=200),
        actor_critic_train=ComponentSchedule(start=500, ratio=0.5),
        collect=CollectConfig(steps=4000, prefill=500, chunk=4, sampling="visits"),
        eval=WMEvalConfig(every=1000, episodes=10, final_episodes=30, images=False),
        loop=WMLoopConfig(log_every=250, checkpoint_every=2000, device="cpu"),
    )


def twm_minatar() -> TWMAgentConfig:
    """MinAtar Breakout as 64x64 grayscale frames: a small TWM for the CPU."""
    from seqrl.world_models.twm import twm_minatar as model

    return TWMAgentConfig(
        env=EnvConfig(id="MinAtar/Breakout-v1"),
        world_model=model(),
        actor_critic=_small_actor_critic(horizon=15, batch_size=128),
        world_model_train=ComponentSchedule(start=1000, ratio=0.5, pretrain=200),
        actor_critic_train=ComponentSchedule(start=1000, ratio=0.5),
        collect=CollectConfig(steps=10_000, prefill=1000, chunk=4, sampling="visits"),
        eval=WMEvalConfig(every=1000, episodes=10, final_episodes=30),
        loop=WMLoopConfig(log_every=500, checkpoint_every=2000, device="cpu"),
    )


PRESETS: dict[str, Callable[[], TWMAgentConfig]] = {
    "twm-atari100k": twm_atari100k,
    "twm-cartpole": twm_cartpole,
    "twm-minatar": twm_minatar,
}
"""Preset name -> configuration."""


def train_twm(
    cfg: TWMAgentConfig, run: RunDir, *, resume: bool = False, quiet: bool = False
) -> LoopResult:
    """Run (or resume) a TWM agent in ``run``."""
    return train_world_model_agent(
        cfg, run, algo=ALGO, build_world_model=build_world_model, resume=resume, quiet=quiet
    )


agent_from_checkpoint = policy_loader(TWMAgentConfig, build_world_model)
"""The policy loader for ``twm`` checkpoints (``seqrl eval`` / ``seqrl rollout``; ``PATH@T``: temperature T)."""


def register(registry: Any) -> None:
    """Add ``seqrl train twm``."""
    register_command(
        registry,
        algo=ALGO,
        help="train a TWM world-model agent online",
        description=__doc__,
        config_class=TWMAgentConfig,
        presets=PRESETS,
        default_preset="twm-atari100k",
        build_world_model=build_world_model,
    )


__all__ = [
    "PRESETS",
    "TWMAgentConfig",
    "agent_from_checkpoint",
    "train_twm",
    "twm_atari100k",
    "twm_cartpole",
    "twm_minatar",
]
