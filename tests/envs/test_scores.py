"""Normalization constants and the aggregate metrics, against shared/reference (copied as fixtures)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from seqrl.envs import (
    ATARI_RANDOM_HUMAN,
    D4RL_REF_SCORES,
    EvalResult,
    RefScores,
    aggregate_scores,
    atari_ref_scores,
    d4rl_normalized_score,
    d4rl_ref_scores,
    human_normalized_score,
    minari_ref_scores,
    ref_scores_for,
    score_matrix,
)
from seqrl.errors import DataError, UsageError

FIXTURES = Path(__file__).parent / "fixtures"

# shared/reference/README.md: aggregates of the per-game means (mean HNS, median HNS, games >= 1)
PUBLISHED = {
    "iris": (1.046, 0.289, 10),
    "twm": (0.956, 0.505, 8),
    "storm_repo": (1.222, 0.425, 9),
    "dreamerv3": (1.124, 0.485, 9),
    "delta_iris": (1.383, 0.594, 12),
    "diamond": (1.459, 0.373, 11),
}


def atari_rows() -> list[dict[str, str]]:
    with open(FIXTURES / "atari100k_scores.csv") as fh:
        return list(csv.DictReader(fh))


def test_atari_table_matches_reference() -> None:
    rows = atari_rows()
    assert len(rows) == 26 == len(ATARI_RANDOM_HUMAN)
    for row in rows:
        assert ATARI_RANDOM_HUMAN[row["game"]] == (float(row["random"]), float(row["human"]))


def test_d4rl_table_matches_reference() -> None:
    with open(FIXTURES / "d4rl_ref_scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["env"]: (float(r["ref_min"]), float(r["ref_max"])) for r in rows} == D4RL_REF_SCORES


@pytest.mark.parametrize(
    "name", ["Hopper-v5", "hopper-medium-v2", "mujoco/hopper/medium-v0", "hopper"]
)
def test_d4rl_normalization(name: str) -> None:
    low, high = D4RL_REF_SCORES["hopper"]
    assert d4rl_normalized_score(name, high) == pytest.approx(100.0)
    assert d4rl_normalized_score(name, low) == pytest.approx(0.0)
    assert d4rl_normalized_score(name, 1607.0) == pytest.approx(
        100 * (1607.0 + 20.272305) / (3234.3 + 20.272305)
    )
    assert d4rl_ref_scores("HalfCheetah-v5").name == "halfcheetah"  # type: ignore[union-attr]
    assert d4rl_ref_scores("Walker2d-v5").name == "walker2d"  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="no D4RL reference"):
        d4rl_normalized_score("CartPole-v1", 1.0)


@pytest.mark.parametrize("env_id", ["ALE/Pong-v5", "PongNoFrameskip-v4", "Pong"])
def test_atari_hns(env_id: str) -> None:
    assert human_normalized_score(env_id, 14.6) == pytest.approx(1.0)
    assert human_normalized_score(env_id, -20.7) == pytest.approx(0.0)
    assert human_normalized_score(env_id, 0.0) == pytest.approx(20.7 / 35.3)
    ref = ref_scores_for(env_id)
    assert ref is not None and ref.kind == "hns"
    assert atari_ref_scores("ALE/UpNDown-v5").name == "UpNDown"  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="no random/human"):
        human_normalized_score("ALE/Tetris-v5", 1.0)
    assert ref_scores_for("CartPole-v1") is None


@pytest.mark.parametrize("method", sorted(PUBLISHED))
def test_aggregates_reproduce_published_mean_and_median(method: str) -> None:
    rows = atari_rows()
    pairs = [(r["game"], human_normalized_score(r["game"], float(r[method]))) for r in rows]
    matrix, games = score_matrix(pairs)
    assert matrix.shape == (1, 26) and len(games) == 26
    agg = aggregate_scores(matrix, reps=200)
    mean, median, at_least_human = PUBLISHED[method]
    assert agg.mean.value == pytest.approx(mean, abs=5e-4)
    assert agg.median.value == pytest.approx(median, abs=5e-4)
    assert int(np.sum(matrix >= 1.0)) == at_least_human
    assert agg.optimality_gap.value == pytest.approx(1 - np.minimum(matrix, 1).mean())


def test_iqm_is_over_all_runs_not_per_game_means() -> None:
    rng = np.random.default_rng(0)
    scores = rng.gamma(1.0, 1.0, size=(5, 8)) * np.linspace(0.2, 3.0, 8)
    agg = aggregate_scores(scores, reps=500, seed=1)
    flat = np.sort(scores.ravel())
    assert agg.iqm.value == pytest.approx(flat[10:30].mean())  # 25% trimmed from each end of 40
    means = np.sort(scores.mean(axis=0))
    assert agg.iqm.value != pytest.approx(means[2:6].mean())
    for iv in (agg.mean, agg.median, agg.iqm, agg.optimality_gap):
        assert iv.low <= iv.value <= iv.high and iv.low < iv.high  # stratified bootstrap CIs
    again = aggregate_scores(scores, reps=500, seed=1)
    assert again == agg  # seeded bootstrap
    assert set(agg.to_dict()) == {"runs", "games", "mean", "median", "iqm", "optimality_gap"}


def test_score_matrix_and_bad_input() -> None:
    matrix, games = score_matrix([("Pong", 0.1), ("Alien", 0.5), ("Pong", 0.3), ("Alien", 0.7)])
    assert games == ["Alien", "Pong"]
    np.testing.assert_array_equal(matrix, [[0.5, 0.1], [0.7, 0.3]])
    with pytest.raises(UsageError, match="same number of runs"):
        score_matrix([("Pong", 0.1), ("Alien", 0.5), ("Pong", 0.3)])
    with pytest.raises(UsageError, match="NaN"):
        aggregate_scores(np.array([[np.nan, 1.0]]))
    with pytest.raises(UsageError, match="matrix"):
        aggregate_scores(np.zeros(3))


def test_eval_result_normalized() -> None:
    ref = atari_ref_scores("Pong")
    result = EvalResult(
        "ALE/Pong-v5",
        0,
        np.array([14.6, -20.7]),
        np.array([10, 20]),
        np.array([1.0, 1.0]),
        30.0,
        ref,
    )
    np.testing.assert_allclose(result.normalized, [1.0, 0.0])  # type: ignore[arg-type]
    assert result.normalized_mean == pytest.approx(0.5)
    d = result.to_dict()
    assert d["normalization"]["kind"] == "hns" and d["normalized_mean"] == pytest.approx(0.5)
    assert "HNS" in result.table()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_minari_ref_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import minari
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("CartPole-v1")
    buffers = []
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        observations, rewards, actions, done = [obs], [], [], False
        while not done:
            obs, rew, term, trunc, _ = env.step(0)
            observations.append(obs), rewards.append(rew), actions.append(0)
            done = term or trunc
        n = len(actions)
        buffers.append(
            EpisodeBuffer(
                id=seed,
                observations=np.array(observations),
                actions=np.array(actions),
                rewards=np.array(rewards),
                terminations=np.array([False] * (n - 1) + [True]),
                truncations=np.zeros(n, dtype=bool),
                infos={},
            )
        )
    minari.create_dataset_from_buffers(
        "seqrltest/cartpole/tiny-v0",
        buffers,
        env=env,
        ref_min_score=10.0,
        ref_max_score=110.0,
        algorithm_name="random",
    )
    ref = minari_ref_scores("seqrltest/cartpole/tiny-v0")
    assert ref == RefScores(10.0, 110.0, 100.0, "minari", "seqrltest/cartpole/tiny-v0")
    assert ref.normalize(60.0) == pytest.approx(50.0)
    with pytest.raises(DataError, match="not available locally"):
        minari_ref_scores("seqrltest/nothing/here-v0")
    # seqrl eval --dataset: the CLI normalizes with them; an id without -vN is its latest version
    from seqrl.cli import main

    argv = ["eval", "random", "--env", "CartPole-v1", "--episodes", "2", "--quiet"]
    out = tmp_path / "eval.json"
    assert main([*argv, "--dataset", "seqrltest/cartpole/tiny", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["normalization"]["name"] == "seqrltest/cartpole/tiny-v0"
    assert result["normalized"] == pytest.approx([(r - 10.0) for r in result["returns"]])
