"""Minari datasets: lossless round trip, local loads without network, the download path."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
from seqrl.cli import main
from seqrl.data import minari_source
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.data.minari_source import load_minari, minari_root, write_minari
from seqrl.data.sources import list_datasets, load_dataset
from seqrl.errors import DataError
from seqrl.types import Trajectory
from synth_data import make_dataset


@pytest.fixture(autouse=True)
def _minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(minari, "download_dataset", fail)
    # the host resolves (as on a machine with DNS), so the download itself is what fails
    monkeypatch.setattr(minari_source, "remote_unreachable", lambda: None)


def assert_same(a: TrajectoryDataset, b: TrajectoryDataset) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for key in ("observations", "actions", "rewards"):
            np.testing.assert_array_equal(getattr(x, key), getattr(y, key))
            assert getattr(x, key).dtype == getattr(y, key).dtype
        assert (x.terminated, x.truncated) == (y.terminated, y.truncated)


def image_dataset() -> TrajectoryDataset:
    rng = np.random.default_rng(0)
    episodes = [
        Trajectory(
            rng.integers(0, 256, size=(t + 1, 16, 16, 3), dtype=np.uint8),
            rng.integers(0, 4, size=t).astype(np.int64),
            rng.normal(size=t).astype(np.float32),
            terminated=t == 4,
            truncated=t != 4,
        )
        for t in (4, 7)
    ]
    metadata = DatasetMetadata(
        "frames",
        env_id="CartPole-v1",
        observation_space=gym.spaces.Box(0, 255, (16, 16, 3), np.uint8),
        action_space=gym.spaces.Discrete(4),
    )
    return TrajectoryDataset.from_trajectories(episodes, metadata)


@pytest.mark.parametrize("make", [make_dataset, image_dataset])
def test_round_trip_is_lossless(make, no_network: None, _minari_root: Path) -> None:
    dataset = make()
    dataset.metadata.ref_min_score, dataset.metadata.ref_max_score = -5.0, 5.0
    path = write_minari(dataset, "seqrl-test-v0")
    assert path == _minari_root / "seqrl-test-v0"
    assert "seqrl-test-v0" in minari.list_local_datasets()  # a Minari user sees it
    back = load_minari("seqrl-test-v0")
    assert_same(dataset, back)
    assert back.metadata.ref_min_score == -5.0 and back.metadata.source == "minari"
    assert back.metadata.observation_space == dataset.metadata.observation_space
    assert [e.dataset_id for e in list_datasets()] == ["seqrl-test-v0"]
    assert not [p for p in _minari_root.iterdir() if p.name.startswith(".")]  # no temp left
    # a memory-mapped cache gives the same arrays
    cached = load_minari("seqrl-test-v0", cache=_minari_root.parent / "cache")
    assert isinstance(cached.observations, np.memmap)
    assert_same(dataset, cached)
    assert_same(dataset, load_minari("seqrl-test-v0", cache=_minari_root.parent / "cache"))
    # Minari's own reader agrees
    episode = minari.load_dataset("seqrl-test-v0")[0]
    np.testing.assert_array_equal(episode.observations, dataset[0].observations)


def test_namespaced_id_and_folder_path(no_network: None, _minari_root: Path) -> None:
    write_minari(make_dataset(), "seqrl/pendulum/random-v1")
    assert_same(load_dataset("seqrl/pendulum/random-v1"), make_dataset())
    assert_same(load_dataset(_minari_root / "seqrl/pendulum/random-v1"), make_dataset())


def test_an_id_without_version_names_the_latest_local_one(
    no_network: None, _minari_root: Path
) -> None:
    older = make_dataset()
    write_minari(older, "seqrl/hop/mixed-v0")
    newer = TrajectoryDataset.from_trajectories(list(older)[:2], older.metadata)
    write_minari(newer, "seqrl/hop/mixed-v2")
    write_minari(older, "seqrl/hop/mixed-expert-v7")  # another name that shares the prefix
    assert len(load_dataset("seqrl/hop/mixed")) == 2  # v2, not v0 nor mixed-expert-v7
    assert (
        load_minari("seqrl/hop/mixed").metadata.name
        == load_minari("seqrl/hop/mixed-v2").metadata.name
    )
    # with no local version, the error says the form ids take (Minari cannot download it either)
    with pytest.raises(DataError, match=r"'seqrl/hop/expert' has no version .* end in -vN"):
        load_dataset("seqrl/hop/expert")
    assert main(["datasets", "info", "nope"]) == 1


def test_existing_id_and_interrupted_write(
    monkeypatch: pytest.MonkeyPatch, _minari_root: Path
) -> None:
    write_minari(make_dataset(), "taken-v0")
    with pytest.raises(DataError, match="'taken-v0' already exists"):
        write_minari(make_dataset(), "taken-v0")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(minari, "create_dataset_from_buffers", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_minari(make_dataset(), "half-v0")
    assert sorted(os.listdir(_minari_root)) == ["taken-v0"]


def test_remote_id_is_downloaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a "remote server": a Minari root elsewhere, copied in by the patched download
    server = tmp_path / "server"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(server))
    write_minari(make_dataset(), "remote/ds-v0")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    calls = []

    def download(dataset_id: str, force_download: bool = False) -> None:
        import shutil

        calls.append(dataset_id)
        shutil.copytree(server / dataset_id, minari_root() / dataset_id)

    monkeypatch.setattr(minari, "download_dataset", download)
    monkeypatch.setattr(minari_source, "remote_unreachable", lambda: None)  # "online"
    assert_same(load_minari("remote/ds-v0"), make_dataset())
    assert_same(load_minari("remote/ds-v0"), make_dataset())  # second time: local, no download
    assert calls == ["remote/ds-v0"]


def test_offline_fails_at_once_without_trying_to_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolved: list[str] = []

    def no_dns(host: str, *args: object, **kwargs: object) -> None:
        resolved.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def download(*args: object, **kwargs: object) -> None:
        raise AssertionError("no download may be tried offline")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(minari, "download_dataset", download)
    for name in ("MINARI_REMOTE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example.org")
    with pytest.raises(DataError, match=r"no network: cannot resolve hf-mirror\.example\.org"):
        load_dataset("mujoco/hopper/medium-v0")
    monkeypatch.setenv("MINARI_REMOTE", "gcp://minari-datasets")
    with pytest.raises(DataError, match=r"cannot resolve storage\.googleapis\.com"):
        load_dataset("mujoco/hopper/medium-v0")
    assert resolved == ["hf-mirror.example.org", "storage.googleapis.com"]
    # behind a proxy the proxy resolves names: no check, the download is tried
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
    with pytest.raises(DataError, match="no download may be tried offline"):
        load_dataset("mujoco/hopper/medium-v0")
    assert len(resolved) == 2


def test_offline_or_unknown_id_says_how_to_get_the_data(no_network: None) -> None:
    with pytest.raises(
        DataError, match=r"'mujoco/nope-v0' is not under .* could not be downloaded \(network"
    ):
        load_dataset("mujoco/nope-v0")
    with pytest.raises(DataError, match=r"run `minari download mujoco/nope-v0`"):
        load_minari("mujoco/nope-v0", download=False)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unsupported_space(no_network: None) -> None:
    dataset = make_dataset()
    buffer = [
        minari.data_collector.EpisodeBuffer(
            observations={"a": np.asarray(t.observations)},
            actions=np.asarray(t.actions),
            rewards=np.asarray(t.rewards),
            terminations=np.zeros(len(t), bool),
            truncations=np.ones(len(t), bool),
            infos={},
        )
        for t in dataset
    ]
    minari.create_dataset_from_buffers(
        "dict-v0",
        buffer,
        observation_space=gym.spaces.Dict({"a": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)}),
        action_space=dataset.metadata.action_space,
    )
    with pytest.raises(DataError, match=r"minari:dict-v0: key 'observations' has space Dict"):
        load_minari("dict-v0")


def test_cli_list_and_info(
    capsys: pytest.CaptureFixture[str], no_network: None, tmp_path: Path
) -> None:
    assert main(["datasets", "list"]) == 0
    assert "(none)" in capsys.readouterr().out
    write_minari(make_dataset(), "cli-v0")
    assert main(["datasets", "list"]) == 0
    assert "cli-v0" in capsys.readouterr().out
    assert main(["datasets", "info", "cli-v0"]) == 0
    out = capsys.readouterr().out
    assert (
        "episodes: 3 (2 terminated, 1 truncated)" in out
        and "steps: 16" in out
        and "return: mean" in out
    )
    make_dataset().save(tmp_path / "native")
    assert main(["datasets", "info", str(tmp_path / "native")]) == 0
    assert "(seqrl:" in capsys.readouterr().out
    assert main(["datasets", "info", "nope-v0"]) == 1
    assert "seqrl: error: minari: dataset 'nope-v0'" in capsys.readouterr().err
