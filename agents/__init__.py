"""Agents: Decision Transformer, actor-critic and baseline agents."""

from seqrl.agents.baselines import RandomAgent, SB3Agent  # noqa: E402
from seqrl.agents.policies import POLICY_LOADERS, EnvSpaces, load_policy  # noqa: E402
