"""Probe: how much of an actor-critic's imagined experience lies past an imagined episode end?

Loads a world-model run's last checkpoint (world model, actor-critic, replay buffer), draws start
contexts as the training loop does (``burn_in`` real steps), and imagines ``--rollouts`` rollouts
of the actor-critic's horizon twice: with the trained policy (temperature 1, as in training)
and with uniform random actions. For each it prints the reward per imagined step over all steps,
over the steps before the rollout's first imagined end, and over the steps after it, and the
share of steps that lie after it.

The world model never trains on a step after an episode's end (the replay's windows are padded
there), so what it imagines past one is unconstrained. An actor-critic whose loss weighs every
imagined step alike (``--actor_critic.loss_weights none``, the IRIS code's choice) learns from
those steps too. A diagnostic, not a peer benchmark: docs/iris.md (MinAtar section) quotes its
output::

    python benchmarks/probes/imagined_ends.py runs/t8/seed0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from seqrl.agents.actor_critic import alive_weights
from seqrl.checkpoint import load_checkpoint, load_state
from seqrl.config import from_dict
from seqrl.data import ReplayBuffer
from seqrl.training import seed_everything
from seqrl.world_models.imagination import imagine
from seqrl.world_models.loop import build_learner, make_samplers

ALGOS = ("iris", "twm")


def _agent(algo: str) -> tuple[type, object]:
    """The agent config class and world-model builder of ``algo``."""
    if algo == "iris":
        from seqrl.world_models.iris import build_world_model
        from seqrl.world_models.train_iris import IRISAgentConfig

        return IRISAgentConfig, build_world_model
    from seqrl.world_models.train_twm import TWMAgentConfig
    from seqrl.world_models.twm import build_world_model

    return TWMAgentConfig, build_world_model


def split_by_first_end(rewards: torch.Tensor, continues: torch.Tensor) -> dict[str, float]:
    """Reward per step ``(H, B)`` over all steps, before and after each rollout's first end
    (sampled 0/1 continues: a step whose continue flag is 0 ends the rollout)."""
    before = alive_weights(continues)
    after = 1.0 - before

    def mean(w: torch.Tensor) -> float:
        return float((w * rewards).sum() / w.sum()) if float(w.sum()) > 0 else float("nan")

    return {
        "all": float(rewards.mean()),
        "before": mean(before),
        "after": mean(after),
        "share_after": float(after.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an iris or twm run directory")
    parser.add_argument("--rollouts", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.rollouts <= 0:
        parser.error("--rollouts: must be positive")
    ckpt = load_checkpoint(args.run)
    algo = ckpt.algo
    if algo not in ALGOS:
        raise ValueError(f"{args.run}: a {algo!r} run, not one of {', '.join(ALGOS)}")
    config_class, build_world_model = _agent(algo)
    cfg = from_dict(config_class, ckpt.config)
    replay = ReplayBuffer.load(args.run / str(ckpt.extra["replay"]))
    learner = build_learner(
        cfg, replay.observation_space, replay.action_space, build_world_model, torch.device("cpu")
    )
    load_state(learner.world_model, ckpt.state["world_model"], what="world model", path=ckpt.path)
    load_state(
        learner.actor_critic, ckpt.state["actor_critic"], what="actor-critic", path=ckpt.path
    )
    learner.actor_critic.eval()
    _, ac_sampler = make_samplers(learner, replay, cfg)
    horizon = cfg.actor_critic.horizon
    print(
        f"{args.run}: {algo} checkpoint at env step {ckpt.step}, {args.rollouts} rollouts of "
        f"{horizon} imagined steps"
    )
    print(
        "| actions | reward per step | before the first end | after it | share of steps after it |"
    )
    print("|---|---|---|---|---|")
    for name, temperature in (("policy", 1.0), ("uniform random", 1e6)):
        rng = seed_everything(args.seed)  # the same start contexts for both
        context = ac_sampler.sample(args.rollouts, rng)
        rollout = imagine(
            learner.world_model, learner.actor_critic, context, horizon, temperature=temperature
        )
        s = split_by_first_end(rollout.rewards.float(), rollout.continues.float())
        print(
            f"| {name} | {s['all']:.3f} | {s['before']:.3f} | {s['after']:.3f} "
            f"| {s['share_after']:.2f} |"
        )


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a diagnostic: one line, not a traceback
        sys.exit(f"error: {exc}")
