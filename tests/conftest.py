"""Shared test settings: small thread counts and no accidental network or home-folder writes."""

from __future__ import annotations

import os

# before torch starts OpenMP (see seqrl/__init__)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Datasets and caches go to a temporary folder, never to the user's home."""
    root = tmp_path_factory.getbasetemp() / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
