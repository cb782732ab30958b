"""Minari datasets: read one by id (downloading it where the network allows) and write one.

Datasets live under Minari's root (``MINARI_DATASETS_PATH``, default ``~/.minari/datasets``), so
``minari list local`` shows what seqrl collects and any Minari user can read it. Minari keeps
``T + 1`` observations per episode; so does seqrl, and writing then reading gives identical
arrays (image observations are written without Minari's lossy JPEG encoding).

Infos: each episode's ``infos`` (nested dicts flattened as ``a/b``; Minari records ``T + 1``
rows, the reset's info first) become ``dataset.infos`` in the observations' layout
(:mod:`seqrl.data.infos`), and :func:`write_minari` writes them back nested, so a round trip
gives identical infos. An info that cannot be carried (not numeric or bool, missing from some
episode, another per-step shape or length) is skipped, never fatal: its key and the reason are
kept in ``metadata.extra["skipped_infos"]``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import gymnasium as gym
import numpy as np
from seqrl.data.dataset import FORMAT_FILE, DatasetMetadata, TrajectoryDataset
from seqrl.data.infos import InfoAssembler, nest_infos, record_conversions
from seqrl.data.validate import check_array
from seqrl.errors import DataError


def minari_root() -> Path:
    """Minari's dataset root (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    from minari.storage.datasets_root_dir import get_dataset_path

    return Path(get_dataset_path())


def is_local_minari(dataset_id: str) -> bool:
    """Whether ``dataset_id`` is a Minari dataset under :func:`minari_root`."""
    return (minari_root() / dataset_id / "data").is_dir()


def remote_unreachable() -> str | None:
    """Why Minari's remote cannot be reached (its host name does not resolve), else None.

    The remote is ``MINARI_REMOTE`` (default ``hf://farama-minari``: Hugging Face, at
    ``HF_ENDPOINT`` when set; ``gcp://``: Google Cloud Storage). Only name resolution is
    checked: it fails at once offline, where a download would retry for about 25 s first.
    Behind a proxy (``HTTPS_PROXY`` / ``ALL_PROXY`` set) the proxy resolves names, so nothing is
    checked here.
    """
    proxies = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    if any(os.environ.get(name) for name in proxies):
        return None
    remote = os.environ.get("MINARI_REMOTE", "hf://farama-minari")
    if remote.startswith("hf://"):
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        host = urlsplit(endpoint).hostname
    elif remote.startswith("gcp://"):
        host = "storage.googleapis.com"
    else:
        return None
    if not host:
        return None
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"no network: cannot resolve {host} ({exc.strerror or exc})"
    return None


_VERSION = re.compile(r"-v(\d+)$")


def resolve_minari_id(dataset_id: str) -> str:
    """``dataset_id`` itself when it ends in ``-vN``; otherwise its latest local version.

    As ``gymnasium.make`` does for env ids, ``hop-r`` names the highest ``hop-r-vN`` under
    :func:`minari_root`. Minari resolves no version for a download, so a versionless id with no
    local version is a :class:`DataError` that says the form ids take.
    """
    if _VERSION.search(dataset_id):
        return dataset_id
    folder = minari_root() / dataset_id
    stem = folder.name
    versions = []
    if folder.parent.is_dir():
        for child in folder.parent.iterdir():
            rest = child.name[len(stem) :] if child.name.startswith(stem) else ""
            match = _VERSION.fullmatch(rest) if rest else None
            if match and (child / "data").is_dir():
                versions.append(int(match.group(1)))
    if not versions:
        raise DataError(
            f"minari: dataset id '{dataset_id}' has no version and no '{dataset_id}-vN' is under "
            f"{minari_root()}: Minari ids end in -vN (e.g. 'mujoco/hopper/medium-v0'); "
            "`seqrl datasets list` shows the local ones"
        )
    return f"{dataset_id}-v{max(versions)}"


