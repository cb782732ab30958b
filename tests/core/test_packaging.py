"""The packaging rule: every folder with an __init__.py ships, and imports are absolute."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ["core", "backbone", "data", "envs", "agents", "world_models"]


def _load_setup():
    spec = importlib.util.spec_from_file_location("seqrl_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _folders_with_init() -> set[str]:
    found = set()
    for part in PARTS:
        for root, dirs, files in os.walk(ROOT / part):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            if "__init__.py" in files:
                found.add(Path(root).relative_to(ROOT).as_posix())
    return found


def test_computed_package_list_covers_every_folder() -> None:
    setup = _load_setup()
    assert set(setup.PACKAGE_DIR.values()) == _folders_with_init()
    assert setup.PACKAGE_DIR["seqrl"] == "core"
    for package in setup.PACKAGES:
        importlib.import_module(package)


def test_no_root_folder_carries_the_import_name() -> None:
    assert not (ROOT / "seqrl").exists()


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports are banned too
                names.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module:
                names.append((node.lineno, node.module))
    return names


def test_imports_are_absolute_through_seqrl() -> None:
    bare = set(PARTS) | {"tests"}
    offenders = []
    for folder in [*PARTS, "tests", "benchmarks"]:
        for path in (ROOT / folder).rglob("*.py"):
            for lineno, name in _imported_modules(path):
                head = name.split(".")[0]
                if name.startswith(".") or head in bare:
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {name}")
    assert offenders == []


def test_wheel_ships_every_package(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(result.stderr[-2000:])
    (wheel,) = tmp_path.glob("seqrl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    setup = _load_setup()
    for package in setup.PACKAGES:
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert "seqrl/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)  # the license text ships
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "License-Expression: MIT" in zipfile.ZipFile(wheel).read(metadata).decode()
