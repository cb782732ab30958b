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
