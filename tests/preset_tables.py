"""Reading the cited preset tables of ``docs/*.md`` for the tests that check presets against them.

A table row is ``| key | value(s) ... | source |``; keys are dotted config paths.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def table_rows(doc: str, header_start: str) -> list[list[str]]:
    """Cells of the rows of the table in ``docs/<doc>`` whose header line starts with
    ``header_start`` (up to the next table or the first row of another width)."""
    lines = [ln for ln in (DOCS / doc).read_text().splitlines() if ln.startswith("| ")]
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header_start))
    width = len(split(lines[start]))
    rows = []
    for ln in lines[start + 1 :]:
        cells = split(ln)
        if cells[0] == "key" or len(cells) != width:
            break
        if not cells[0].startswith("---"):
            rows.append(cells)
    return rows


def split(line: str) -> list[str]:
    """The stripped cells of one markdown table line."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def get_key(cfg: object, key: str) -> object:
    """The value of a dotted config path."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def same(value: object, text: str) -> bool:
    """Whether a config value equals the table's text (tuples as comma lists, numbers as floats)."""
    if isinstance(value, tuple):
        return [float(v) for v in value] == [float(t) for t in text.split(",")]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) == float(text)
    return str(value) == text


def check_preset(cfg: object, rows: list[list[str]], column: int = 1) -> None:
    """Every row's value (in ``column``; ``-`` skips) equals the preset's and has a source."""
    for row in rows:
        if row[column] == "-":
            continue
        assert row[-1], f"{row[0]} has no source"
        value = get_key(cfg, row[0])
        assert same(value, row[column]), f"{row[0]} = {value!r}, table says {row[column]}"
