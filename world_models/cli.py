"""The world models' subcommands: ``seqrl train twm`` and ``seqrl train iris``."""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Add the world models' commands to the ``seqrl`` CLI."""
    from seqrl.world_models import train_iris, train_twm

    train_twm.register(registry)
    train_iris.register(registry)
