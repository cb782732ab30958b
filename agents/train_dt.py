"""``seqrl train dt``: train a Decision Transformer offline on any dataset, evaluate, checkpoint.

The workflow reads as an outline: load the data, build the model, then the shared offline loop
(:func:`seqrl.trainer.fit`) samples DT windows, updates, evaluates at every target return in one
batched rollout, and checkpoints. ``--resume`` continues a run exactly.

Presets (checked against ``docs/dt.md``):

- ``dt-paper-gym``: the paper's gym configuration (kzl/decision-transformer ``gym/experiment.py``).
- ``dt-paper-atari``: the paper's Atari configuration (``atari/run.sh``, ``atari/mingpt/``).
- ``dt``: seqrl's default: the paper's gym model with SwiGLU and banded attention over a 3K-token
  band, so evaluation runs exactly with the KV cache (``cached``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from seqrl.agents.dt import ALGO, DecisionTransformer, DTAgent, DTConfig, InferenceMode, build_model
from seqrl.agents.policies import space_to_dict
from seqrl.backbone import TransformerConfig
from seqrl.checkpoint import load_checkpoint
from seqrl.config import add_config_arguments, to_dict
from seqrl.errors import UsageError
from seqrl.run import Logger, RunDir
from seqrl.trainer import LoopConfig, TrainState, fit
from seqrl.training import seed_everything, select_device

PAPER_TARGETS: dict[str, tuple[float, ...]] = {
    "hopper": (3600.0, 1800.0),
    "halfcheetah": (12000.0, 6000.0),
    "walker2d": (5000.0, 2500.0),
}
"""Evaluation targets of the DT gym code per environment (``gym/experiment.py``
``env_targets``), for env ids that contain the name."""

PAPER_ATARI_TARGETS: dict[str, tuple[float, ...]] = {
    "Breakout": (90.0,),
    "Qbert": (2500.0,),
    "Pong": (20.0,),
    "Seaquest": (1450.0,),
}
"""Evaluation targets of the DT paper's Atari games (its Table 8), for ALE ids only (MinAtar's
Breakout is another game)."""


@dataclass
class OptimConfig:
    """AdamW with linear warm-up, then constant or cosine decay."""

    batch_size: int = field(default=64, metadata={"help": "windows per update"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    decay_on: Literal["all", "weights"] = field(
        default="all",
        metadata={"help": "all parameters (DT gym code) or only weight matrices (minGPT)"},
    )
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "AdamW betas"})
    warmup_steps: int = field(
        default=10_000, metadata={"help": "linear warm-up from lr/warmup to lr"}
    )
    schedule: Literal["constant", "cosine"] = field(
        default="constant", metadata={"help": "after warm-up"}
    )
    final_lr_ratio: float = field(
        default=0.1, metadata={"help": "cosine: final lr as a fraction of lr"}
    )
    clip_norm: float = field(default=0.25, metadata={"help": "max global gradient norm"})

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0 or self.clip_norm <= 0:
            raise ValueError("batch_size, lr and clip_norm must be positive, warmup_steps >= 0")


@dataclass
class EvalConfig:
    """Evaluation during and after training, through the shared rollout loop."""

    targets: tuple[float, ...] = field(
        default=(),
        metadata={
            "help": "target returns (env units); empty: the paper's for the env, else the dataset's best and mean return"
        },
    )
    episodes: int = field(
        default=10, metadata={"help": "episodes per target (all run in parallel)"}
    )
    mode: InferenceMode = field(
        default="window", metadata={"help": "window (paper) or cached (KV cache)"}
    )
    seed: int = field(default=10_000, metadata={"help": "seed of the evaluation envs"})
    max_episode_steps: int | None = field(default=None, metadata={"help": "cap on episode length"})
    atari_preset: Literal["dqn", "iris", "twm"] = field(
        default="dqn",
        metadata={
            "help": "Atari protocol of the evaluation envs (ALE ids): dqn 84x84 gray frames "
            "stacked 4 (DQN-Replay data), iris 64x64 RGB, twm 64x64 gray x4; it must give the "
            "frames the data holds (seqrl collect --atari-preset)"
        },
    )
    compile: bool = field(
        default=False,
        metadata={
            "help": "window mode: act through torch.compile (1.4-1.6x faster "
            "acting on the CPU, see docs/benchmarks.md); each evaluation first compiles for "
            "seconds, and the CPU needs a C++ compiler"
        },
    )

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError("episodes must be >= 1")
        if self.compile and self.mode != "window":
            raise ValueError("compile applies to mode window only")
        for t in self.targets:
            if not math.isfinite(t):
                raise ValueError(f"target return {t} is not a finite number")


@dataclass
class DTTrainConfig:
    """Everything ``seqrl train dt`` needs."""

    dataset: str = field(
        default="", metadata={"help": "Minari id, D4RL HDF5 file, seqrl dataset folder"}
    )
    env: str = field(
        default="", metadata={"help": "gymnasium id to evaluate in; empty: the dataset's"}
    )
    train_context: int = field(
        default=20,
        metadata={
            "help": "steps per training window (0: model.context); may exceed K for banded models"
        },
    )
    frame_stack: int = field(
        default=1, metadata={"help": "frames stacked per step (single-frame Atari data: 4)"}
    )
    window_anchor: Literal["start", "end"] = field(
        default="start",
        metadata={
            "help": "training windows start at a uniformly drawn step (the DT paper's code) or "
            "end at one (d3rlpy)"
        },
    )
    model: DTConfig = field(default_factory=DTConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(
            steps=100_000, log_every=100, eval_every=10_000, checkpoint_every=5_000
        )
    )


def dt_paper_gym() -> DTTrainConfig:
    """The DT paper's gym configuration (see ``docs/dt.md`` for where each value comes from)."""
    return DTTrainConfig()


