"""Probe: how much of an actor-critic's imagined experience lies past an imagined episode end?

Loads a world-model run's last checkpoint (world model, actor-critic, replay buffer), draws start
contexts as the training loop does (``burn_in`` real steps), and imagines ``--rollouts`` rollouts
of the actor-critic's horizon twice: with the trained policy (temperature 1, as in training)
and with uniform random actions. For each it prints the reward per imagined step over all steps,
over the steps before the rollout's first imagined end, and over the steps after it, and the
share of steps that lie after it.

``--tracker`` (MinAtar Breakout runs) adds a third policy that plays the game well: it reads the
ball's and the paddle's cells off each frame it is given (decoded frames in imagination) and moves
the paddle towards the ball's column. It also plays ``--episodes`` real episodes. If the world
model pays the tracker more than random actions before an imagined end, and ends its rollouts
later, the world model carries what a policy needs to learn; if not, the world model is what fails.

The world model never trains on a step after an episode's end (the replay's windows are padded
there), so what it imagines past one is unconstrained. An actor-critic whose loss weighs every
imagined step alike (``--actor_critic.loss_weights none``, the IRIS code's choice) learns from
those steps too. A diagnostic, not a peer benchmark: docs/iris.md (MinAtar section) quotes its
output::

    python benchmarks/probes/imagined_ends.py runs/t8/seed0
    python benchmarks/probes/imagined_ends.py runs/t11/iris-minatar-seed0 --tracker
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from seqrl.agents.actor_critic import alive_weights
from seqrl.agents.baselines import RandomAgent
from seqrl.checkpoint import load_checkpoint, load_state
from seqrl.config import from_dict
from seqrl.data import ReplayBuffer
from seqrl.envs import evaluate, make_env
from seqrl.training import seed_everything
from seqrl.world_models.imagination import imagine
from seqrl.world_models.loop import build_learner, make_samplers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minatar_reconstruction import cells, minatar_wrapper  # noqa: E402 (a sibling probe)

ALGOS = ("iris", "twm")
NOOP, LEFT, RIGHT = 0, 1, 2  # MinAtar/Breakout-v1's minimal action set: n, l, r
PADDLE, BALL = 1, 2  # cell codes of minatar_reconstruction.cells: channel + 1


def imagined_frames(feature: torch.Tensor) -> np.ndarray:
    """Decoded imagined frames ``(B, 3, S, S)`` in [0, 1] -> ``(B, S, S, 3)`` uint8 images."""
    return (feature.float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


class BallTracker:
    """A scripted Breakout policy with the actor-critic's ``burn_in`` / ``step`` interface (in
    imagination) and the :class:`~seqrl.protocols.Agent` one (``reset`` / ``act`` / ``observe``,
    in the real game through :func:`seqrl.envs.evaluate`).

    Each frame ``(B, 3, S, S)`` in [0, 1] is read back as MinAtar's cells (nearest ``palette``
    colour); the paddle moves one column towards the ball (no-op when aligned or when either is
    not drawn). Logits of +-30 make temperature-1 sampling pick that action.
    """

    def __init__(self, palette: np.ndarray) -> None:
        self.palette = palette
        self.frames = 0
        self.seen = 0  # frames where both the paddle and the ball were read

    def burn_in(self, features: torch.Tensor, mask: torch.Tensor) -> None:
        return None

    def actions(self, frames: np.ndarray) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 frames -> ``(B,)`` actions."""
        grid = cells(frames, self.palette)  # (B, 10, 10)
        out = np.full(len(grid), NOOP)
        for i, g in enumerate(grid):
            paddle = np.flatnonzero(g[-1] == PADDLE)
            ball = np.argwhere(g == BALL)
            self.frames += 1
            if len(paddle) and len(ball):
                self.seen += 1
                col, target = paddle[0], ball[0][1]
                out[i] = LEFT if target < col else RIGHT if target > col else NOOP
        return out

    def reset(self, num_envs: int) -> None:
        """Nothing to remember between steps."""

    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 frames of the real game -> ``(N,)`` actions."""
        return self.actions(observations)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Nothing to remember."""

    def step(self, feature: torch.Tensor, state: None) -> tuple[torch.Tensor, None, None]:
        frames = imagined_frames(feature)
        logits = torch.full((len(frames), 3), -30.0)
        logits[torch.arange(len(frames)), torch.from_numpy(self.actions(frames))] = 30.0
        return logits, None, None


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
    parser.add_argument(
        "--tracker", action="store_true", help="add the ball tracker (MinAtar Breakout, rgb)"
    )
    parser.add_argument("--episodes", type=int, default=30, help="real episodes per policy")
    parser.add_argument(
        "--sampling",
        choices=("sample", "argmax"),
        help="iris: override how imagination picks tokens, rewards and ends (default: the run's)",
    )
    args = parser.parse_args()
    if args.rollouts <= 0:
        parser.error("--rollouts: must be positive")
    ckpt = load_checkpoint(args.run)
    algo = ckpt.algo
    if algo not in ALGOS:
        raise ValueError(f"{args.run}: a {algo!r} run, not one of {', '.join(ALGOS)}")
    config_class, build_world_model = _agent(algo)
    cfg = from_dict(config_class, ckpt.config)
    if args.sampling is not None:
        if algo != "iris":
            raise ValueError("--sampling applies to iris runs")
        cfg = replace(cfg, world_model=replace(cfg.world_model, sampling=args.sampling))
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
    policies: list[tuple[str, object, float]] = [
        ("policy", learner.actor_critic, 1.0),
        ("uniform random", learner.actor_critic, 1e6),
    ]
    tracker = None
    if args.tracker:
        tracker = BallTracker(run_palette(cfg.env))
        policies.append(("ball tracker", tracker, 1.0))
    for name, policy, temperature in policies:
        rng = seed_everything(args.seed)  # the same start contexts for all
        context = ac_sampler.sample(args.rollouts, rng)
        rollout = imagine(learner.world_model, policy, context, horizon, temperature=temperature)
        s = split_by_first_end(rollout.rewards.float(), rollout.continues.float())
        print(
            f"| {name} | {s['all']:.3f} | {s['before']:.3f} | {s['after']:.3f} "
            f"| {s['share_after']:.2f} |"
        )
    if tracker is not None:
        share = tracker.seen / max(tracker.frames, 1)
        print(f"imagined frames where the tracker read both paddle and ball: {share:.2f}")
        real = (
            ("uniform random", RandomAgent(replay.action_space, seed=args.seed)),
            ("ball tracker", tracker),
        )
        for name, agent in real:
            played = evaluate(agent, cfg.env, args.episodes, args.seed, normalization=None)
            mean = float(played.returns.mean())
            print(f"real game, {name}: {mean:.2f} per episode over {args.episodes} episodes")


def run_palette(env_cfg: object) -> np.ndarray:
    """The palette of the run's MinAtar rgb frames."""
    wrapper = minatar_wrapper(make_env(env_cfg))
    if wrapper.render_kind != "rgb" or "Breakout" not in str(getattr(env_cfg, "id", "")):
        raise ValueError("--tracker needs a MinAtar Breakout run drawn in rgb")
    return wrapper._colours


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a diagnostic: one line, not a traceback
        sys.exit(f"error: {exc}")
