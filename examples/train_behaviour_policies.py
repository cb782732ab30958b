"""Train the behaviour policies that ``make demo`` ships: SAC on HalfCheetah-v5 at several levels.

Stable-Baselines3's SAC is trained for ``--steps`` environment steps; at each level in ``--levels``
the deterministic actor (an MLP: obs -> [256, 256] ReLU -> mean -> tanh) is exported as a seqrl
checkpoint (``algo="mlp-policy"``, see ``seqrl.agents.mlp_policy``), so seqrl loads it without
unpickling anything::

    python examples/train_behaviour_policies.py --steps 60000 --levels 8000 20000 60000

It takes about 15 minutes on 2 CPU cores. The files go to ``agents/assets/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import torch
from seqrl.agents.mlp_policy import MLPPolicy, MLPPolicyConfig, save_mlp_policy
from seqrl.agents.policies import space_to_dict
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

ASSETS = Path(__file__).resolve().parent.parent / "agents" / "assets"


def export_actor(model: SAC, path: Path, env_id: str, steps: int) -> None:
    """Write the SAC actor's deterministic path (latent MLP + mean head) as a seqrl checkpoint."""
    actor = model.policy.actor
    linear = [m for m in actor.latent_pi if isinstance(m, torch.nn.Linear)] + [actor.mu]
    cfg = MLPPolicyConfig(
        obs_dim=linear[0].in_features,
        act_dim=linear[-1].out_features,
        hidden=tuple(m.out_features for m in linear[:-1]),
        env=env_id,
        source=f"stable-baselines3 SAC, {steps} env steps, seed {model.seed}",
    )
    policy = MLPPolicy(cfg)
    for mine, theirs in zip(policy.layers, linear, strict=True):
        mine.load_state_dict(theirs.state_dict())
    extra = {
        "observation_space": space_to_dict(model.observation_space),
        "action_space": space_to_dict(model.action_space),
    }
    save_mlp_policy(path, policy, cfg, extra)


class ExportAt(BaseCallback):
    """Export the actor when the step count reaches each level."""

    def __init__(self, levels: list[int], env_id: str, prefix: str) -> None:
        super().__init__()
        self.levels, self.env_id, self.prefix = sorted(levels), env_id, prefix

    def _on_step(self) -> bool:
        if self.levels and self.num_timesteps >= self.levels[0]:
            level = self.levels.pop(0)
            export_actor(
                self.model, ASSETS / f"{self.prefix}_{level // 1000}k.pt", self.env_id, level
            )
            print(json.dumps({"exported": level}), flush=True)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--levels", type=int, nargs="+", default=[8_000, 20_000, 60_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = gym.make(args.env)
    model = SAC("MlpPolicy", env, seed=args.seed, learning_starts=5_000, verbose=0, device="cpu")
    prefix = args.env.split("-")[0].lower() + "_sac"
    model.learn(args.steps, callback=ExportAt(args.levels, args.env, prefix), progress_bar=False)


if __name__ == "__main__":
    main()