def dt_paper_atari() -> DTTrainConfig:
    """The DT paper's Atari configuration (``atari/run.sh``, ``atari/mingpt/``)."""
    backbone = TransformerConfig(
        width=128,
        depth=6,
        heads=8,
        ff="mlp",
        activation="gelu",
        ff_mult=4.0,
        attention="dense",
        positions="learned",
        max_len=90,
        dropout=0.1,
        attn_dropout=0.1,
    )
    return DTTrainConfig(
        frame_stack=4,
        train_context=30,
        model=DTConfig(
            backbone=backbone,
            context=30,
            max_timestep=10_000,
            return_scale=1.0,
            action_head="categorical",
            encoder="nature_cnn",
            temperature=1.0,
            timestep_init="zeros",
        ),
        optim=OptimConfig(
            batch_size=128,
            lr=6e-4,
            weight_decay=0.1,
            decay_on="weights",
            betas=(0.9, 0.95),
            # minGPT warms up over 512 * 20 action tokens; one update sees 128 * 30 of them
            warmup_steps=math.ceil(512 * 20 / (128 * 30)),
            schedule="cosine",
            final_lr_ratio=0.1,
            clip_norm=1.0,
        ),
        eval=EvalConfig(episodes=10),
        loop=LoopConfig(steps=20_000, log_every=100, eval_every=5_000, checkpoint_every=2_000),
    )


def dt_default() -> DTTrainConfig:
    """seqrl's default: SwiGLU, banded attention over 3K tokens, KV-cached evaluation."""
    cfg = dt_paper_gym()
    backbone = replace(
        cfg.model.backbone,
        ff="swiglu",
        attention="banded",
        window=3 * cfg.model.context,
        attn_dropout=0.0,  # the banded kernel has no attention-probability dropout
    )
    return replace(
        cfg,
        model=replace(cfg.model, backbone=backbone),
        eval=replace(cfg.eval, mode="cached"),
    )


PRESETS: dict[str, Callable[[], DTTrainConfig]] = {
    "dt": dt_default,
    "dt-paper-gym": dt_paper_gym,
    "dt-paper-atari": dt_paper_atari,
}


# --- the workflow -------------------------------------------------------------------------------


