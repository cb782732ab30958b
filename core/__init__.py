"""seqrl: transformer-based reinforcement learning on one backbone, one data layer, one evaluator.

The seam types are importable from the top level::

    from seqrl import Trajectory, TrajectoryBatch, LossOutput, Agent, WorldModel

Parts live in subpackages: ``seqrl.backbone``, ``seqrl.data``, ``seqrl.envs``, ``seqrl.agents`` and
``seqrl.world_models``.
"""

from seqrl.errors import CheckpointError, ConfigError, DataError, SeqrlError, UsageError
from seqrl.protocols import Agent, ImaginedStep, WorldModel
from seqrl.types import LossOutput, Trajectory, TrajectoryBatch

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
