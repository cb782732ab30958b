"""The one training step, seeding and device selection, shared by every trainable component.

No model owns an optimizer or a loop: each exposes ``loss(batch) -> LossOutput`` and
:func:`update` does the rest.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from seqrl.errors import SeqrlError, UsageError
from seqrl.types import LossOutput


def update(
    loss_fn: Callable[[Any], LossOutput],
    batch: Any,
    optimizer: torch.optim.Optimizer,
    *,
    clip_norm: float | None = None,
    scheduler: Any = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One optimisation step: zero_grad, forward (optionally autocast), backward, clip, step.

    Args:
        loss_fn: e.g. ``model.loss``; called as ``loss_fn(batch)``.
        batch: passed through to ``loss_fn``.
        optimizer: steps over the parameters it holds (they are also the ones clipped).
        clip_norm: max global gradient norm, or None for no clipping.
        scheduler: stepped after the optimizer when given.
        amp_dtype: ``torch.bfloat16`` (CPU or GPU) / ``torch.float16`` (GPU) to autocast the
            forward pass.
        scaler: a GradScaler for float16.

    Returns:
        ``{"loss": ..., **loss metrics, "grad_norm": ..., "lr": ...}`` as floats.

    Raises:
        SeqrlError: the loss is NaN or infinite (the step is not applied).
    """
    optimizer.zero_grad(set_to_none=True)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    device_type = params[0].device.type if params else "cpu"
    with torch.autocast(
        device_type=device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
    ):
        out = loss_fn(batch)
    total = out.total
    if not torch.isfinite(total.detach()):
        raise SeqrlError(
            f"non-finite loss ({total.item()}); lower the learning rate or check the data"
        )
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
    else:
        total.backward()
    if clip_norm is not None:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip_norm))
    else:
        grads = [p.grad.detach().norm() for p in params if p.grad is not None]
        grad_norm = float(torch.stack(grads).norm()) if grads else 0.0
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    metrics = {"loss": float(total.detach()), **{k: float(v) for k, v in out.metrics.items()}}
    metrics["grad_norm"] = grad_norm if math.isfinite(grad_norm) else float("nan")
    metrics["lr"] = float(optimizer.param_groups[0]["lr"])
    return metrics


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch; returns a fresh numpy Generator for samplers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device: '{name}' requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device: unknown device '{name}'") from None