def resolve_targets(cfg: DTTrainConfig, env_id: str, returns: np.ndarray) -> tuple[float, ...]:
    """The configured targets, else the paper's for the env, else the dataset's best and mean return."""
    from seqrl.envs import game_name, is_atari

    if cfg.eval.targets:
        return cfg.eval.targets
    if is_atari(env_id) and game_name(env_id) in PAPER_ATARI_TARGETS:
        return PAPER_ATARI_TARGETS[game_name(env_id)]
    for name, targets in PAPER_TARGETS.items():
        if name in env_id.lower().replace("-", "").replace("_", ""):
            return targets
    return (round(float(np.max(returns)), 1), round(float(np.mean(returns)), 1))


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on all parameters (DT gym code) or, as minGPT does, only on the
    weights of linear and convolution layers (not biases, norms or embedding tables)."""
    if cfg.decay_on == "all":
        groups: Any = model.parameters()
    else:
        decay = [
            module.weight
            for module in model.modules()
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d))
        ]
        ids = {id(p) for p in decay}
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": [p for p in model.parameters() if id(p) not in ids], "weight_decay": 0.0},
        ]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> Any:
    """Linear warm-up ``min((s + 1) / warmup, 1)`` as the DT code, then constant or cosine."""
    warmup = max(cfg.warmup_steps, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TargetResult:
    """Evaluation at one target return."""

    target: float
    returns: np.ndarray
    lengths: np.ndarray
    normalized: np.ndarray | None

    @property
    def mean(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))


def evaluate_targets(
    model: DecisionTransformer,
    env_id: str,
    targets: Sequence[float],
    episodes: int,
    *,
    mode: InferenceMode,
    seed: int,
    device: torch.device | str = "cpu",
    max_episode_steps: int | None = None,
    env_cfg: Any = None,
    amp_dtype: torch.dtype | None = None,
    compile: bool = False,
) -> list[TargetResult]:
    """All targets x episodes in one batched rollout: env ``i`` plays toward ``targets[i % n]``."""
    from seqrl.envs import EnvConfig, make_vec_env, ref_scores_for, run_episodes

    n = len(targets)
    cfg = env_cfg or EnvConfig(id=env_id)
    cfg = replace(
        cfg,
        num_envs=n * episodes,
        seed=seed,
        max_episode_steps=max_episode_steps or cfg.max_episode_steps,
    )
    agent = DTAgent(
        model, targets, mode=mode, device=device, seed=seed, amp_dtype=amp_dtype, compile=compile
    )
    vec_env = make_vec_env(cfg, train=False)
    try:
        played = run_episodes(agent, vec_env, episodes=n * episodes, seed=seed, record=False)
    finally:
        vec_env.close()
    ref = ref_scores_for(env_id)
    results = []
    for j, target in enumerate(targets):
        mine = [e for e in played if e.env_index % n == j]
        returns = np.array([e.episode_return for e in mine])
        results.append(
            TargetResult(
                float(target),
                returns,
                np.array([e.length for e in mine]),
                None if ref is None else ref.normalize(returns),
            )
        )
    return results


def train_dt(
    cfg: DTTrainConfig,
    run: RunDir,
    *,
    resume: bool = False,
    quiet: bool = False,
    dataset: Any = None,
) -> tuple[DecisionTransformer, list[TargetResult]]:
    """Train (or resume) a Decision Transformer in ``run``; returns the model and final evaluation.

    ``dataset`` may be passed already loaded; otherwise ``cfg.dataset`` is loaded.
    """
    from seqrl.data import WindowSampler, load_dataset, observation_stats

    device = select_device(cfg.loop.device)
    rng = seed_everything(cfg.loop.seed)
    if dataset is None:
        dataset = load_dataset(cfg.dataset, env_id=cfg.env or None)
    env_id = cfg.env or dataset.metadata.env_id
    if not env_id:
        raise UsageError(f"--env: dataset {cfg.dataset} does not name its env; pass --env ID")
    obs_space, act_space = dataset_spaces(dataset, env_id, frame_stack=cfg.frame_stack)
    env_cfg = eval_env_config(cfg, env_id, obs_space)

    model = build_model(cfg.model, obs_space, act_space)
    if cfg.model.encoder == "linear":
        stats = observation_stats(dataset)
        model.set_normalization(stats.mean, stats.std)
    model.to(device)
    optimizer = make_optimizer(model, cfg.optim)
    scheduler = make_scheduler(optimizer, cfg.optim, cfg.loop.steps)
    state = TrainState(model, optimizer, rng, scheduler)
    if resume:
        state.restore(load_checkpoint(run.last_checkpoint, algo=ALGO))

    sampler = WindowSampler(
        dataset,
        context=cfg.train_context or cfg.model.context,
        return_scale=cfg.model.return_scale,
        max_timestep=cfg.model.max_timestep,
        frame_stack=cfg.frame_stack,
        anchor=cfg.window_anchor,
    )
    targets = resolve_targets(cfg, env_id, dataset.episode_returns)

    final: list[TargetResult] = []

    def evaluate(step: int) -> dict[str, float]:
        final[:] = results = evaluate_targets(
            model,
            env_id,
            targets,
            cfg.eval.episodes,
            mode=cfg.eval.mode,
            seed=cfg.eval.seed,
            device=device,
            max_episode_steps=cfg.eval.max_episode_steps,
            env_cfg=env_cfg,
            amp_dtype=cfg.loop.amp_dtype,
            compile=cfg.eval.compile,
        )
        metrics = {}
        for r in results:
            metrics[f"return_target_{r.target:g}"] = r.mean
            if r.normalized is not None:
                metrics[f"normalized_target_{r.target:g}"] = float(np.mean(r.normalized))
        return metrics

    extra = {
        "space_info": {
            "obs_shape": list(model.info.obs_shape),
            "discrete": model.info.discrete,
            "action_dim": model.info.action_dim,
        },
        "observation_space": space_to_dict(obs_space),
        "action_space": space_to_dict(act_space),
        "env_id": env_id,
        "env_config": to_dict(env_cfg),  # seqrl eval / rollout act in the same protocol
        "dataset": cfg.dataset,
        "targets": list(targets),
    }
    with Logger(run, resume_step=state.step if resume else None) as logger:
        fit(
            state,
            sample=lambda g: sampler.sample(cfg.optim.batch_size, g),
            loop=cfg.loop,
            run=run,
            logger=logger,
            algo=ALGO,
            config=cfg,
            clip_norm=cfg.optim.clip_norm,
            evaluate=evaluate,
            extra=extra,
            device=device,
            quiet=quiet,
        )
    if not final:  # resumed at the last step: nothing was left to train or evaluate
        evaluate(state.step)
    model.eval()
    return model, final  # the evaluation at the last step


def eval_env_config(cfg: DTTrainConfig, env_id: str, obs_space: Any) -> Any:
    """The evaluation envs' config (``eval.atari_preset`` for ALE ids), checked before any
    training: an env whose observations are not what the model sees from the data is a
    one-line UsageError (the data layer checks only the actions of Atari data, whose frames
    depend on the protocol; and ``frame_stack`` stacks what the env may not)."""
    from seqrl.envs import EnvConfig, atari_preset, is_atari, make_env

    env_cfg = EnvConfig(id=env_id, atari=atari_preset(cfg.eval.atari_preset))
    env = make_env(env_cfg)
    try:
        gives = tuple(env.observation_space.shape or ())
    finally:
        env.close()
    sees = tuple(obs_space.shape)
    if gives != sees:
        flag = (
            f"--eval.atari_preset {cfg.eval.atari_preset}"
            if is_atari(env_id)
            else f"--frame_stack {cfg.frame_stack}"
        )
        raise UsageError(
            f"{flag}: {env_id} gives observations {gives}, but the model sees {sees} from the "
            f"data (frame_stack {cfg.frame_stack}); pick the protocol the data was recorded in"
        )
    return env_cfg


def dataset_spaces(dataset: Any, env_id: str, frame_stack: int = 1) -> tuple[Any, Any]:
    """The observation and action spaces the model sees: the dataset's (else the env's), with
    ``frame_stack`` single frames per step stacked on a new first axis, as the sampler stacks
    them and the Atari protocol's env returns them (DQN-Replay: (84, 84) -> (4, 84, 84))."""
    import gymnasium as gym

    obs_space, act_space = dataset.metadata.observation_space, dataset.metadata.action_space
    if obs_space is None or act_space is None:
        env = gym.make(env_id)
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
    if frame_stack > 1:
        low = np.broadcast_to(obs_space.low, (frame_stack, *obs_space.shape))
        high = np.broadcast_to(obs_space.high, (frame_stack, *obs_space.shape))
        obs_space = gym.spaces.Box(low, high, dtype=obs_space.dtype)
    return obs_space, act_space


