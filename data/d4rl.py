"""D4RL HDF5 files (Fu et al. 2020, arXiv 2004.07219), read with h5py: no ``d4rl`` import.

Keys: ``observations`` (N, obs_dim), ``actions`` (N, act_dim), ``rewards`` (N,) or (N, 1),
``terminals`` (N,), ``timeouts`` (N,), optional ``next_observations`` (N, obs_dim).

Episodes end at every step with ``terminals`` (terminated) or ``timeouts`` (truncated). How this
differs from ``d4rl.sequence_dataset`` / the Decision Transformer's loader:

- the trailing unfinished episode after the last terminal/timeout is **kept**, flagged truncated
  (d4rl drops it);
- with ``next_observations``, each episode keeps the observation after its last action
  (``T + 1`` observations), which d4rl's dict never had;
- a file without ``timeouts`` (the v0 datasets) is split every ``max_episode_steps`` steps, taken
  from the env id (``gym.spec(env_id).max_episode_steps``) or given directly, as d4rl did with
  its hard-coded 1000.

Infos: every dataset under the ``infos`` group (``infos/qpos``, ``infos/action_log_probs``;
nested groups flattened as ``a/b``) with one row per file row and a numeric or bool dtype
becomes ``dataset.infos[key]``, split with the episodes. D4RL rows go with ``observations``, so
with ``next_observations`` each episode gets a final info row copied from its last row (see
:mod:`seqrl.data.infos`). Any other dataset under ``infos`` (strings, scalars, another length)
is skipped, never fatal; its key and the reason are kept in ``metadata.extra["skipped_infos"]``
and ``seqrl datasets info`` prints them.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset, check_spaces
from seqrl.data.infos import is_info_dtype, record_conversions
from seqrl.data.validate import check_array
from seqrl.errors import DataError

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")


def is_hdf5(path: str | Path) -> bool:
    """Whether ``path`` is a file starting with the HDF5 signature."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def load_d4rl(
    path: str | Path,
    env_id: str | None = None,
    max_episode_steps: int | None = None,
    infos: bool = True,
) -> TrajectoryDataset:
    """Read a D4RL HDF5 file into a :class:`TrajectoryDataset`.

    Args:
        path: the ``.hdf5`` file.
        env_id: the gymnasium env it belongs to (e.g. ``Hopper-v5``): its spaces are checked
            against the data and its episode limit splits files without ``timeouts``.
        max_episode_steps: the episode limit for files without ``timeouts`` (overrides the env's).
        infos: read the ``infos/*`` datasets (``False`` saves their memory).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            loaded = _read_file(f, path, env_id, max_episode_steps)
            final = "next_observations" in f
            starts = loaded[3]
            info_arrays, skipped = (
                _read_infos(f["infos"], starts, final)
                if infos and isinstance(f.get("infos"), h5py.Group)
                else ({}, {})
            )
    except OSError as exc:  # truncated file, bad superblock, unreadable dataset
        raise DataError(f"{path}: unreadable HDF5 file ({str(exc).splitlines()[0]})") from None
    where = str(path)
    observations, actions, rewards, starts, episode_terminated, partial, limit, env_spec = loaded
    episode_truncated = ~episode_terminated  # timeouts, or the unfinished trailing episode
    from seqrl.envs.scores import d4rl_ref_scores  # here: seqrl.envs is slow to import

    ref = d4rl_ref_scores(env_id or path.stem)
    spaces = {}
    if env_spec is not None:
        env = gym.make(env_spec)
        spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
        env.close()
    else:
        spaces = {
            "observation_space": gym.spaces.Box(
                -np.inf, np.inf, observations.shape[1:], observations.dtype
            ),
            "action_space": gym.spaces.Box(-1.0, 1.0, actions.shape[1:], actions.dtype)
            if np.issubdtype(actions.dtype, np.floating)
            else gym.spaces.Discrete(int(actions.max()) + 1),
        }
    metadata = DatasetMetadata(
        name=path.stem,
        source="d4rl",
        location=where,
        env_id=env_id,
        ref_min_score=ref.low if ref else None,
        ref_max_score=ref.high if ref else None,
        extra={"trailing_partial_episode": bool(partial), "split_every": limit},
        **spaces,
    )
    record_conversions(metadata.extra, set(info_arrays) if final else set(), skipped)
    dataset = TrajectoryDataset(
        observations,
        actions,
        rewards.astype(np.float32, copy=False),
        starts,
        episode_terminated,
        episode_truncated,
        metadata,
        infos=info_arrays,
    )
    if env_spec is not None:
        check_spaces(dataset, spaces["observation_space"], spaces["action_space"])
    return dataset


def _read_file(f, path: Path, env_id: str | None, max_episode_steps: int | None):  # noqa: ANN001, ANN202
    """Read and check the keys; observations are read episode by episode straight into place,
    so loading never holds two copies of them."""
    where = str(path)
    for key in REQUIRED_KEYS:
        if key not in f:
            raise DataError(f"{where}: missing key '{key}'")
    obs_ds = f["observations"]
    if len(obs_ds.shape) == 0 or obs_ds.shape[0] == 0:
        raise DataError(f"{where}: key 'observations' is empty (0 rows)")
    rows = obs_ds.shape[0]
    if not np.issubdtype(obs_ds.dtype, np.floating):
        raise DataError(f"{where}: key 'observations' has dtype {obs_ds.dtype}; expected floats")
    actions = check_array(where, "actions", f["actions"][()], "number", rows=rows)
    rewards = check_array(where, "rewards", f["rewards"][()], "number", rows=rows)
    if rewards.ndim == 2 and rewards.shape[1] == 1:
        rewards = rewards[:, 0]
    if rewards.ndim != 1:
        raise DataError(f"{where}: key 'rewards' has shape {rewards.shape}; expected ({rows},)")
    terminals = check_array(where, "terminals", f["terminals"][()], "flag", rows=rows)
    terminals = terminals.astype(bool).reshape(rows)

    env_spec = None
    if env_id is not None:
        try:
            env_spec = gym.spec(env_id)
        except gym.error.Error as exc:
            raise DataError(f"{where}: unknown env id '{env_id}' ({exc})") from None
    limit = None
    if "timeouts" in f:
        timeouts = check_array(where, "timeouts", f["timeouts"][()], "flag", rows=rows)
        timeouts = timeouts.astype(bool).reshape(rows)
    else:
        limit = max_episode_steps or (env_spec.max_episode_steps if env_spec is not None else None)
        if limit is None:
            raise DataError(
                f"{where}: missing key 'timeouts'; give the episode limit (--max-episode-steps) or an "
                "env id whose spec has max_episode_steps (--env)"
            )
        timeouts = _timeouts_from_limit(terminals, limit)

    ends = np.flatnonzero(terminals | timeouts) + 1  # exclusive ends of complete episodes
    starts = np.concatenate([[0], ends]).astype(np.int64)
    partial = bool(starts[-1] < rows)
    if partial:
        starts = np.append(starts, rows)
    episode_terminated = terminals[starts[1:] - 1]

    if "next_observations" in f:
        # T + 1 observations: each episode's rows, then the next observation of its last step
        next_ds = f["next_observations"]
        if next_ds.shape != obs_ds.shape:
            raise DataError(
                f"{where}: key 'next_observations' has shape {next_ds.shape} but 'observations' "
                f"has {obs_ds.shape}"
            )
        observations = _read_with_final_rows(obs_ds, starts)
        last = starts[1:] - 1
        observations[last + np.arange(len(last)) + 1] = check_array(
            where, "next_observations", next_ds[last], "float"
        )
    else:
        observations = obs_ds[()]
    finite = np.isfinite(observations).reshape(len(observations), -1).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        if len(observations) > rows:  # map the T + 1 layout back to the file's row
            finals = starts[1:] + np.arange(len(starts) - 1)
            row -= int(np.searchsorted(finals, row, side="left"))
        raise DataError(f"{where}: key 'observations' contains NaN or inf (first at row {row})")
    return observations, actions, rewards, starts, episode_terminated, partial, limit, env_spec


def _read_with_final_rows(ds, starts: np.ndarray) -> np.ndarray:  # noqa: ANN001 - h5py.Dataset
    """The rows of ``ds`` with one unfilled row after each episode (its final row), read episode
    by episode straight into place."""
    n_episodes = len(starts) - 1
    out = np.empty((ds.shape[0] + n_episodes, *ds.shape[1:]), dtype=ds.dtype)
    for e in range(n_episodes):
        s, t = int(starts[e]), int(starts[e + 1])
        ds.read_direct(out, np.s_[s:t], np.s_[s + e : t + e])
    return out


def _read_infos(
    group,  # noqa: ANN001 - h5py.Group
    starts: np.ndarray,
    final: bool,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The per-step datasets under ``infos`` (flattened as ``a/b``) and the skipped ones."""
    import h5py

    rows = int(starts[-1])
    found: list[tuple[str, h5py.Dataset]] = []
    group.visititems(
        lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None
    )
    arrays: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for name, ds in found:
        if not is_info_dtype(ds.dtype):
            skipped[name] = f"has dtype {ds.dtype}; expected numbers or bool"
        elif len(ds.shape) == 0 or ds.shape[0] != rows:
            skipped[name] = f"has shape {ds.shape}; expected {rows} rows, one per step"
        elif final:
            out = _read_with_final_rows(ds, starts)
            finals = starts[1:] + np.arange(len(starts) - 1)
            out[finals] = out[finals - 1]  # the last step's info, copied
            arrays[name] = out
        else:
            arrays[name] = ds[()]
    return arrays, skipped


def _timeouts_from_limit(terminals: np.ndarray, limit: int) -> np.ndarray:
    """Timeouts for a file without them: an episode not ended by a terminal ends after ``limit`` steps."""
    timeouts = np.zeros_like(terminals)
    steps = 0
    for i, done in enumerate(terminals):
        steps += 1
        if done:
            steps = 0
        elif steps == limit:
            timeouts[i] = True
            steps = 0
    return timeouts
