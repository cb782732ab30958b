"""``seqrl eval`` and ``seqrl rollout`` in-process through ``seqrl.cli.main``, and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import scipy.stats
import torch
from seqrl.checkpoint import save_checkpoint
from seqrl.cli import main
from seqrl.envs.factory import headless_mujoco_gl


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_random_cartpole_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "res" / "results.json"
    argv = [
        "eval",
        "random",
        "--env",
        "CartPole-v1",
        "--episodes",
        "5",
        "--seed",
        "3",
        "--num-envs",
        "2",
        "--quiet",
    ]
    code, out, _ = run(argv + ["--out", str(out_file)], capsys)
    assert code == 0
    assert "return" in out and "episodes  5" in out
    data = json.loads(out_file.read_text())
    assert data["episodes"] == 5 and len(data["returns"]) == 5 and data["policy"] == "random"
    assert data["returns"] == data["lengths"]  # CartPole: +1 per step
    code, _, _ = run(argv + ["--out", str(out_file)], capsys)
    assert json.loads(out_file.read_text())["returns"] == data["returns"]  # seeded


def test_eval_atari_prints_hns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "pong.json"
    argv = [
        "eval",
        "random",
        "--env",
        "ALE/Pong-v5",
        "--episodes",
        "1",
        "--atari-preset",
        "iris",
        "--quiet",
    ]
    # a full random Pong game is long; the preset's 108k cap is not what this test is about
    code, out, err = run(argv + ["--out", str(out_file)], capsys)
    assert code == 0, err
    data = json.loads(out_file.read_text())
    assert data["normalization"]["kind"] == "hns" and data["atari_preset"] == "iris"
    assert "HNS" in out


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_rollout_video(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / f"out{suffix}"
    code, out, err = run(
        [
            "rollout",
            "random",
            "--env",
            "CartPole-v1",
            "--episodes",
            "2",
            "--video",
            str(video),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    lengths = [int(line.split()[3]) for line in out.splitlines()[1:3]]
    if suffix == ".mp4":
        reader = imageio.get_reader(video)
        assert reader.count_frames() == sum(lengths) + 2  # each episode: first frame + one per step
        assert reader.get_data(0).shape == (400, 600, 3)
        reader.close()
    else:  # Pillow merges identical consecutive GIF frames
        frames = imageio.mimread(video, memtest=False)
        assert 2 <= len(frames) <= sum(lengths) + 2 and frames[0].shape[:2] == (400, 600)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left


def _headless_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DISPLAY_VARIABLES}
    return {**env, **extra}


_DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")


def test_rollout_records_mujoco_without_a_display(tmp_path: Path) -> None:
    # no display and no MUJOCO_GL: gymnasium's own fallback (GLFW first) fails here; seqrl
    # chooses EGL. A subprocess, so no earlier test has bound PyOpenGL to a platform.
    video = tmp_path / "hopper.gif"
    argv = ["rollout", "random", "--env", "Hopper-v5", "--episodes", "1", "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "seqrl", *argv, "--video", str(video)],
        capture_output=True,
        text=True,
        env=_headless_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    frames = imageio.mimread(video, memtest=False)
    assert len(frames) >= 2 and frames[0].shape[:2] == (480, 480)
    # a MUJOCO_GL whose library is missing: one line naming the variable, not a traceback
    done = subprocess.run(
        [sys.executable, "-m", "seqrl", *argv, "--video", str(tmp_path / "x.gif")],
        capture_output=True,
        text=True,
        env=_headless_env(MUJOCO_GL="osmesa"),
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("seqrl: error: cannot import mujoco with MUJOCO_GL=osmesa")
    assert "Traceback" not in done.stderr and not (tmp_path / "x.gif").exists()


@pytest.mark.parametrize(
    ("given", "chosen"),
    [({}, "egl"), ({"DISPLAY": ":0"}, None), ({"MUJOCO_GL": "glfw"}, "glfw")],
)
def test_headless_rendering_choice_respects_a_display_and_the_users_choice(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], chosen: str | None
) -> None:
    for name in _DISPLAY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    headless_mujoco_gl()
    assert os.environ.get("MUJOCO_GL") == chosen


def test_rollout_atari_gif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "breakout.gif"
    argv = [
        "rollout",
        "random",
        "--env",
        "ALE/Breakout-v5",
        "--episodes",
        "1",
        "--video",
        str(video),
        "--quiet",
    ]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    frame = imageio.mimread(video, memtest=False)[0]
    assert frame.shape[:2] == (210, 160)


def bad_inputs(tmp_path: Path) -> list[tuple[list[str], int, str]]:
    not_seqrl = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, not_seqrl)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    unknown_algo = save_checkpoint(tmp_path / "other.pt", algo="nope", config={}, step=0, state={})
    mismatched = save_checkpoint(
        tmp_path / "mismatch.pt",
        algo="nope",
        config={},
        step=0,
        state={},
        extra={
            "observation_space": {"type": "Box", "shape": [17], "dtype": "float32"},
            "action_space": {"type": "Box", "shape": [6], "dtype": "float32"},
        },
    )
    base = ["--env", "CartPole-v1", "--episodes", "1", "--quiet"]
    return [
        (
            ["eval", "random", "--env", "NoSuchEnv-v0", "--episodes", "1"],
            2,
            "unknown environment id 'NoSuchEnv-v0'",
        ),
        (
            ["eval", "random", "--env", "ALE/NoSuchGame-v5", "--episodes", "1"],
            2,
            "unknown environment id",
        ),
        (
            ["eval", "random", "--env", "CartPole-v1", "--episodes", "0"],
            2,
            "--episodes must be >= 1",
        ),
        (
            ["rollout", "random", "--env", "CartPole-v1", "--episodes", "-3"],
            2,
            "--episodes must be >= 1",
        ),
        (["eval", "random", *base, "--num-envs", "0"], 2, "--num-envs must be >= 1"),
        (["eval", "random", *base, "--device", "nope"], 2, "--device: unknown device 'nope'"),
        (["eval", str(not_seqrl), *base], 1, "not a seqrl checkpoint"),
        (["eval", str(text), *base], 1, "not a seqrl checkpoint"),
        (["eval", str(tmp_path / "missing.pt"), *base], 2, "not 'random', 'sb3:PATH'"),
        (["eval", str(unknown_algo), *base], 1, "no agent for checkpoints of algorithm 'nope'"),
        (
            ["eval", str(mismatched), *base],
            2,
            "observation space Box(17,), but CartPole-v1 has Box(4,)",
        ),
        (["eval", "sb3:", *base], 2, "needs a model path"),
        (["eval", f"sb3:{text}", *base], 1, "not a Stable-Baselines3 model file"),
        (
            ["rollout", "random", *base, "--video", str(text / "out.mp4")],
            2,
            "cannot create a file under",
        ),
        (
            ["rollout", "random", *base, "--video", str(tmp_path / "out.avi")],
            2,
            "use a .mp4 or .gif",
        ),
        (["rollout", "random", *base, "--video", str(tmp_path)], 2, "use a .mp4 or .gif"),
        (["eval", "random", *base, "--out", str(text / "r.json")], 2, "cannot create a file under"),
        (
            ["eval", "random", *base, "--dataset", "seqrltest/none/here-v0"],
            1,
            "not available locally",
        ),
        (
            ["eval", "random", *base, "--dataset", "seqrltest/none/here"],
            1,
            "'seqrltest/none/here' has no version and no 'seqrltest/none/here-vN'",
        ),
    ]


def test_every_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, code, message in bad_inputs(tmp_path):
        got, out, err = run(argv, capsys)
        assert got == code, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("seqrl: error: "), (argv, err)
        assert message in lines[0], (argv, lines[0])


def test_aggregate_gives_rliables_metrics_of_eval_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    for env in ("Hopper-v5", "Walker2d-v5"):
        for seed in (0, 1):
            out = tmp_path / f"{env}-{seed}.json"
            argv = ["eval", "random", "--env", env, "--episodes", "1", "--seed", str(seed)]
            assert main([*argv, "--quiet", "--out", str(out)]) == 0
            files.append(out)
    capsys.readouterr()
    agg_file = tmp_path / "agg.json"
    assert main(["aggregate", *map(str, files), "--reps", "200", "--out", str(agg_file)]) == 0
    assert "2 run(s) x 2 game(s), D4RL-normalized scores" in capsys.readouterr().out
    agg = json.loads(agg_file.read_text())
    scores = {f.stem: json.loads(f.read_text())["normalized_mean"] for f in files}
    hopper = [scores["Hopper-v5-0"], scores["Hopper-v5-1"]]
    walker = [scores["Walker2d-v5-0"], scores["Walker2d-v5-1"]]
    flat = np.array(hopper + walker)
    assert agg["per_game"] == pytest.approx(
        {"Hopper-v5": np.mean(hopper), "Walker2d-v5": np.mean(walker)}
    )
    assert agg["mean"]["value"] == pytest.approx((np.mean(hopper) + np.mean(walker)) / 2)
    assert agg["iqm"]["value"] == pytest.approx(scipy.stats.trim_mean(flat, 0.25))
    # D4RL scores run 0-100, so the optimality gap counts shortfalls below 100, not 1
    assert agg["optimality_gap"]["value"] == pytest.approx(np.mean(np.maximum(100 - flat, 0)))
    assert agg["iqm"]["low"] <= agg["iqm"]["value"] <= agg["iqm"]["high"]

    # bad input: one line each, exit 2
    (tmp_path / "cartpole.json").write_text(json.dumps({"env_id": "CartPole-v1", "returns": [9]}))
    hns = json.loads(files[0].read_text())
    hns["normalization"] = {"kind": "hns", "scale": 1.0}
    (tmp_path / "hns.json").write_text(json.dumps(hns))
    (tmp_path / "junk.json").write_text("{")
    for argv, needle in (
        ([str(tmp_path / "cartpole.json")], "CartPole-v1 has no normalized score"),
        ([str(files[0]), str(tmp_path / "hns.json")], "the files mix normalizations"),
        ([str(files[0]), str(files[1]), str(files[2])], "every game needs the same number of runs"),
        ([str(tmp_path / "junk.json")], "junk.json: not a seqrl eval JSON file"),
        ([str(tmp_path / "missing.json")], "missing.json: no such file"),
    ):
        assert main(["aggregate", *argv]) == 2
        assert needle in capsys.readouterr().err