def load_minari(
    dataset_id: str, download: bool = True, cache: str | Path | None = None
) -> TrajectoryDataset:
    """Load a Minari dataset by id into flat arrays (``uint8`` observations stay ``uint8``).

    An id without ``-vN`` names its latest local version (:func:`resolve_minari_id`). A local
    dataset loads with no network access. Otherwise, when ``download``, it is fetched
    through ``minari.download_dataset``; failing that (offline, unknown id) a :class:`DataError`
    says how to get the data. With ``cache`` (a folder), the flat arrays are saved there in
    seqrl's format on the first load and memory-mapped from it afterwards (for large image
    datasets: the heap then holds nothing).
    """
    import minari

    if cache is not None and (Path(cache) / FORMAT_FILE).is_file():
        return TrajectoryDataset.load(cache)

    dataset_id = resolve_minari_id(dataset_id)
    if not is_local_minari(dataset_id):
        if not download:
            raise DataError(
                f"minari: dataset '{dataset_id}' is not under {minari_root()}; run "
                f"`minari download {dataset_id}` or pass a local path"
            )
        try:
            offline = remote_unreachable()
            if offline:  # fail at once, not after the HTTP client's retries (about 25 s)
                raise ConnectionError(offline)
            minari.download_dataset(dataset_id)
        except Exception as exc:  # noqa: BLE001 - any failure means: no data
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"minari: dataset '{dataset_id}' is not under {minari_root()} and could not be "
                f"downloaded ({reason}); on a machine with network run `minari download {dataset_id}` "
                "and copy the folder into MINARI_DATASETS_PATH, or check the id with `minari list remote`"
            ) from None
        if not is_local_minari(dataset_id):
            raise DataError(
                f"minari: download of '{dataset_id}' left no dataset under {minari_root()}"
            )
    try:
        data = minari.load_dataset(dataset_id)
    except Exception as exc:  # noqa: BLE001 - corrupted metadata, unsupported version, ...
        raise DataError(f"minari: cannot read dataset '{dataset_id}' ({exc})") from None
    dataset = _from_minari(data, dataset_id)
    if cache is not None:
        dataset.save(cache)
        return TrajectoryDataset.load(cache)
    return dataset


def _from_minari(data: object, dataset_id: str) -> TrajectoryDataset:
    """Copy a ``MinariDataset``'s episodes into preallocated flat arrays."""
    where = f"minari:{dataset_id}"
    obs_space, act_space = data.observation_space, data.action_space  # type: ignore[attr-defined]
    for key, space in (("observations", obs_space), ("actions", act_space)):
        if not isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise DataError(
                f"{where}: key '{key}' has space {type(space).__name__}; seqrl reads Box and "
                "Discrete spaces only"
            )
    n_episodes, n_steps = data.total_episodes, data.total_steps  # type: ignore[attr-defined]
    if n_episodes == 0 or n_steps == 0:
        raise DataError(f"{where}: empty dataset (no episodes)")
    observations = np.empty((n_steps + n_episodes, *obs_space.shape), dtype=obs_space.dtype)
    act_dtype = np.int64 if isinstance(act_space, gym.spaces.Discrete) else act_space.dtype
    actions = np.empty((n_steps, *act_space.shape), dtype=act_dtype)
    rewards = np.empty(n_steps, dtype=np.float32)
    starts = np.zeros(n_episodes + 1, dtype=np.int64)
    terminated = np.zeros(n_episodes, dtype=bool)
    truncated = np.zeros(n_episodes, dtype=bool)
    infos = InfoAssembler(where, n_steps + n_episodes, final=True, strict=False)
    s = 0
    for e, episode in enumerate(data.iterate_episodes()):  # type: ignore[attr-defined]
        t = len(episode.actions)
        key_where = f"{where} episode {episode.id}"
        if len(episode.observations) != t + 1:
            raise DataError(
                f"{key_where}: key 'observations' has {len(episode.observations)} rows for {t} actions"
            )
        check_array(key_where, "rewards", np.asarray(episode.rewards), "number", rows=t)
        check_array(key_where, "actions", np.asarray(episode.actions), "number", rows=t)
        observations[s + e : s + e + t + 1] = episode.observations
        actions[s : s + t] = episode.actions
        rewards[s : s + t] = episode.rewards
        terminated[e] = bool(episode.terminations[-1])
        truncated[e] = bool(episode.truncations[-1])
        infos.add(episode.infos, t)
        s += t
        starts[e + 1] = s
    if np.issubdtype(observations.dtype, np.floating):
        check_array(where, "observations", observations, "float")
    metadata_raw = data.storage.metadata  # type: ignore[attr-defined]
    spec = data.env_spec  # type: ignore[attr-defined]
    metadata = DatasetMetadata(
        name=dataset_id,
        source="minari",
        location=dataset_id,
        env_id=spec.id if spec is not None else None,
        observation_space=obs_space,
        action_space=act_space,
        ref_min_score=metadata_raw.get("ref_min_score"),
        ref_max_score=metadata_raw.get("ref_max_score"),
        extra={"algorithm_name": metadata_raw.get("algorithm_name")},
    )
    if s != n_steps:
        raise DataError(f"{where}: episodes hold {s} steps but the metadata says {n_steps}")
    record_conversions(metadata.extra, infos.repeated, infos.skipped)
    return TrajectoryDataset(
        observations,
        actions,
        rewards,
        starts,
        terminated,
        truncated,
        metadata,
        infos=infos.result(),
    )


