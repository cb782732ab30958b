"""The trajectory dataset layer: sources, collection, samplers and the replay buffer.

::

    from seqrl.data import load_dataset, WindowSampler, observation_stats

    dataset = load_dataset("hopper-medium-v2.hdf5")          # or a Minari id, a seqrl folder, DQN-Replay
    sampler = WindowSampler(dataset, context=20, return_scale=1000.0, obs_stats=observation_stats(dataset))
    batch = sampler.sample(64, np.random.default_rng(0))     # TrajectoryBatch (64, 20, ...)

Every source returns a :class:`TrajectoryDataset` (episodes back to back in flat arrays;
``dataset[i]`` is a :class:`~seqrl.types.Trajectory` of views). Samplers read datasets and the
:class:`ReplayBuffer` alike. See ``docs/data.md``.
"""

from seqrl.data.d4rl import load_d4rl
from seqrl.data.dataset import DatasetMetadata, EpisodeIndex, TrajectoryDataset, check_spaces
from seqrl.data.dqn_replay import load_dqn_replay
from seqrl.data.minari_source import load_minari, minari_root, write_minari
from seqrl.data.replay import ReplayBuffer
from seqrl.data.sampler import ChunkSampler, SequenceSampler, VisitWeights, WindowSampler
from seqrl.data.sources import DatasetEntry, list_datasets, load_dataset
from seqrl.data.stats import DatasetStats, ObservationStats, dataset_stats, observation_stats

__all__ = [
    "ChunkSampler",
    "DatasetEntry",
    "DatasetMetadata",
    "DatasetStats",
    "EpisodeIndex",
    "ObservationStats",
    "ReplayBuffer",
    "SequenceSampler",
    "TrajectoryDataset",
    "VisitWeights",
    "WindowSampler",
    "check_spaces",
    "dataset_stats",
    "list_datasets",
    "load_d4rl",
    "load_dataset",
    "load_dqn_replay",
    "load_minari",
    "minari_root",
    "observation_stats",
    "write_minari",
]
