"""The command line, called in-process through main(argv)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from seqrl.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "demo", "eval", "rollout", "collect", "datasets"):
        assert command in out


def test_subcommand_help_lists_options_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "dt", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--model.backbone.depth INT" in out and "(default: 3)" in out
    assert "dt-paper-gym" in out  # presets are listed
    assert "(default: 3) (default: 3)" not in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nope"], "invalid choice"),
        (
            ["train", "dt", "--model.backbone.depth", "x"],
            "--model.backbone.depth: expected an integer, got 'x'",
        ),
        (["train", "dt", "--model.nope", "1"], "unrecognized arguments: --model.nope"),
        (["train", "dt", "--preset", "nope"], "invalid choice: 'nope'"),
        (
            ["train", "dt", "--dataset", "d", "--eval.targets", "high"],
            "--eval.targets: expected a number, got 'high'",
        ),
        (
            ["train", "dt"],
            "--dataset: a Minari id, D4RL HDF5 file or seqrl dataset folder is required",
        ),
        (["train", "dt", "--resume"], "--resume needs --run-dir"),
        (["train", "dt", "--resume", "--run-dir", "RUNDIR"], "--resume: RUNDIR has no checkpoint"),
    ],
)
def test_usage_errors_exit_2(argv, needle, capsys, tmp_path: Path) -> None:
    argv = [a.replace("RUNDIR", str(tmp_path / "r")) for a in argv]
    needle = needle.replace("RUNDIR", str(tmp_path / "r"))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["train", "dt", "--dataset", "MISSING", "--env", "Hopper-v5"], 1, "no such file"),
        (
            ["train", "twm", "--preset", "twm-cartpole", "--env", "Nope-v0"],
            2,
            "unknown environment id 'Nope-v0'",
        ),
    ],
)
def test_a_run_that_fails_before_writing_leaves_no_folder(
    argv, code, needle, capsys, tmp_path: Path
) -> None:
    """A missing dataset or env id fails after the run folder was made: the folder goes too."""
    runs = tmp_path / "runs"
    argv = [a.replace("MISSING", str(tmp_path / "missing")) for a in argv]
    assert main([*argv, "--runs", str(runs)]) == code
    assert needle in capsys.readouterr().err
    assert runs.is_dir() and not list(runs.iterdir())


def test_python_dash_m_and_console_script() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seqrl", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("seqrl ")


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path: Path) -> None:
    # `seqrl datasets list | head -1` where head has already gone: the read end is closed
    # before seqrl writes, so its output meets a broken pipe; it must exit as SIGPIPE would
    # (141), without a traceback or an "Exception ignored" from the interpreter's last flush
    read, write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "seqrl", "datasets", "list"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MINARI_DATASETS_PATH": str(tmp_path)},
    )
    os.close(write)
    os.close(read)
    _, err = process.communicate(timeout=120)
    assert err == ""
    assert process.returncode == 141