@contextmanager
def _minari_root_at(path: Path) -> Iterator[None]:
    """Point Minari at another root for the duration (it reads the variable on every call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def write_minari(
    dataset: TrajectoryDataset,
    dataset_id: str,
    algorithm_name: str | None = None,
    description: str | None = None,
) -> Path:
    """Write ``dataset`` as the Minari dataset ``dataset_id`` under :func:`minari_root`.

    The dataset is built in a temporary root next to the final one and renamed into place, so an
    interrupted write leaves nothing half-written. Needs the observation after each episode's last
    action (``T + 1`` observations) and the spaces in the metadata.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    root = minari_root()
    target = root / dataset_id
    if target.exists():
        raise DataError(
            f"minari: dataset '{dataset_id}' already exists under {root}; choose another name"
        )
    if not dataset.has_final_observation:
        raise DataError(
            f"{dataset.metadata.location or dataset.metadata.name}: key 'observations' lacks the "
            "observation after each episode's last action, which Minari requires"
        )
    obs_space, act_space = dataset.metadata.observation_space, dataset.metadata.action_space
    if obs_space is None or act_space is None:
        raise DataError(f"{dataset.metadata.name}: metadata lacks the observation or action space")
    env_spec = None
    if dataset.metadata.env_id is not None:
        from seqrl.envs import is_atari

        is_atari(dataset.metadata.env_id)  # registers the ALE ids
        try:
            env_spec = gym.spec(dataset.metadata.env_id)
        except gym.error.Error:
            env_spec = None
    where = dataset.metadata.location or dataset.metadata.name
    nest_infos(dataset.infos, where)  # names that cannot nest fail before anything is written
    buffers = []
    for e, episode in enumerate(dataset):
        flags = np.zeros(len(episode), dtype=bool)
        terms, truncs = flags.copy(), flags.copy()
        terms[-1], truncs[-1] = episode.terminated, episode.truncated
        buffers.append(
            EpisodeBuffer(
                id=e,
                observations=np.asarray(episode.observations),
                actions=np.asarray(episode.actions),
                rewards=np.asarray(episode.rewards),
                terminations=terms,
                truncations=truncs,
                infos=nest_infos({k: np.asarray(v) for k, v in episode.infos.items()}, where),
            )
        )
    # ref scores: both or neither (given only one, Minari rolls out a random policy for the other)
    refs = {}
    if dataset.metadata.ref_min_score is not None and dataset.metadata.ref_max_score is not None:
        refs = {
            "ref_min_score": dataset.metadata.ref_min_score,
            "ref_max_score": dataset.metadata.ref_max_score,
        }
    root.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".seqrl-write-", dir=root))
    try:
        with _minari_root_at(tmp_root), warnings.catch_warnings():
            # Minari nags about unset author / permalink / eval env; they are optional
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\..*")
            kwargs = {"env": env_spec} if env_spec is not None else {}
            created = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                observation_space=obs_space,
                action_space=act_space,
                algorithm_name=algorithm_name,
                description=description,
                jpeg_encoding=False,
                **kwargs,
            )
            if refs:  # Minari stores them itself only when it can build the env
                created.storage.update_metadata(refs)
        namespace = parse_dataset_id(dataset_id)[0]
        if namespace is not None:
            from minari.namespace import create_namespace, list_local_namespaces

            if namespace not in list_local_namespaces():
                create_namespace(namespace)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_root / dataset_id, target)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return target
