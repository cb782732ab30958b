"""Backbone tests run their tiny tensors on one thread: on a loaded 2-core machine OpenMP's
spinning threads make each small op cost milliseconds (see DESIGN.md, "How to measure")."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every device this machine has: the CPU always, CUDA where a GPU is present (the same
    tests then check the CUDA paths: SDPA's GPU kernels, index tensors on the device)."""
    return torch.device(request.param)
