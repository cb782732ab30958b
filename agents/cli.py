"""The agents' subcommands: ``seqrl demo`` and ``seqrl train dt``."""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Add the agents' commands to the ``seqrl`` CLI."""
    from seqrl.agents import demo, train_dt

    demo.register(registry)
    train_dt.register(registry)
