"""The world-model agent loop that every world model runs on.

Collect with the current policy into the replay buffer, train the world model on sampled
sequences, train the actor-critic on rollouts imagined from real context, evaluate through the
shared evaluator, log and checkpoint. When each component starts and how many updates it gets per
environment step come from the config (:class:`ComponentSchedule`), so each paper's schedule is a
preset. A killed run resumes from its last checkpoint, replay buffer included; at the end the
replay buffer is saved as a dataset (``<run>/dataset``) that the data layer loads.

Papers: TWM, Robine et al. 2023 (https://arxiv.org/abs/2303.07109); IRIS, Micheli et al. 2023
(https://arxiv.org/abs/2209.00588).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from seqrl.checkpoint import capture_rng, load_checkpoint, load_state, restore_rng, save_checkpoint
from seqrl.errors import CheckpointError, ConfigError
from seqrl.io import atomic_write_text
from seqrl.protocols import TrainingSpec
from seqrl.run import Logger, RunDir, progress
from seqrl.trainer import Precision, precision_dtype
from seqrl.training import seed_everything, select_device, update
from seqrl.world_models.agent import WorldModelAgent, build_models, evaluation_agent


@dataclass
class ComponentSchedule:
    """When one trainable component updates (its batches and optimizer come from its config)."""

    start: int = field(default=0, metadata={"help": "env steps collected before the first update"})
    ratio: float = field(default=1.0, metadata={"help": "updates per env step once started"})
    pretrain: int = field(
        default=0,
        metadata={
            "help": "extra updates when it starts, on the prefill (with the component's "
            "pretrain_loss where it has one)"
        },
    )

    stop: int = field(
        default=0,
        metadata={
            "help": "env steps after which it no longer updates, its weights frozen from then "
            "on (0: never stops)"
        },
    )

    def __post_init__(self) -> None:
        if self.start < 0 or self.ratio < 0 or self.pretrain < 0:
            raise ConfigError("start, ratio and pretrain must be >= 0")
        if self.stop and self.stop <= self.start:
            raise ConfigError(f"stop ({self.stop}) must be 0 (never) or above start ({self.start})")

    def due(self, env_steps: int) -> int:
        """Updates owed at schedule step ``env_steps``: the env steps collected, then on
        through ``collect.train_only`` steps without collecting."""
        if self.stop:
            env_steps = min(env_steps, self.stop)
        if env_steps < self.start:
            return 0
        return self.pretrain + math.floor((env_steps - self.start) * self.ratio + 1e-9)


@dataclass
class CollectConfig:
    """How the agent gathers real experience."""

    steps: int = field(default=100_000, metadata={"help": "agent steps in the environment"})
    prefill: int = field(default=5000, metadata={"help": "steps of a uniform random policy first"})
    chunk: int = field(
        default=1, metadata={"help": "env steps collected between two rounds of updates"}
    )
    epsilon: float = field(default=0.0, metadata={"help": "probability of a random action"})
    temperature: float = field(default=1.0, metadata={"help": "policy temperature (0: greedy)"})
    sampling: Literal["uniform", "visits"] = field(
        default="visits",
        metadata={"help": "world-model batches: uniform, or TWM's softmax(-visits / T)"},
    )
    visit_temperature: float = field(default=20.0, metadata={"help": "T of visits sampling"})
    train_only: int = field(
        default=0,
        metadata={
            "help": "schedule steps after collect.steps in which every component keeps its "
            "schedule on the final replay without collecting (IRIS's last 100 epochs: 20000)"
        },
    )

    def __post_init__(self) -> None:
        if self.steps < 1 or self.prefill < 0 or self.chunk < 1 or self.train_only < 0:
            raise ConfigError(
                "need collect.steps >= 1, collect.prefill >= 0, collect.chunk >= 1, "
                "collect.train_only >= 0"
            )


@dataclass
class WMEvalConfig:
    """Periodic and final evaluation through the shared evaluator."""

    every: int = field(default=5000, metadata={"help": "env steps between evaluations (0: end)"})
    episodes: int = field(default=10, metadata={"help": "episodes per periodic evaluation"})
    final_episodes: int = field(default=100, metadata={"help": "episodes of the final evaluation"})
    num_envs: int = field(default=1, metadata={"help": "envs stepped together in evaluation"})
    temperature: float = field(default=1.0, metadata={"help": "policy temperature (0: greedy)"})
    images: bool = field(
        default=True, metadata={"help": "log imagined frames next to real ones (image envs)"}
    )


@dataclass
class WMLoopConfig:
    """Seed, device, logging and checkpoint cadence."""

    seed: int = field(default=0, metadata={"help": "seed for envs, sampling and initialisation"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    log_every: int = field(default=1000, metadata={"help": "env steps between train/ logs"})
    checkpoint_every: int = field(
        default=10_000, metadata={"help": "env steps between checkpoints (replay included)"}
    )
    precision: Precision = field(
        default="fp32",
        metadata={
            "help": "bf16: autocast the world-model components' updates (TWM's world model, "
            "IRIS's tokenizer and GPT) to bfloat16; imagination, the actor-critic and acting "
            "stay float32, as do weights, optimizers and checkpoints"
        },
    )

    def __post_init__(self) -> None:
        if self.log_every < 1 or self.checkpoint_every < 1:
            raise ConfigError("log_every and checkpoint_every must be >= 1")


@dataclass
class LoopResult:
    """What a finished run reports."""

    env_steps: int
    updates: dict[str, int]
    final_return: float
    final_returns: np.ndarray
    train_returns: list[float]
    wall_time: float  # seconds; a resumed run adds its earlier legs (up to their last checkpoint)
    cpu_time: float  # CPU seconds of this process, earlier legs added the same way


@dataclass
class Learner:
    """The trainable parts of a world-model agent and their optimizers, as the loop builds them."""

    world_model: Any
    actor_critic: Any
    components: dict[str, torch.nn.Module]
    specs: dict[str, TrainingSpec]
    wm_optimizers: dict[str, torch.optim.Optimizer]
    ac_optimizer: torch.optim.Optimizer
    frame_stack: int


def build_learner(
    cfg: Any,
    observation_space: Any,
    action_space: Any,
    build_world_model: Callable[[Any, Any, Any], torch.nn.Module],
    device: torch.device,
) -> Learner:
    """World model, actor-critic, each component's Adam (its ``TrainingSpec``) and the
    actor-critic's Adam (its parameter groups)."""
    world_model, actor_critic = build_models(
        cfg, observation_space, action_space, build_world_model, device
    )
    components = world_model.components()
    specs = {name: world_model.training_spec(name) for name in components}
    optimizers: dict[str, torch.optim.Optimizer] = {
        name: torch.optim.Adam(
            module.parameters(),
            lr=specs[name].lr,
            eps=specs[name].eps,
            weight_decay=specs[name].weight_decay,
        )
        for name, module in components.items()
    }
    return Learner(
        world_model=world_model,
        actor_critic=actor_critic,
        components=components,
        specs=specs,
        wm_optimizers=optimizers,
        ac_optimizer=torch.optim.Adam(actor_critic.param_groups()),
        frame_stack=int(getattr(world_model, "frame_stack", 1)),
    )


