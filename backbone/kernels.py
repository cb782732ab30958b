"""Attention kernels that also return the softmax log-normaliser (log-sum-exp) of every row.

Dilated attention mixes several attention calls by their softmax denominators, so it needs each
call's log-sum-exp in the forward pass, and in the backward pass it needs a kernel that takes the
*combined* output and log-sum-exp (the standard flash-attention backward does exactly that). On the
CPU both come from PyTorch's fused flash kernel (``aten._scaled_dot_product_flash_attention_for_cpu``
and its backward). On CUDA they come from the memory-efficient kernel
(``aten._scaled_dot_product_efficient_attention`` and its backward) for float32, float16 and
bfloat16 calls without a mask, the calls of the training forward (tested on CUDA in float32
against the float64 reference). Elsewhere (float64, masked calls, a missing operator) a plain
matmul implementation of the same two functions is used.

Shapes: ``q`` (N, H, Lq, D), ``k`` and ``v`` (N, H, Lk, D), ``out`` (N, H, Lq, D), ``lse`` (N, H, Lq).
``mask`` is None or an additive float mask broadcastable to (N, H, Lq, Lk) (0 keeps, -inf drops);
``causal`` aligns query i with key i (top left), as ``scaled_dot_product_attention`` does.
"""

from __future__ import annotations

import torch
from torch import Tensor

_aten = torch.ops.aten
_HAS_CPU_FLASH = hasattr(_aten, "_scaled_dot_product_flash_attention_for_cpu") and hasattr(
    _aten, "_scaled_dot_product_flash_attention_for_cpu_backward"
)


_HAS_CUDA_EFFICIENT = hasattr(_aten, "_scaled_dot_product_efficient_attention") and hasattr(
    _aten, "_scaled_dot_product_efficient_attention_backward"
)
_LSE_ROWS = 32  # the CUDA kernel's log-sum-exp has its query rows padded to a multiple of 32


def _use_cpu_flash(q: Tensor) -> bool:
    return _HAS_CPU_FLASH and q.device.type == "cpu"


def _use_cuda_efficient(q: Tensor, mask: Tensor | None) -> bool:
    return (
        _HAS_CUDA_EFFICIENT
        and q.device.type == "cuda"
        and mask is None
        and q.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and q.shape[-1] % (16 // q.element_size()) == 0  # 16-byte aligned rows
    )


def _seed_offset() -> tuple[Tensor, Tensor]:
    """The random seed and offset the CUDA backward takes: unused without dropout, and then on
    the CPU, as the forward returns them."""
    zero = torch.zeros((), dtype=torch.long)
    return zero, zero


def _scores(q: Tensor, k: Tensor, causal: bool, mask: Tensor | None, scale: float) -> Tensor:
    s = torch.matmul(q, k.transpose(-2, -1)) * scale
    if mask is not None:
        s = s + mask
    if causal:
        lq, lk = s.shape[-2:]
        future = torch.ones(lq, lk, dtype=torch.bool, device=s.device).triu(1)
        s = s.masked_fill(future, float("-inf"))
    return s


def attention_forward(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool, mask: Tensor | None, scale: float
) -> tuple[Tensor, Tensor]:
    """Softmax attention returning ``(out, lse)``; no autograd graph is recorded."""
    if _use_cpu_flash(q):
        out, lse = _aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, causal, attn_mask=mask, scale=scale
        )
        return out, lse
    if _use_cuda_efficient(q, mask):
        out, lse, _, _ = _aten._scaled_dot_product_efficient_attention(
            q.contiguous(), k.contiguous(), v.contiguous(), None, True, 0.0, causal, scale=scale
        )
        return out.contiguous(), lse[..., : q.shape[-2]]  # out comes back (N, L, H, D)-strided
    s = _scores(q, k, causal, mask, scale)
    lse = torch.logsumexp(s, dim=-1)
    return torch.matmul(torch.exp(s - lse.unsqueeze(-1)), v), lse


def attention_backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    *,
    causal: bool,
    mask: Tensor | None,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients ``(dq, dk, dv)`` of softmax attention given ``out`` and ``lse`` of the rows.

    ``out`` and ``lse`` may belong to a larger softmax (the union of several calls): then the
    probabilities are ``exp(s - lse)`` and the result is this call's share of that softmax's
    gradient, which is how dilated attention's branches get exact gradients.
    """
    if _use_cpu_flash(q):
        dq, dk, dv = _aten._scaled_dot_product_flash_attention_for_cpu_backward(
            dout.contiguous(), q, k, v, out, lse, 0.0, causal, attn_mask=mask, scale=scale
        )
        return dq, dk, dv
    if _use_cuda_efficient(q, mask):
        lq = q.shape[-2]
        rows = -(-lq // _LSE_ROWS) * _LSE_ROWS
        lse = torch.nn.functional.pad(lse.float(), (0, rows - lq)).contiguous()
        seed, offset = _seed_offset()
        dq, dk, dv, _ = _aten._scaled_dot_product_efficient_attention_backward(
            dout.contiguous(),
            q.contiguous(),
            k.contiguous(),
            v.contiguous(),
            None,
            out.contiguous(),
            lse,
            seed,
            offset,
            0.0,
            [True, True, True, False],
            causal,
            scale=scale,
        )
        return dq.contiguous(), dk.contiguous(), dv.contiguous()  # they come back strided
    p = torch.exp(_scores(q, k, causal, mask, scale) - lse.unsqueeze(-1))
    dv = torch.matmul(p.transpose(-2, -1), dout)
    dp = torch.matmul(dout, v.transpose(-2, -1))
    ds = p * (dp - (dout * out).sum(-1, keepdim=True))
    dq = torch.matmul(ds, k) * scale
    dk = torch.matmul(ds.transpose(-2, -1), q) * scale
    return dq, dk, dv
