"""Agents: the Decision Transformer, the actor-critic that learns inside a world model
(:mod:`seqrl.agents.actor_critic`), baseline agents and the policy loader.

::

    from seqrl.agents import DTAgent, load_policy

    agent = load_policy("runs/x/checkpoints/last.pt@3600", vec_env)   # any seqrl checkpoint
"""

from seqrl.agents.baselines import RandomAgent, SB3Agent
from seqrl.agents.dt import (
    DecisionTransformer,
    DTAgent,
    DTConfig,
    build_model,
    model_from_checkpoint,
)
from seqrl.agents.mlp_policy import MLPPolicy, MLPPolicyAgent
from seqrl.agents.policies import POLICY_LOADERS, EnvSpaces, load_policy

__all__ = [
    "POLICY_LOADERS",
    "DTAgent",
    "DTConfig",
    "DecisionTransformer",
    "EnvSpaces",
    "MLPPolicy",
    "MLPPolicyAgent",
    "RandomAgent",
    "SB3Agent",
    "build_model",
    "load_policy",
    "model_from_checkpoint",
]
