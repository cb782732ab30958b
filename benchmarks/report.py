"""Write one benchmark's section into ``docs/benchmarks.md``.

Each benchmark owns one section, delimited by HTML comments, so several benchmarks can update the
same page without touching each other's tables. Needs only the standard library.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEvery table below is written by a script in `benchmarks/`; the command above each table reproduces it.\n"


def cpu_model() -> str:
    """The CPU's model name and whether it has AMX (bfloat16 matmul units), from /proc/cpuinfo;
    the machine name where that file is missing."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    names = re.findall(r"^model name\s*:\s*(.+)$", info, re.M)
    name = names[0].strip() if names else platform.machine()
    return f"{name} ({'with' if ' amx_tile' in info else 'no'} AMX)"


def machine_line() -> str:
    """A one-line description of the machine and its load, for the table's caption."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )


def write_section(name: str, markdown: str, doc: Path = DOC) -> Path:
    """Replace (or append) the section ``name`` of ``doc`` with ``markdown``; returns the path."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, doc)
    return doc