def make_samplers(learner: Learner, replay: Any, cfg: Any) -> tuple[dict[str, Any], Any]:
    """Each component's sequence sampler over ``replay`` and the actor-critic's context sampler.

    World-model sequences may start at any step and run past the episode's end (``pad_end``), so
    episode ends (terminations) are trained on as often as any other step; with
    ``collect.sampling=visits`` they follow TWM's visit-count weights.
    """
    from seqrl.data import SequenceSampler

    weights = (
        replay.visit_weights(cfg.collect.visit_temperature)
        if cfg.collect.sampling == "visits"
        else None
    )
    wm_samplers = {
        name: SequenceSampler(
            replay,
            seq_len=spec.seq_len,
            burn_in=spec.burn_in,
            weights=weights,
            frame_stack=learner.frame_stack,
            pad_end=True,
        )
        for name, spec in learner.specs.items()
    }
    ac_sampler = SequenceSampler(
        replay, seq_len=1, burn_in=cfg.actor_critic.burn_in, frame_stack=learner.frame_stack
    )
    return wm_samplers, ac_sampler


def train_world_model_agent(
    cfg: Any,
    run: RunDir,
    *,
    algo: str,
    build_world_model: Callable[[Any, Any, Any], torch.nn.Module],
    resume: bool = False,
    quiet: bool = False,
) -> LoopResult:
    """Run (or resume) the whole loop of ``cfg`` in ``run``.

    ``cfg`` has the fields ``env`` (:class:`~seqrl.envs.EnvConfig`), ``world_model`` (the model's
    config, given to ``build_world_model(config, observation_space, action_space)``; the model's
    ``training_spec(name)`` gives each component's :class:`TrainingSpec`), ``actor_critic``
    (batch size, burn-in, horizon, optimizer groups), a :class:`ComponentSchedule` named
    ``<component>_train`` for each of ``world_model.components()`` (TWM: ``world_model_train``)
    and ``actor_critic_train``, ``collect``, ``eval`` and ``loop``.
    """
    from seqrl.agents.baselines import RandomAgent
    from seqrl.agents.policies import space_to_dict
    from seqrl.data import ReplayBuffer, SequenceSampler
    from seqrl.envs import Collector, evaluate, make_vec_env
    from seqrl.world_models.imagination import imagine

    start_time, start_cpu = time.perf_counter(), time.process_time()
    device = select_device(cfg.loop.device)
    rng = seed_everything(cfg.loop.seed)
    vec_env = make_vec_env(cfg.env, train=True)
    obs_space, act_space = vec_env.single_observation_space, vec_env.single_action_space
    learner = build_learner(cfg, obs_space, act_space, build_world_model, device)
    world_model, actor_critic = learner.world_model, learner.actor_critic
    components, specs = learner.components, learner.specs
    wm_optimizers, ac_optimizer = learner.wm_optimizers, learner.ac_optimizer
    frame_stack = learner.frame_stack
    schedules = {name: _schedule(cfg, name) for name in components}
    ac_cfg = cfg.actor_critic

    replay = ReplayBuffer(
        capacity=cfg.collect.steps + cfg.env.num_envs,
        num_envs=cfg.env.num_envs,
        observation_space=obs_space,
        action_space=act_space,
        env_id=cfg.env.id,
    )
    updates = {name: 0 for name in [*components, "actor_critic"]}
    # env_steps: steps collected; clock: the schedules' step, which runs on after collect.steps
    # for collect.train_only more steps without collecting
    env_steps = clock = 0
    train_returns: list[float] = []
    replay_dir = None
    cpu_before = wall_before = 0.0  # CPU and wall seconds of earlier legs of a resumed run
    if resume:
        ckpt = load_checkpoint(run.last_checkpoint, algo=algo)
        replay_dir = run.path / str(ckpt.extra["replay"])
        # a larger budget (--collect.steps on resume) needs a larger buffer
        replay = ReplayBuffer.load(replay_dir, capacity=cfg.collect.steps + cfg.env.num_envs)
        replay.close_episodes()  # the envs restart: running episodes end truncated
        load_state(world_model, ckpt.state["world_model"], what="world model", path=ckpt.path)
        load_state(actor_critic, ckpt.state["actor_critic"], what="actor-critic", path=ckpt.path)
        try:
            for name, opt in wm_optimizers.items():
                opt.load_state_dict(ckpt.state[f"optimizer_{name}"])
            ac_optimizer.load_state_dict(ckpt.state["optimizer_actor_critic"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.path}: optimizer state does not match ({exc})") from None
        restore_rng(ckpt.rng, {"sampler": rng})
        env_steps = ckpt.step
        clock = int(ckpt.extra.get("clock", env_steps))
        updates.update(ckpt.extra["updates"])
        train_returns = list(ckpt.extra.get("train_returns", []))
        cpu_before = float(ckpt.extra.get("cpu_s", 0.0))
        wall_before = float(ckpt.extra.get("wall_s", 0.0))

    wm_samplers, ac_sampler = make_samplers(learner, replay, cfg)
    amp_dtype = precision_dtype(cfg.loop.precision)
    collector = Collector(vec_env, seed=cfg.env.seed + env_steps)
    offset = env_steps - collector.steps
    random_agent = RandomAgent(act_space, seed=cfg.loop.seed + env_steps)
    agent = WorldModelAgent(
        world_model,
        actor_critic,
        context_len=ac_cfg.burn_in + 1,
        frame_stack=frame_stack,
        epsilon=cfg.collect.epsilon,
        temperature=cfg.collect.temperature,
        seed=cfg.loop.seed + env_steps + 1,
        device=device,
    )

    def evaluation(episodes: int, logger: Logger, step: int) -> np.ndarray:
        eval_agent = evaluation_agent(cfg, world_model, actor_critic, device)
        world_model.eval()
        actor_critic.eval()
        seed = cfg.env.seed + 1_000_000
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            # torch's generator too, so that an evaluation depends on the weights and the seed
            # alone, as `seqrl eval CHECKPOINT --seed S` does (TWM samples latents with it)
            torch.manual_seed(seed)
            result = evaluate(
                eval_agent, _eval_env(cfg), episodes=episodes, seed=seed, num_envs=cfg.eval.num_envs
            )
        world_model.train()
        actor_critic.train()
        metrics = {"return": result.mean, "return_std": result.std}
        if result.normalized_mean is not None:
            metrics["normalized"] = float(result.normalized_mean)
        logger.log(step, {f"eval/{k}": v for k, v in metrics.items()})
        if cfg.eval.images and len(obs_space.shape or ()) >= 2 and replay.num_episodes:
            # its own uniform sampler: drawing must not count as a visit of TWM's sampling
            frames = SequenceSampler(replay, seq_len=10, burn_in=4, frame_stack=frame_stack)
            _log_imagined_frames(world_model, frames, logger, step, device)
        return result.returns

    def save() -> None:
        nonlocal replay_dir
        new_dir = run.path / f"replay-{env_steps}"
        replay.save(new_dir)
        state = {
            "world_model": world_model.state_dict(),
            "actor_critic": actor_critic.state_dict(),
            "optimizer_actor_critic": ac_optimizer.state_dict(),
            **{f"optimizer_{n}": o.state_dict() for n, o in wm_optimizers.items()},
        }
        save_checkpoint(
            run.last_checkpoint,
            algo=algo,
            config=cfg,
            step=env_steps,
            state=state,
            rng=capture_rng({"sampler": rng}),
            extra={
                "replay": new_dir.name,
                "updates": updates,
                "clock": clock,
                "train_returns": train_returns[-1000:],
                "observation_space": space_to_dict(obs_space),
                "action_space": space_to_dict(act_space),
                "num_actions": int(world_model.num_actions),
                "env_id": cfg.env.id,
                "cpu_s": cpu_before + time.process_time() - start_cpu,
                "wall_s": wall_before + time.perf_counter() - start_time,
            },
        )
        for old in run.path.glob("replay-*"):  # only after the checkpoint names the new one
            if old != new_dir:
                shutil.rmtree(old, ignore_errors=True)
        replay_dir = new_dir

    total = cfg.collect.steps
    end = total + cfg.collect.train_only
    bar = progress(total=end, initial=clock, desc=f"train {algo}", quiet=quiet, unit="step")
    last_log, last_eval, last_ckpt = clock, clock, clock
    tick = time.perf_counter()
    tick_steps = env_steps
    metrics: dict[str, dict[str, float]] = {}
    with Logger(run, resume_step=clock if resume else None) as logger:
        while clock < end:
            if env_steps < total:
                acting = random_agent if env_steps < cfg.collect.prefill else agent
                chunk = min(cfg.collect.chunk, total - env_steps)
                if acting is random_agent:
                    chunk = min(chunk, max(cfg.collect.prefill - env_steps, 1))
                was_training = actor_critic.training
                actor_critic.eval()
                world_model.eval()
                ended = collector.collect(acting, chunk, replay.add)
                world_model.train(was_training)
                actor_critic.train(was_training)
                env_steps = collector.steps + offset
                # ahead of env_steps only in a finished train_only run resumed with more steps
                next_clock = max(env_steps, clock)
                for episode_return, length in ended:
                    train_returns.append(episode_return)
                    logger.log(
                        next_clock,
                        {"train/episode_return": episode_return, "train/episode_length": length},
                    )
            else:  # collect.train_only: the schedules go on without collecting
                next_clock = min(clock + cfg.collect.chunk, end)
            bar.update(next_clock - clock)
            clock = next_clock

            for name, module in components.items():
                while updates[name] < schedules[name].due(clock):
                    batch = wm_samplers[name].sample(specs[name].batch_size, rng).to(device)
                    pretraining = updates[name] < schedules[name].pretrain
                    loss_fn = (
                        getattr(module, "pretrain_loss", module.loss)
                        if pretraining
                        else module.loss
                    )
                    metrics[name] = update(
                        loss_fn,
                        batch,
                        wm_optimizers[name],
                        clip_norm=specs[name].clip_norm,
                        amp_dtype=amp_dtype,
                    )
                    updates[name] += 1
            while updates["actor_critic"] < cfg.actor_critic_train.due(clock):
                context = ac_sampler.sample(ac_cfg.batch_size, rng).to(device)
                rollout = imagine(world_model, actor_critic, context, ac_cfg.horizon)
                metrics["actor_critic"] = update(
                    actor_critic.loss, rollout, ac_optimizer, clip_norm=ac_cfg.grad_clip or None
                )
                actor_critic.after_update()
                updates["actor_critic"] += 1

            if clock - last_log >= cfg.loop.log_every or clock >= end:
                now = time.perf_counter()
                scalars = {
                    f"train/{name}/{k}": v for name, m in metrics.items() for k, v in m.items()
                }
                scalars.update({f"perf/updates_{n}": float(u) for n, u in updates.items()})
                scalars["perf/env_steps_per_s"] = (env_steps - tick_steps) / max(now - tick, 1e-9)
                logger.log(clock, scalars)
                tick, tick_steps, last_log = now, env_steps, clock
                if train_returns:
                    bar.set_postfix(ret=f"{np.mean(train_returns[-10:]):.1f}")
            if cfg.eval.every and clock - last_eval >= cfg.eval.every and clock < end:
                evaluation(cfg.eval.episodes, logger, clock)
                last_eval = clock
            if clock - last_ckpt >= cfg.loop.checkpoint_every or clock >= end:
                save()
                last_ckpt = clock
        bar.close()
        final = evaluation(cfg.eval.final_episodes, logger, clock)
        logger.flush()
    collector.close()
    replay.close_episodes()  # the episodes still running at the end count, truncated
    replay.to_dataset(name=f"{algo}-{run.path.name}").save(run.path / "dataset")
    result = LoopResult(
        env_steps=env_steps,
        updates=dict(updates),
        final_return=float(np.mean(final)),
        final_returns=final,
        train_returns=train_returns,
        wall_time=wall_before + time.perf_counter() - start_time,
        cpu_time=cpu_before + time.process_time() - start_cpu,
    )
    atomic_write_text(
        run.path / "result.json",
        json.dumps(
            {
                "env_steps": result.env_steps,
                "updates": result.updates,
                "final_return": result.final_return,
                "final_returns": result.final_returns.tolist(),
                "wall_s": result.wall_time,
                "cpu_s": result.cpu_time,
                "resumed": resume,
            }
        ),
    )
    return result


def _schedule(cfg: Any, component: str) -> ComponentSchedule:
    """The schedule of world-model component ``name``: the config's field ``<name>_train``."""
    schedule = getattr(cfg, f"{component}_train", None)
    if not isinstance(schedule, ComponentSchedule):
        raise ConfigError(f"config has no schedule '{component}_train' for component '{component}'")
    return schedule


def _eval_env(cfg: Any) -> Any:
    from dataclasses import replace

    return replace(cfg.env, num_envs=cfg.eval.num_envs)


@torch.no_grad()
def _log_imagined_frames(
    world_model: Any, sampler: Any, logger: Logger, step: int, device: torch.device
) -> None:
    """Real frames above the world model's open-loop predictions of them (TensorBoard images)."""
    predict = getattr(world_model, "predict", None)
    if predict is None:
        return
    batch = sampler.sample(4, np.random.default_rng(step)).to(device)
    context_len = max(sampler.burn_in, 1)
    horizon = batch.observations.shape[1] - context_len
    if horizon < 1:
        return
    was_training = world_model.training
    world_model.eval()
    predicted = predict(batch, batch.actions[:, context_len - 1 : -1], horizon)
    world_model.train(was_training)
    real, predicted = _as_image(batch.observations[:, context_len:]), _as_image(predicted)
    # one image per sequence: real frames left to right on top, the predictions below
    grid = torch.cat([real, predicted], dim=3)  # (B, T, C, 2H, W)
    grid = grid.permute(0, 2, 3, 1, 4).flatten(3, 4)  # (B, C, 2H, T * W)
    logger.add_images("imagined/real_vs_predicted", grid, step)


def _as_image(x: torch.Tensor) -> torch.Tensor:
    """(B, T, [stack,] H, W[, C]) observations -> (B, T, C, H, W) uint8 (last stacked frame)."""
    if x.dtype.is_floating_point:
        x = (x.clamp(0, 1) * 255 if x.max() <= 1.0 else x.clamp(0, 255)).to(torch.uint8)
    if x.dim() == 5 and x.shape[-1] in (1, 3):  # (B, T, H, W, C)
        return x.permute(0, 1, 4, 2, 3)
    if x.dim() == 5:  # (B, T, stack, H, W): the newest frame
        x = x[:, :, -1]
    return x.unsqueeze(2)


def register_command(
    registry: Any,
    *,
    algo: str,
    help: str,
    description: str | None,
    config_class: type,
    presets: dict[str, Callable[[], Any]],
    default_preset: str,
    build_world_model: Callable[[Any, Any, Any], torch.nn.Module],
    notes: Callable[[Any], list[str]] | None = None,
) -> None:
    """Add ``seqrl train ALGO``: a world-model agent on this loop, new or ``--resume``\\ d.

    ``--env ID`` sets ``env.id`` (the preset keeps its env protocol); ``notes(cfg)`` are printed
    before the run starts (e.g. an ablation of the paper's setting).
    """
    import argparse

    from seqrl.cli import discard_unused_run, train_run
    from seqrl.config import add_config_arguments

    def handle(args: argparse.Namespace) -> int:
        if args.env:
            setattr(args, "config:env.id", args.env)  # as if given as --env.id
        cfg, run = train_run(
            args,
            algo=algo,
            config_class=config_class,
            presets=presets,
            default_preset=default_preset,
            run_name=lambda c: f"{algo}-{c.env.id.rsplit('/', 1)[-1]}-%Y%m%d-%H%M%S",
            budget_key="collect.steps",
        )
        print(f"run directory: {run.path}")
        for note in notes(cfg) if notes else []:
            print(f"note: {note}")
        with discard_unused_run(run):
            result = train_world_model_agent(
                cfg,
                run,
                algo=algo,
                build_world_model=build_world_model,
                resume=args.resume,
                quiet=args.quiet,
            )
        print(
            f"{result.env_steps} env steps, updates {result.updates}: final return "
            f"{result.final_return:.2f} over {len(result.final_returns)} episodes "
            f"({result.wall_time / 60:.1f} min)"
        )
        print(f"replay data: {run.path / 'dataset'}")
        print(f"logs: tensorboard --logdir {run.path}")
        return 0

    parser = registry.train_algo(algo, help=help, description=description)
    parser.add_argument(
        "--env", default=None, help="environment id, e.g. ALE/Breakout-v5 (sets env.id)"
    )
    add_config_arguments(parser, config_class, presets, default_preset)
    parser.set_defaults(handler=handle)
