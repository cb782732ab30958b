"""Probe: where does an IRIS world model's imagined reward part from the real one?

Loads an ``iris`` run's last checkpoint and its replay buffer, draws windows of real steps, and
over the ``--horizon`` steps after each window's start frame compares the real reward per step
with three predictions, each fed the real actions:

- teacher-forced: the GPT's expected reward sign (P(+1) - P(-1)) and 1 - P(end) on the real
  frames' tokens (and, below the table, P(end) at the real ends against the other steps: does
  the end head know when the ball is lost?);
- open loop, sampled: imagination from the start frame's tokens, rewards and frames sampled as
  the actor-critic's rollouts are;
- open loop, argmax: the same with the most likely tokens, reward and end.

Steps after the real episode's end are left out, and so are imagined steps after an imagined
end. If the teacher-forced reward matches the real one but the open-loop rewards do not, the
excess comes from imagined frames drifting away from real ones. A diagnostic, not a peer
benchmark: docs/iris.md (MinAtar section) quotes its output::

    python benchmarks/probes/iris_reward_drift.py runs/t7/iris-minatar-seed0
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from seqrl.checkpoint import load_checkpoint, load_state
from seqrl.config import from_dict
from seqrl.data import ReplayBuffer, SequenceSampler
from seqrl.training import seed_everything
from seqrl.world_models.iris import IRISState, build_world_model
from seqrl.world_models.train_iris import IRISAgentConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an iris run directory")
    parser.add_argument("--windows", type=int, default=512)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ckpt = load_checkpoint(args.run, algo="iris")
    cfg = from_dict(IRISAgentConfig, ckpt.config)
    replay = ReplayBuffer.load(args.run / str(ckpt.extra["replay"]))
    models = {
        sampling: build_world_model(
            replace(cfg.world_model, sampling=sampling),
            replay.observation_space,
            replay.action_space,
        )
        for sampling in ("sample", "argmax")
    }
    model = models["sample"]
    load_state(model, ckpt.state["world_model"], what="world model", path=ckpt.path)
    models["argmax"].load_state_dict(model.state_dict())
    for m in models.values():
        m.eval()
    rng = seed_everything(args.seed)
    h = args.horizon
    sampler = SequenceSampler(replay, seq_len=h, burn_in=0, pad_end=True)
    batch = sampler.sample(args.windows, rng)
    real = batch.mask  # (B, H): the real episode goes on
    rewards = batch.rewards
    print(
        f"{args.run}: checkpoint at env step {ckpt.step}, {args.windows} windows of {h} steps "
        f"({int(real.sum())} real steps, {int(batch.terminals.sum())} episode ends)"
    )
    dyn = model.dynamics
    with torch.no_grad():
        tokens = model.tokenizer.encode(model.tokenizer.frames(batch.observations))  # (B, H, K)
        x = dyn.embed(tokens, batch.actions)
        out = dyn.transformer(x, padding_mask=real.repeat_interleave(dyn.block, dim=1))
        at_action = out.view(*real.shape, dyn.block, -1)[:, :, dyn.k]
        probs = dyn.reward_head(at_action).softmax(-1)
        forced = probs[..., 2] - probs[..., 0]  # expected sign
        p_end = dyn.end_head(at_action).softmax(-1)[..., 1]  # (B, H)
        rows = [
            ("real", rewards[real].float().mean(), 1 - batch.terminals[real].float().mean()),
            ("teacher-forced", forced[real].mean(), 1 - p_end[real].mean()),
        ]
        ends_real = batch.terminals.bool() & real
        goes_on = ~batch.terminals.bool() & real
        for sampling, imagining in models.items():
            state = IRISState(tokens[:, 0])
            alive = torch.ones(args.windows, dtype=torch.bool)
            got, ends = [], []
            for t in range(h):
                state, step = imagining.imagine_step(state, batch.actions[:, t])
                keep = alive & real[:, t]
                got.append(step.rewards[keep])
                ends.append(1 - step.continues[keep])
                alive = alive & (step.continues > 0)
            name = "open loop, argmax" if sampling == "argmax" else "open loop, sampled"
            rows.append((name, torch.cat(got).mean(), 1 - torch.cat(ends).mean()))
    print("| prediction | reward per step | continue per step |")
    print("|---|---|---|")
    for name, reward, cont in rows:
        cont_s = "-" if np.isnan(float(cont)) else f"{float(cont):.3f}"
        print(f"| {name} | {float(reward):.4f} | {cont_s} |")
    print(
        f"teacher-forced P(end): {float(p_end[ends_real].mean()):.3f} at the real ends, "
        f"{float(p_end[goes_on].mean()):.3f} at the other real steps"
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a diagnostic: one line, not a traceback
        sys.exit(f"error: {exc}")
