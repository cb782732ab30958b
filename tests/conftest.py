"""Shared test settings: small thread counts and no accidental network or home-folder writes."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Datasets and caches go to a temporary folder, never to the user's home."""
    root = tmp_path_factory.getbasetemp() / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
