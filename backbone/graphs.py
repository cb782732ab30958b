"""Recording a decoding step once as a CUDA graph and replaying it.

Decoding one token at a time at a small batch is bound by kernel launches, not arithmetic: each
pass through a 10-layer GPT is a few hundred small kernels, launched one by one from Python. A
CUDA graph (``torch.cuda.CUDAGraph``) records such a pass, or a loop of them, once and replays it
with one launch. It replays the same kernels on the same memory, so what it computes must have
fixed shapes and read nothing back to the host: :meth:`seqrl.backbone.Transformer.decode_static`
over a :class:`seqrl.backbone.StaticKVCache` is written that way. Inputs are copied into the
tensors the recorded function reads; its outputs are overwritten by each replay.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch


class GraphedCall:
    """``fn()`` recorded as a CUDA graph on its first call and replayed on the later ones
    (on a ``device`` other than CUDA: called as is).

    ``fn`` takes no arguments: it reads input tensors it closes over (fill them before each call)
    and returns a tuple of tensors, the same tensors on every replay (copy what must outlive the
    next call). ``restore`` undoes the side effects of one call of ``fn`` (e.g. a cache's length):
    it runs after each warm-up call, which CUDA graphs need before recording.

    Autocast active at the first call is recorded into the graph (with its weight cache off, since
    cached casts would not survive the recording); a graph replays what it recorded whatever the
    autocast state of later calls, so key your graphs by it.
    """

    def __init__(
        self,
        fn: Callable[[], tuple[torch.Tensor, ...]],
        restore: Callable[[], None],
        *,
        device: torch.device,
        warmup: int = 2,
    ) -> None:
        self.fn, self.restore, self.warmup = fn, restore, warmup
        self.cuda = device.type == "cuda"
        self.graph: Any = None  # the torch.cuda.CUDAGraph once recorded
        self.outputs: tuple[torch.Tensor, ...] = ()

    def __call__(self) -> tuple[torch.Tensor, ...]:
        """Run the step: replay the graph (recording it first), or call ``fn`` off CUDA."""
        if not self.cuda:
            return self.fn()
        if self.graph is None:
            self._record()
        self.graph.replay()
        return self.outputs

    def _record(self) -> None:
        autocast: Any = nullcontext()
        if torch.is_autocast_enabled("cuda"):
            dtype = torch.get_autocast_dtype("cuda")
            autocast = torch.autocast("cuda", dtype=dtype, cache_enabled=False)
        # the warm-up calls must not advance the RNG: the first replay then draws what every
        # later replay from the same generator state draws
        rng = torch.cuda.get_rng_state()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), autocast:
            for _ in range(self.warmup):
                self.fn()
                self.restore()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), autocast:
            self.outputs = self.fn()
        torch.cuda.set_rng_state(rng)
        self.graph = graph


__all__ = ["GraphedCall"]
