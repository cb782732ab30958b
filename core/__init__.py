"""seqrl: transformer-based reinforcement learning on one backbone, one data layer, one evaluator.

The seam types are importable from the top level::

    from seqrl import Trajectory, TrajectoryBatch, LossOutput, Agent, WorldModel

Parts live in subpackages: ``seqrl.backbone``, ``seqrl.data``, ``seqrl.envs``, ``seqrl.agents`` and
``seqrl.world_models``.
"""

import os

# Busy-waiting OpenMP threads make the small operations of RL loops (one env step, one token)
# cost milliseconds on a shared machine; PASSIVE makes them sleep instead. It must be set before
# torch starts its OpenMP runtime, so it is set here, unless the user chose a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from seqrl.errors import CheckpointError  # noqa: E402, ConfigError, DataError, SeqrlError, UsageError
from seqrl.protocols import Agent, ImaginedStep, WorldModel  # noqa: E402
from seqrl.types import LossOutput, Trajectory, TrajectoryBatch  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ImaginedStep",
    "LossOutput",
    "SeqrlError",
    "Trajectory",
    "TrajectoryBatch",
    "UsageError",
    "WorldModel",
    "__version__",
]
