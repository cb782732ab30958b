"""The documentation's commands are commands the CLI accepts: every ``seqrl ...`` line of a
shell block in README.md and docs/*.md parses with seqrl's own parser (flags, choices, config
keys), so a renamed flag or key cannot leave the docs behind."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from seqrl.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(page, command line) for every line starting ``seqrl `` in a bash/sh block."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip().startswith("seqrl "):
                    found.append((page.name, line.strip()))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands() -> None:
    pages = {page for page, _ in COMMANDS}
    assert len(COMMANDS) >= 30 and {"README.md", "dt.md", "world_models.md"} <= pages


@pytest.mark.parametrize(
    ("page", "line"), COMMANDS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(COMMANDS)]
)
def test_documented_command_parses(page: str, line: str) -> None:
    # shell variables of the docs' loops ($seed, $game) stand for values: any word will do
    argv = shlex.split(re.sub(r"\$\{?(\w+)\}?", "0", line), comments=True)[1:]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        assert not exc.code, f"{page}: `{line}`: {err.getvalue().strip().splitlines()[-1]}"
