"""Map the root folders into the one import package ``seqrl``.

All metadata lives in ``pyproject.toml``. The package list is computed from the folders, so a new
subpackage (any folder with an ``__init__.py``) can never be silently left out of a wheel.
"""

from __future__ import annotations

import os

from setuptools import setup

# Root folder -> import name. ``core/`` is the top-level package itself.
PARTS = {
    "seqrl": "core",
    "seqrl.backbone": "backbone",
    "seqrl.data": "data",
    "seqrl.envs": "envs",
    "seqrl.agents": "agents",
    "seqrl.world_models": "world_models",
}


def find_packages_in_parts(parts: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Every folder with an ``__init__.py`` under each part, as (packages, package_dir)."""
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for name, folder in parts.items():
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            if "__init__.py" not in files:
                continue
            rel = os.path.relpath(root, folder)
            package = name if rel == "." else name + "." + rel.replace(os.sep, ".")
            packages.append(package)
            package_dir[package] = root.replace(os.sep, "/")
    return packages, package_dir


PACKAGES, PACKAGE_DIR = find_packages_in_parts(PARTS)

if __name__ == "__main__":
    setup(packages=PACKAGES, package_dir=PACKAGE_DIR, package_data={"seqrl": ["py.typed"]})
