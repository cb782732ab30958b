"""The command line, called in-process through main(argv)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from seqrl.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "demo" in out


def test_subcommand_help_lists_options_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--episodes INT" in out and "(default: 10)" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nope"], "invalid choice"),
        (["demo", "--episodes", "x"], "--episodes: expected an integer, got 'x'"),
        (["demo", "--nope", "1"], "unrecognized arguments: --nope"),
        (["demo", "--run-dir", "RUNDIR", "--episodes", "1"], None),
    ],
)
def test_usage_errors_exit_2(argv, needle, capsys, tmp_path: Path) -> None:
    argv = [a.replace("RUNDIR", str(tmp_path / "r")) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    if needle is None:
        assert code == 0
        return
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


def test_resume_without_checkpoint_is_a_usage_error(capsys, tmp_path: Path) -> None:
    from seqrl.run import RunDir

    with pytest.raises(Exception, match="--resume"):
        RunDir.create(name="x", root=tmp_path, resume=True)


def test_demo_writes_run_directory(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--runs", str(tmp_path), "--episodes", "2", "--quiet"]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "config.json").read_text())["episodes"] == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert list(run.glob("events.out.tfevents.*"))
    assert str(run) in capsys.readouterr().out


def test_python_dash_m_and_console_script() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seqrl", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("seqrl ")
