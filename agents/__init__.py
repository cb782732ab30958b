"""Agents: Decision Transformer, actor-critic and baseline agents."""
