"""Optional per-step infos through every layer: datasets, native format, Minari, D4RL, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from seqrl.cli import main
from seqrl.data.d4rl import load_d4rl
from seqrl.data.dataset import DatasetMetadata, TrajectoryDataset
from seqrl.data.infos import info_file_names, nest_infos
from seqrl.data.minari_source import load_minari, write_minari
from seqrl.data.sampler import ChunkSampler, SequenceSampler, WindowSampler
from seqrl.errors import DataError
from seqrl.types import Trajectory
from synth_data import make_trajectories, write_d4rl

LENGTHS = (5, 8, 3)


@pytest.fixture(autouse=True)
def _minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def with_infos(trajectories: list[Trajectory], final_rows: bool = True) -> list[Trajectory]:
    """Give each episode infos: ``T + 1`` rows (one per observation) or ``T`` when not ``final_rows``."""
    out = []
    for e, t in enumerate(trajectories):
        n = len(t) + (1 if final_rows else 0)
        t.infos = {
            "qpos": np.arange(n * 2, dtype=np.float64).reshape(n, 2) + 100 * e,
            "success": np.arange(n) % 2 == 0,
            "stats/count": np.arange(n, dtype=np.int32) + e,
        }
        out.append(t)
    return out


def metadata() -> DatasetMetadata:
    return DatasetMetadata(
        "with-infos",
        observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    )


def dataset_with_infos() -> TrajectoryDataset:
    return TrajectoryDataset.from_trajectories(with_infos(make_trajectories(LENGTHS)), metadata())


def assert_same_infos(a: TrajectoryDataset, b: TrajectoryDataset) -> None:
    assert list(a.infos) == list(b.infos)
    for key in a.infos:
        np.testing.assert_array_equal(a.infos[key], b.infos[key])
        assert a.infos[key].dtype == b.infos[key].dtype, key
    for x, y in zip(a, b, strict=True):
        for key in x.infos:
            np.testing.assert_array_equal(x.infos[key], y.infos[key])


def test_infos_are_views_and_round_trip_memory_mapped(tmp_path: Path) -> None:
    trajectories = with_infos(make_trajectories(LENGTHS))
    dataset = TrajectoryDataset.from_trajectories(trajectories, metadata())
    assert dataset.infos["qpos"].shape == (16 + 3, 2)  # one row per observation row
    assert dataset.infos["success"].dtype == np.bool_
    for original, episode in zip(trajectories, dataset, strict=True):
        assert set(episode.infos) == {"qpos", "success", "stats/count"}
        for key, value in original.infos.items():
            np.testing.assert_array_equal(episode.infos[key], value)
            assert np.shares_memory(episode.infos[key], dataset.infos[key])
    assert "infos_final_row_repeated" not in dataset.metadata.extra
    plain = TrajectoryDataset.from_trajectories(make_trajectories(LENGTHS), metadata())
    extra = sum(v.nbytes for v in dataset.infos.values())
    assert extra == 19 * 16 + 19 + 19 * 4 and dataset.nbytes == plain.nbytes + extra

    dataset.save(tmp_path / "ds")
    assert {"info.qpos.npy", "info.success.npy", "info.stats_count.npy"} <= {
        p.name for p in (tmp_path / "ds").iterdir()
    }
    loaded = TrajectoryDataset.load(tmp_path / "ds")
    assert all(isinstance(v, np.memmap) for v in loaded.infos.values())
    assert_same_infos(dataset, loaded)
    assert loaded.nbytes == dataset.nbytes
    assert_same_infos(dataset, TrajectoryDataset.load(tmp_path / "ds", mmap=False))


def test_rows_are_converted_to_the_observation_layout() -> None:
    # T rows per episode into T + 1 observations: the final row copies the last step's
    dataset = TrajectoryDataset.from_trajectories(
        with_infos(make_trajectories(LENGTHS), final_rows=False), metadata()
    )
    qpos = dataset[1].infos["qpos"]
    assert qpos.shape == (9, 2)
    np.testing.assert_array_equal(qpos[-1], qpos[-2])
    np.testing.assert_array_equal(qpos[:8], np.arange(16).reshape(8, 2) + 100)
    assert dataset.metadata.extra["infos_final_row_repeated"] == [
        "qpos",
        "stats/count",
        "success",
    ]
    # T + 1 rows into T observations: the last row is dropped
    trajectories = with_infos(make_trajectories(LENGTHS))
    for t in trajectories:
        t.observations = t.observations[:-1]
    dataset = TrajectoryDataset.from_trajectories(trajectories, DatasetMetadata("no-final"))
    assert not dataset.has_final_observation and dataset.infos["qpos"].shape == (16, 2)
    np.testing.assert_array_equal(dataset[2].infos["stats/count"], [2, 3, 4])
    # dtypes are promoted across episodes
    trajectories = with_infos(make_trajectories((2, 3)))
    trajectories[1].infos["stats/count"] = trajectories[1].infos["stats/count"].astype(np.float64)
    dataset = TrajectoryDataset.from_trajectories(trajectories, DatasetMetadata("promote"))
    assert dataset.infos["stats/count"].dtype == np.float64


def test_mismatched_infos_name_the_key() -> None:
    def build(edit) -> None:  # noqa: ANN001
        trajectories = with_infos(make_trajectories(LENGTHS))
        edit(trajectories)
        TrajectoryDataset.from_trajectories(trajectories, DatasetMetadata("bad"))

    with pytest.raises(DataError, match=r"^bad: info 'qpos' is missing from episode 2"):
        build(lambda ts: ts[2].infos.pop("qpos"))
    with pytest.raises(DataError, match=r"^bad: info 'extra' is in episode 1 but not in episode 0"):
        build(lambda ts: ts[1].infos.update(extra=np.zeros(len(ts[1]))))
    with pytest.raises(DataError, match=r"info 'qpos' has per-step shape \(3,\) in episode 1"):
        build(lambda ts: ts[1].infos.update(qpos=np.zeros((len(ts[1]), 3))))
    with pytest.raises(DataError, match=r"info 'name' has dtype <U1 in episode 0"):
        build(lambda ts: [t.infos.update(name=np.array(["a"] * len(t))) for t in ts])
    # flat arrays given directly are checked too
    dataset = dataset_with_infos()
    with pytest.raises(DataError, match=r"info 'qpos' has shape \(16, 2\); expected 19 rows"):
        TrajectoryDataset(
            dataset.observations,
            dataset.actions,
            dataset.rewards,
            dataset.episode_starts,
            dataset.terminated,
            dataset.truncated,
            DatasetMetadata("flat"),
            infos={"qpos": np.zeros((16, 2))},
        )


def test_old_folders_without_infos_still_load_and_bad_headers_fail(tmp_path: Path) -> None:
    dataset = TrajectoryDataset.from_trajectories(make_trajectories(LENGTHS), metadata())
    dataset.save(tmp_path / "old")
    header_file = tmp_path / "old" / "seqrl_dataset.json"
    header = json.loads(header_file.read_text())
    assert header["infos"] == {}
    del header["infos"]  # as written before infos existed
    header_file.write_text(json.dumps(header))
    old = TrajectoryDataset.load(tmp_path / "old")
    assert old.infos == {} and old[0].infos == {} and old.nbytes == dataset.nbytes

    dataset_with_infos().save(tmp_path / "new")
    header_file = tmp_path / "new" / "seqrl_dataset.json"
    header = json.loads(header_file.read_text())
    header["infos"]["qpos"] = "../escape.npy"
    header_file.write_text(json.dumps(header))
    with pytest.raises(DataError, match=r"info 'qpos' has a bad file name '../escape.npy'"):
        TrajectoryDataset.load(tmp_path / "new")
    header["infos"]["qpos"] = "info.gone.npy"
    header_file.write_text(json.dumps(header))
    with pytest.raises(DataError, match=r"missing info 'qpos' \(info.gone.npy\)"):
        TrajectoryDataset.load(tmp_path / "new")


def test_info_names_nest_and_file_names_stay_distinct() -> None:
    assert nest_infos({"a/b": 1, "a/c": 2, "d": 3}, "x") == {"a": {"b": 1, "c": 2}, "d": 3}
    with pytest.raises(DataError, match=r"^x: info 'a/b' nests under info 'a', an array$"):
        nest_infos({"a": 1, "a/b": 2}, "x")
    names = info_file_names(["a/b", "a_b", "A_B", "q"])
    assert len(set(names.values())) == 4 and names["q"] == "info.q.npy"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_write_read_is_lossless_with_infos(tmp_path: Path) -> None:
    dataset = dataset_with_infos()
    write_minari(dataset, "infos-v0")
    back = load_minari("infos-v0")
    assert_same_infos(dataset, back)
    assert "skipped_infos" not in back.metadata.extra
    # Minari's own reader sees nested infos, one row per observation
    episode = minari.load_dataset("infos-v0")[1]
    assert set(episode.infos) == {"qpos", "success", "stats"}
    np.testing.assert_array_equal(episode.infos["stats"]["count"], dataset[1].infos["stats/count"])
    assert len(episode.infos["qpos"]) == len(episode.observations)
    # and a cache in seqrl's format keeps them
    cached = load_minari("infos-v0", cache=tmp_path / "cache")
    assert_same_infos(dataset, cached)
    # the CLI lists them
    assert main(["datasets", "info", "infos-v0"]) == 0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_infos_written_by_others_are_converted_or_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    trajectories = make_trajectories(LENGTHS)
    buffers = []
    for e, t in enumerate(trajectories):
        n = len(t)
        infos = {
            "per_action": np.arange(n, dtype=np.float32),  # T rows: final row copied
            "label": np.array([b"x"] * (n + 1)),  # bytes: skipped
            "nested": {"ok": np.ones((n + 1, 2), np.int16)},
        }
        if e == 0:
            infos["only_first"] = np.zeros(n + 1)  # missing later: skipped
        buffers.append(
            minari.data_collector.EpisodeBuffer(
                observations=t.observations,
                actions=t.actions,
                rewards=t.rewards,
                terminations=np.zeros(n, bool),
                truncations=np.ones(n, bool),
                infos=infos,
            )
        )
    md = metadata()
    minari.create_dataset_from_buffers(
        "others-v0",
        buffers,
        observation_space=md.observation_space,
        action_space=md.action_space,
    )
    dataset = load_minari("others-v0")
    assert set(dataset.infos) == {"nested/ok", "per_action"}
    np.testing.assert_array_equal(dataset[0].infos["per_action"], [0, 1, 2, 3, 4, 4])
    assert dataset.infos["nested/ok"].dtype == np.int16
    skipped = dataset.metadata.extra["skipped_infos"]
    assert set(skipped) == {"label", "only_first"}
    assert "expected numbers or bool" in skipped["label"]
    assert "missing from episode 1" in skipped["only_first"]
    assert dataset.metadata.extra["infos_final_row_repeated"] == ["per_action"]
    assert main(["datasets", "info", "others-v0"]) == 0
    out = capsys.readouterr().out
    assert "infos: " in out and "nested/ok (2,) int16" in out and "per_action () float32" in out
    assert "infos skipped: label (" in out


def test_d4rl_infos_split_with_the_episodes(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    n = 10
    qpos = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    logp = -np.arange(n, dtype=np.float32)
    terminals = np.zeros(n, bool)
    terminals[3] = True
    infos = {
        "infos/qpos": qpos,
        "infos/action_log_probs": logp,
        "infos/goal/reached": np.arange(n) > 5,
        "infos/summary": np.zeros(4),  # not per step: skipped
        "infos/name": np.array([b"walker"] * n),  # not numeric: skipped
    }
    # without next_observations: rows exactly as in the file
    path = write_d4rl(
        tmp_path / "plain.hdf5", n=n, terminals=terminals, next_observations=None, **infos
    )
    dataset = load_d4rl(path)
    np.testing.assert_array_equal(dataset.episode_starts, [0, 4, 10])
    np.testing.assert_array_equal(dataset.infos["qpos"], qpos)
    np.testing.assert_array_equal(dataset[1].infos["action_log_probs"], logp[4:])
    np.testing.assert_array_equal(dataset[0].infos["goal/reached"], np.zeros(4, bool))
    assert set(dataset.metadata.extra["skipped_infos"]) == {"summary", "name"}
    assert "has shape (4,); expected 10 rows" in dataset.metadata.extra["skipped_infos"]["summary"]
    assert "infos_final_row_repeated" not in dataset.metadata.extra
    # with next_observations: T + 1 rows, the final one a copy of the last step's
    path = write_d4rl(tmp_path / "next.hdf5", n=n, terminals=terminals, **infos)
    dataset = load_d4rl(path)
    assert dataset.infos["qpos"].shape == (12, 3)
    np.testing.assert_array_equal(dataset[0].infos["qpos"], np.concatenate([qpos[:4], qpos[3:4]]))
    np.testing.assert_array_equal(dataset[1].infos["qpos"], np.concatenate([qpos[4:], qpos[9:]]))
    assert dataset.metadata.extra["infos_final_row_repeated"] == [
        "action_log_probs",
        "goal/reached",
        "qpos",
    ]
    assert load_d4rl(path, infos=False).infos == {}
    # a saved copy keeps them, and the CLI lists them
    dataset.save(tmp_path / "saved")
    assert_same_infos(dataset, TrajectoryDataset.load(tmp_path / "saved"))
    assert main(["datasets", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "qpos (3,) float64" in out and "infos skipped: " in out and "summary (" in out
    # a file without infos says so
    assert main(["datasets", "info", str(write_d4rl(tmp_path / "none.hdf5"))]) == 0
    assert "infos: none" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make",
    [
        lambda ds: WindowSampler(ds, context=6),
        lambda ds: SequenceSampler(ds, seq_len=4, burn_in=2),
        lambda ds: ChunkSampler(ds, length=7),
    ],
)
def test_samplers_are_unaffected_by_infos(make) -> None:  # noqa: ANN001
    plain = TrajectoryDataset.from_trajectories(make_trajectories(LENGTHS), metadata())
    rich = dataset_with_infos()
    a = make(plain).sample(32, np.random.default_rng(5))
    b = make(rich).sample(32, np.random.default_rng(5))
    for key in ("observations", "actions", "rewards", "returns_to_go", "timesteps", "mask"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert a.extras.keys() == b.extras.keys()