# --- command line -------------------------------------------------------------------------------


def _handle(args: argparse.Namespace) -> int:
    from seqrl.cli import discard_unused_run, train_run

    cfg, run = train_run(
        args,
        algo=ALGO,
        config_class=DTTrainConfig,
        presets=PRESETS,
        default_preset="dt",
        run_name=lambda c: f"dt-{_slug(c.dataset)}-%Y%m%d-%H%M%S",
        budget_key="loop.steps",
        check=_check_dataset,
    )
    print(f"run directory: {run.path}")
    with discard_unused_run(run):
        _, results = train_dt(cfg, run, resume=args.resume, quiet=args.quiet)
    print(format_results(results))
    print(f"logs: tensorboard --logdir {run.path}")
    return 0


def _check_dataset(cfg: DTTrainConfig) -> None:
    if not cfg.dataset:
        raise UsageError(
            "--dataset: a Minari id, D4RL HDF5 file or seqrl dataset folder is required"
        )


def format_results(results: Sequence[TargetResult]) -> str:
    """A small table: target, mean return +- std, normalized score."""
    lines = [f"{'target':>10}  {'return':>18}  {'normalized':>10}"]
    for r in results:
        norm = "" if r.normalized is None else f"{np.mean(r.normalized):10.1f}"
        lines.append(f"{r.target:>10g}  {r.mean:>10.1f} +- {np.std(r.returns):<6.1f}  {norm}")
    return "\n".join(lines)


def _slug(text: str) -> str:
    return (
        "".join(c if c.isalnum() or c in "-_" else "-" for c in text.rsplit("/", 1)[-1])[:40]
        or "data"
    )


def register(registry: Any) -> None:
    """Add ``seqrl train dt``."""
    parser = registry.train_algo(
        "dt", help="train a Decision Transformer offline", description=__doc__
    )
    add_config_arguments(parser, DTTrainConfig, PRESETS, "dt")
    parser.set_defaults(handler=_handle)


__all__ = [
    "PRESETS",
    "DTTrainConfig",
    "EvalConfig",
    "OptimConfig",
    "TargetResult",
    "evaluate_targets",
    "format_results",
    "make_optimizer",
    "make_scheduler",
    "resolve_targets",
    "train_dt",
]
