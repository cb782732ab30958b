"""``seqrl train iris``: an IRIS agent learns a token world model from its own experience and acts
from imagined frames.

IRIS (Micheli et al. 2023, https://arxiv.org/abs/2209.00588) on the shared world-model loop
(:mod:`seqrl.world_models.loop`): collect, train the tokenizer and the GPT
(:mod:`seqrl.world_models.iris`), train the CNN + LSTM actor-critic on imagined frames
(:func:`seqrl.agents.actor_critic.ac_iris`), evaluate, checkpoint with the replay buffer,
resume.

Presets (``iris-atari100k`` is checked against ``docs/iris.md``):

- ``iris-atari100k``: the paper's Atari 100k run, 500 epochs of 200 env steps (a GPU run).
- ``iris-minatar``: MinAtar Breakout rendered as 64x64 RGB frames (palette ``bright``), small
  enough for the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from seqrl.agents.actor_critic import ActorCriticConfig, ac_iris
from seqrl.envs import EnvConfig, MinAtarConfig, atari_preset
from seqrl.run import RunDir
from seqrl.world_models.agent import policy_loader
from seqrl.world_models.iris import IRISConfig, build_world_model
from seqrl.world_models.iris_tokenizer import PERCEPTUAL_NOTE
from seqrl.world_models.loop import (
    CollectConfig,
    ComponentSchedule,
    LoopResult,
    WMEvalConfig,
    WMLoopConfig,
    register_command,
    train_world_model_agent,
)

ALGO = "iris"

EPOCH = 200  # env steps collected per IRIS epoch (trainer.yaml collection.train.config.num_steps)


@dataclass
class IRISAgentConfig:
    """Everything an IRIS run needs; saved resolved in the run directory and each checkpoint."""

    env: EnvConfig = field(
        default_factory=lambda: EnvConfig(id="ALE/Pong-v5", atari=atari_preset("iris"))
    )
    world_model: IRISConfig = field(default_factory=IRISConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ac_iris)
    tokenizer_train: ComponentSchedule = field(default_factory=ComponentSchedule)
    world_model_train: ComponentSchedule = field(default_factory=ComponentSchedule)
    actor_critic_train: ComponentSchedule = field(default_factory=ComponentSchedule)
    collect: CollectConfig = field(default_factory=CollectConfig)
    eval: WMEvalConfig = field(default_factory=WMEvalConfig)
    loop: WMLoopConfig = field(default_factory=WMLoopConfig)


def iris_atari100k() -> IRISAgentConfig:
    """The paper's Atari 100k run (values and sources: ``docs/iris.md``).

    IRIS trains each component for 200 steps after collecting each 200-step epoch, from the epoch
    after ``start_after_epochs``: a schedule with ``start = start_after_epochs * 200`` and ratio 1.
    It runs 600 epochs and collects in the first 500: ``collect.train_only`` = 100 epochs.
    """
    from seqrl.world_models.iris import iris_atari100k as model

    return IRISAgentConfig(
        env=EnvConfig(id="ALE/Pong-v5", atari=atari_preset("iris")),
        world_model=model(),
        actor_critic=ac_iris(),
        tokenizer_train=ComponentSchedule(start=5 * EPOCH, ratio=1.0),
        world_model_train=ComponentSchedule(start=25 * EPOCH, ratio=1.0),
        actor_critic_train=ComponentSchedule(start=50 * EPOCH, ratio=1.0),
        collect=CollectConfig(
            steps=500 * EPOCH,
            train_only=100 * EPOCH,
            prefill=0,
            chunk=EPOCH,
            epsilon=0.01,
            temperature=1.0,
            sampling="uniform",
        ),
        eval=WMEvalConfig(
            every=10_000, episodes=16, final_episodes=100, num_envs=8, temperature=0.5
        ),
        loop=WMLoopConfig(log_every=1000, checkpoint_every=10_000),
    )


def iris_minatar() -> IRISAgentConfig:
    """MinAtar Breakout as 64x64 RGB frames: a small IRIS for the CPU."""
    from seqrl.world_models.iris import iris_minatar as model

    return IRISAgentConfig(
        # bright: MinAtar's own palette draws the paddle nearly black, which the tokenizer misses
        env=EnvConfig(
            id="MinAtar/Breakout-v1",
            minatar=MinAtarConfig(render="rgb", size=64, palette="bright"),
        ),
        world_model=model(),
        actor_critic=replace(
            ac_iris(),
            cnn_channels=(16, 16, 32, 32),
            lstm_dim=128,
            batch_size=16,
            horizon=10,
            burn_in=4,
            actor_lr=3e-4,
            critic_lr=1e-3,
            # MinAtar episodes last about 10 steps: no learning from imagined steps past an end
            loss_weights="discounts",
        ),
        # the tokenizer trains alone, then is frozen: the GPT learns tokens that no longer move
        # (restarted dead codes change the background's token every few batches, docs/iris.md)
        tokenizer_train=ComponentSchedule(start=1000, ratio=1.0, stop=2000),
        world_model_train=ComponentSchedule(start=2000, ratio=2.0),
        actor_critic_train=ComponentSchedule(start=3500, ratio=0.5),
        collect=CollectConfig(
            steps=7000, prefill=1000, chunk=100, epsilon=0.01, sampling="uniform"
        ),
        eval=WMEvalConfig(every=1000, episodes=10, final_episodes=30, temperature=0.5),
        loop=WMLoopConfig(log_every=500, checkpoint_every=2500, device="cpu", precision="bf16"),
    )


PRESETS: dict[str, Callable[[], IRISAgentConfig]] = {
    "iris-atari100k": iris_atari100k,
    "iris-minatar": iris_minatar,
}
"""Preset name -> configuration."""


def train_iris(
    cfg: IRISAgentConfig, run: RunDir, *, resume: bool = False, quiet: bool = False
) -> LoopResult:
    """Run (or resume) an IRIS agent in ``run``."""
    return train_world_model_agent(
        cfg, run, algo=ALGO, build_world_model=build_world_model, resume=resume, quiet=quiet
    )


agent_from_checkpoint = policy_loader(IRISAgentConfig, build_world_model)
"""The policy loader for ``iris`` checkpoints (``seqrl eval`` / ``seqrl rollout``; ``PATH@T``: temperature T)."""


def register(registry: Any) -> None:
    """Add ``seqrl train iris``."""
    register_command(
        registry,
        algo=ALGO,
        help="train an IRIS world-model agent online",
        description=__doc__,
        config_class=IRISAgentConfig,
        presets=PRESETS,
        default_preset="iris-atari100k",
        build_world_model=build_world_model,
        notes=lambda cfg: (
            [PERCEPTUAL_NOTE] if cfg.world_model.tokenizer.perceptual == "off" else []
        ),
    )


__all__ = [
    "PRESETS",
    "IRISAgentConfig",
    "agent_from_checkpoint",
    "iris_atari100k",
    "iris_minatar",
    "train_iris",
]
