"""Dilated attention (LongNet: Ding et al. 2023, "LongNet: Scaling Transformers to 1,000,000,000
Tokens", arXiv 2307.02486), exact in the forward and the backward pass.

For each pair (w, r) of the schedule (a *branch*) the sequence is split into segments of w tokens,
each segment keeps every r-th token (head j keeps the tokens at offset ``j mod r`` within the
segment), and causal attention runs inside each sparsified segment. The branches are mixed with
weights from their softmax denominators: with ``lse_b`` the log-sum-exp of branch b's scores for a
row, ``out = sum_b exp(lse_b - LSE) * out_b`` where ``LSE = logsumexp_b lse_b`` over the branches
that contain the row. That equals one softmax over the *multiset* union of the keys the branches
give the row (a key counted once per branch holding it).

How it is computed. Each branch gathers its sparse segments into a batch of short sequences (at
most ``ceil(w / r)`` keys each, so the cost is linear in the sequence length) and calls a fused
attention kernel that also returns each row's log-sum-exp (:mod:`seqrl.backbone.kernels`). The
outputs are merged online. The backward pass is exact because softmax attention's gradient only
needs the *combined* output and log-sum-exp of a row: every branch calls the kernel's backward with
those (its probabilities become ``exp(s - LSE)``, its share of the union softmax) and the
gradients are scattered back. (Computing the mixing weights without gradient, as one known
implementation does, makes dQ and dK wrong.) No (T, T) matrix is ever formed.

Segments are aligned to each row's start position, so a sequence gives the same outputs whether it
is run in one call, or token by token or block by block against a KV cache (``q_start`` > 0,
keys including cached ones), or after a per-row reset (``row_start``). A segment longer than the
sequence is simply a partial segment: outputs never depend on tokens after them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from seqrl.backbone import kernels
from torch import Tensor

CHUNK_ROWS = 16384
"""Gathered branches run in chunks of at most this many (segment, head, slot) rows per batch row,
whole segments and heads where they fit, fewer heads where one segment alone is larger: this
bounds the temporary memory of a call to a few times ``CHUNK_ROWS * head_dim`` per batch row."""


@dataclass
class _Chunk:
    """Some segments of one branch, gathered into a batch of short attention calls.

    ``view``: the branch is r = 1 over contiguous segments of ``m`` tokens, so no gather is needed.
    ``strided`` (= r): every segment has w = m * r tokens, so head h's slots are the strided view
    ``x[:, h].view(B, G, m, r, D)[:, :, :, h % r]``, again without a gather.
    Otherwise query slot ``(b, h, g, i)`` reads position ``q_idx[b, h, g * mq + i]`` of the queries
    and key slot ``(b, h, g, j)`` position ``k_idx[b, h, g * m + j]`` of the keys; ``*_ok`` marks
    real slots (None: all real); ``*_src`` are the same positions as rows of the flattened
    (B*H*n, D) tensors, and ``*_sel``/``*_dst`` map only the real slots to such rows.
    """

    segments: int
    mq: int
    m: int
    view: bool = False
    strided: int = 0  # r > 1 dividing w, whole segments: head h reads a strided view, no gather
    q_idx: Tensor | None = None  # (Bi, H, G*mq)
    q_ok: Tensor | None = None  # (Bi, H, G*mq) bool
    k_idx: Tensor | None = None  # (Bi, H, G*m)
    mask: Tensor | None = None  # (Bm, H, G, mq, m) additive; None: causal (queries == keys)
    q_src: Tensor | None = None  # (B*H*G*mq,) flat row of every query slot
    k_src: Tensor | None = None  # (B*H*G*m,)
    q_sel: Tensor | None = None
    q_dst: Tensor | None = None
    k_sel: Tensor | None = None
    k_dst: Tensor | None = None


@dataclass
class DilatedPlan:
    """The index plan of one dilated attention call: the chunks of every branch, r = 1 first."""

    chunks: list[_Chunk]
    batch: int
    heads: int
    n: int  # queries
    length: int  # keys


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _ceil_div_t(a: Tensor, b: int) -> Tensor:
    return -((-a) // b)


def _flat_maps(
    idx: Tensor, ok: Tensor | None, batch: int, heads: int, head_ids: Tensor, size: int
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Slot -> flat position maps over (B*H*size) rows: the source of every slot, then (sel, dst)
    for the real slots only (sel None: all slots are real, dst is the source).

    ``idx`` (Bi, Hc, slots) holds positions for the heads ``head_ids`` (Hc,) of H ``heads``.
    """
    hc, slots = idx.shape[-2:]
    base = torch.arange(batch, device=idx.device)[:, None] * heads + head_ids  # (B, Hc)
    src = (base[..., None] * size + idx).expand(batch, hc, slots)
    if ok is None:
        flat = src.reshape(-1)
        return flat, None, flat
    ok = ok.expand(batch, hc, slots)
    local = torch.arange(batch * hc, device=idx.device).view(batch, hc, 1) * slots
    sel = (local + torch.arange(slots, device=idx.device)).expand_as(src)
    return src.reshape(-1), sel[ok], src[ok]


def _finish(
    chunk: _Chunk,
    k_ok: Tensor | None,
    batch: int,
    heads: int,
    head_ids: Tensor,
    n: int,
    length: int,
) -> _Chunk:
    """Drop an all-true ``q_ok`` and compute the flat maps of the chunk's query and key slots."""
    assert chunk.q_idx is not None and chunk.k_idx is not None
    if chunk.q_ok is not None and bool(chunk.q_ok.all()):
        chunk.q_ok = None
    if k_ok is not None and bool(k_ok.all()):
        k_ok = None
    chunk.q_src, chunk.q_sel, chunk.q_dst = _flat_maps(
        chunk.q_idx, chunk.q_ok, batch, heads, head_ids, n
    )
    chunk.k_src, chunk.k_sel, chunk.k_dst = _flat_maps(
        chunk.k_idx, k_ok, batch, heads, head_ids, length
    )
    return chunk


def _split(segments: int, heads: int, slots: int, chunk_rows: int) -> list[tuple[slice, slice]]:
    """(segment slice, head slice) chunks of at most ``chunk_rows`` rows (at least one segment-head)."""
    if slots * heads <= chunk_rows:
        per = max(1, chunk_rows // (slots * heads))
        return [
            (slice(g, min(segments, g + per)), slice(0, heads)) for g in range(0, segments, per)
        ]
    hg = max(1, chunk_rows // slots)
    return [
        (slice(g, g + 1), slice(h, min(heads, h + hg)))
        for g in range(segments)
        for h in range(0, heads, hg)
    ]


def plan_dilated(
    batch: int,
    heads: int,
    n: int,
    length: int,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    *,
    q_start: int = 0,
    row_start: Tensor | None = None,
    key_padding: Tensor | None = None,
    device: torch.device | str = "cpu",
    chunk_rows: int = CHUNK_ROWS,
) -> DilatedPlan:
    """Index plan for ``n`` queries at positions ``q_start ...`` against ``length`` keys ending with them.

    ``row_start`` (B,) gives the absolute position where each row's sequence starts (segments are
    aligned to it, earlier keys are ignored); default: the first key. ``key_padding`` (B, length)
    is True for real keys; a query always sees itself.
    """
    if len(segment_lengths) != len(dilation_rates):
        raise ValueError("dilated attention: segment_lengths and dilation_rates differ in length")
    if length < n:
        raise ValueError(f"dilated attention: {length} keys for {n} queries")
    k_start = q_start + n - length
    device = torch.device(device)
    same_start = row_start is None or bool((row_start == k_start).all())
    fast = length == n and same_start and key_padding is None
    branches = sorted(zip(segment_lengths, dilation_rates, strict=True), key=lambda p: p[1])
    chunks: list[_Chunk] = []
    for w, r in branches:
        if fast:
            chunks += _plan_causal(batch, heads, n, w, r, device, chunk_rows)
        else:
            starts = (
                torch.full((1,), k_start, dtype=torch.long, device=device)
                if same_start
                else row_start.to(device=device, dtype=torch.long)  # type: ignore[union-attr]
            )
            chunks += _plan_general(
                batch, heads, n, length, q_start, starts, key_padding, w, r, device, chunk_rows
            )
    return DilatedPlan(chunks, batch, heads, n, length)


def _plan_causal(
    batch: int, heads: int, n: int, w: int, r: int, device: torch.device, chunk_rows: int
) -> list[_Chunk]:
    """Queries are the keys (no cache, one start): causal kernel calls, no masks."""
    if r == 1 and (n % w == 0 or n <= w):
        size = min(w, n)
        return [_Chunk(segments=n // size, mq=size, m=size, view=True)]
    if w % r == 0 and n % w == 0:
        return [_Chunk(segments=n // w, mq=w // r, m=w // r, strided=r)]
    m = min(_ceil_div(w, r), _ceil_div(n, r))
    segments = _ceil_div(n, w)
    offset = torch.arange(heads, device=device) % r
    within = offset[:, None, None] + r * torch.arange(m, device=device)  # (H, 1, m)
    pos = torch.arange(segments, device=device)[:, None] * w + within  # (H, G, m)
    ok = (within < w) & (pos < n)
    idx = pos.clamp(max=n - 1)
    head_ids = torch.arange(heads, device=device)
    out = []
    for gs, hs in _split(segments, heads, m, chunk_rows):
        hc = len(range(heads)[hs])
        i = idx[hs, gs].reshape(1, hc, -1)
        o = ok[hs, gs].reshape(1, hc, -1)
        # padded slots end each segment's list, so causally only padded rows see padded keys
        c = _Chunk(segments=i.shape[-1] // m, mq=m, m=m, q_idx=i, q_ok=o, k_idx=i)
        out.append(_finish(c, o, batch, heads, head_ids[hs], n, n))
    return out


def _plan_general(
    batch: int,
    heads: int,
    n: int,
    length: int,
    q_start: int,
    starts: Tensor,
    key_padding: Tensor | None,
    w: int,
    r: int,
    device: torch.device,
    chunk_rows: int,
) -> list[_Chunk]:
    """Queries are the last ``n`` of the keys, rows may start at different positions: masked calls."""
    k_start = q_start + n - length
    end = q_start + n
    if bool((starts > q_start).any()):
        raise ValueError("dilated attention: a row starts after the first query")
    m = min(_ceil_div(w, r), _ceil_div(length, r))
    mq = min(m, _ceil_div(n, r))
    rel = q_start - starts  # (Bi,)
    first, last = rel // w, (rel + n - 1) // w
    segments = int((last - first).max()) + 1
    seg = first[:, None] + torch.arange(segments, device=device)  # (Bi, G)
    seg_ok = seg <= last[:, None]
    origin = starts[:, None] + seg * w  # (Bi, G) absolute position of each segment's first token
    if bool(((origin < k_start) & seg_ok).any()):
        raise ValueError(
            f"dilated attention: keys start at {k_start} but a segment starts at "
            f"{int(origin[seg_ok].min())}; keep at least max(segment_lengths) - 1 cached tokens"
        )
    offset = (torch.arange(heads, device=device) % r)[None, :, None, None]  # (1, H, 1, 1)
    kk = torch.arange(m, device=device)
    k_rel = offset + r * kk  # (1, H, 1, m)
    k_abs = origin[:, None, :, None] + k_rel  # (Bi, H, G, m)
    k_ok = (k_rel < w) & (k_abs < end) & seg_ok[:, None, :, None]
    k_idx = (k_abs - k_start).clamp(0, length - 1)
    first_q = _ceil_div_t(q_start - origin[:, None, :, None] - offset, r).clamp(min=0)  # (Bi,H,G,1)
    qi = first_q + torch.arange(mq, device=device)  # (Bi, H, G, mq): index in the key list
    q_rel = offset + r * qi
    q_abs = origin[:, None, :, None] + q_rel
    q_ok = (q_rel < w) & (q_abs < end) & seg_ok[:, None, :, None]
    q_idx = (q_abs - q_start).clamp(0, n - 1)
    allowed = k_ok[..., None, :] & (kk <= qi[..., None])  # (Bi, H, G, mq, m)
    if key_padding is not None:
        flat = k_idx.expand(batch, -1, -1, -1).reshape(batch, -1)
        real = key_padding.to(device).gather(1, flat).view(batch, heads, segments, m)
        allowed = allowed & (real[..., None, :] | (kk == qi[..., None]))
    allowed = allowed | ~q_ok[..., None]  # padded query rows: anything finite, discarded
    mask = torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, float("-inf"))
    head_ids = torch.arange(heads, device=device)
    out = []
    for gs, hs in _split(segments, heads, m, chunk_rows):
        c = _Chunk(
            segments=len(range(segments)[gs]),
            mq=mq,
            m=m,
            q_idx=_part(q_idx, hs, gs),
            q_ok=_part(q_ok, hs, gs),
            k_idx=_part(k_idx, hs, gs),
            mask=mask[:, hs, gs],
        )
        out.append(_finish(c, _part(k_ok, hs, gs), batch, heads, head_ids[hs], n, length))
    return out


def _part(x: Tensor, heads: slice, segments: slice) -> Tensor:
    """(Bi, H, G, slots) -> (Bi, Hc, Gc * slots): the chunk's heads and segments."""
    x = x[:, heads, segments]
    return x.reshape(x.shape[0], x.shape[1], -1)


def _gather(x: Tensor, src: Tensor, segments: int, slots: int) -> Tensor:
    """(B, H, L, D) -> (B*H*G, 1, slots, D): rows ``src`` of x flattened to (B*H*L, D)."""
    d = x.shape[-1]
    return (
        x.reshape(-1, d)
        .index_select(0, src)
        .view(-1, segments, slots, d)
        .flatten(0, 1)
        .unsqueeze(1)
    )


def _inputs(chunk: _Chunk, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    b, h, n, d = q.shape
    if chunk.view:
        shape = (b * h * chunk.segments, 1, chunk.m, d)
        return q.view(shape), k.view(shape), v.view(shape)
    assert chunk.q_src is not None and chunk.k_src is not None
    return (
        _gather(q, chunk.q_src, chunk.segments, chunk.mq),
        _gather(k, chunk.k_src, chunk.segments, chunk.m),
        _gather(v, chunk.k_src, chunk.segments, chunk.m),
    )


def _mask(chunk: _Chunk, like: Tensor) -> Tensor | None:
    """The chunk's additive mask in kernel layout (B*H*G, 1, mq, m) and ``like``'s dtype."""
    if chunk.mask is None:
        return None
    _, h, g, mq, m = chunk.mask.shape
    batch = like.shape[0]
    mask = chunk.mask.to(like.dtype).expand(batch, h, g, mq, m)
    return mask.reshape(batch * h * g, 1, mq, m)


def _chunk_forward(
    chunk: _Chunk, q: Tensor, k: Tensor, v: Tensor, scale: float
) -> tuple[Tensor, Tensor]:
    """One kernel call: outputs and log-sum-exps of the chunk's query slots (B*H*G, 1, mq, ...)."""
    qc, kc, vc = _inputs(chunk, q, k, v)
    mask = _mask(chunk, q)
    return kernels.attention_forward(qc, kc, vc, causal=mask is None, mask=mask, scale=scale)


def _merge(chunk: _Chunk, o: Tensor, s: Tensor, out: Tensor, lse: Tensor) -> None:
    """Add a chunk's rows into the running (out, lse) by their softmax denominators, in place."""
    d = out.shape[-1]
    if chunk.view:
        o, s = o.view(out.shape), s.reshape(lse.shape)
        new = torch.logaddexp(lse, s)
        out.mul_(torch.exp(lse - new).unsqueeze(-1)).add_(o.mul_(torch.exp(s - new).unsqueeze(-1)))
        lse.copy_(new)
        return
    o, s = o.reshape(-1, d), s.reshape(-1)
    if chunk.q_sel is not None:
        o, s = o[chunk.q_sel], s[chunk.q_sel]
    flat_out, flat_lse, dst = out.view(-1, d), lse.view(-1), chunk.q_dst
    old = flat_lse[dst]
    new = torch.logaddexp(old, s)
    acc = flat_out[dst].mul_(torch.exp(old - new).unsqueeze(-1))
    flat_out[dst] = acc.add_(o.mul_(torch.exp(s - new).unsqueeze(-1)))
    flat_lse[dst] = new


def _strided(x: Tensor, head: int, chunk: _Chunk) -> Tensor:
    """Head ``head``'s slots of a strided chunk: (B, H, n, ...) -> (B, G, m, ...), a view."""
    r = chunk.strided
    x = x[:, head]
    return x.view(x.shape[0], chunk.segments, chunk.m, r, *x.shape[2:])[:, :, :, head % r]


def _strided_forward(
    chunk: _Chunk, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, scale: float
) -> None:
    """A strided branch, one head at a time, merged into (out, lse) in place."""
    for head in range(q.shape[1]):
        qs, ks, vs = (_strided(x, head, chunk) for x in (q, k, v))
        o, s = kernels.attention_forward(qs, ks, vs, causal=True, mask=None, scale=scale)
        out_s, lse_s = _strided(out, head, chunk), _strided(lse, head, chunk)
        new = torch.logaddexp(lse_s, s)
        out_s.mul_(torch.exp(lse_s - new).unsqueeze(-1))
        out_s.add_(o.mul_(torch.exp(s - new).unsqueeze(-1)))
        lse_s.copy_(new)


def _strided_backward(
    chunk: _Chunk,
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    grads: tuple[Tensor, Tensor, Tensor],
    scale: float,
) -> None:
    """A strided branch's share of the gradients, added into ``grads`` in place."""
    for head in range(q.shape[1]):
        qs, ks, vs, os_, dos = (_strided(x, head, chunk) for x in (q, k, v, out, dout))
        ls = _strided(lse, head, chunk).contiguous()
        parts = kernels.attention_backward(
            dos, qs, ks, vs, os_, ls, causal=True, mask=None, scale=scale
        )
        for total, part in zip(grads, parts, strict=True):
            _strided(total, head, chunk).add_(part)


def _forward(
    q: Tensor, k: Tensor, v: Tensor, plan: DilatedPlan, scale: float
) -> tuple[Tensor, Tensor]:
    # one chunk at a time, each helper's temporaries freed on return (bounds peak memory)
    b, h, n, d = q.shape
    out: Tensor | None = None
    lse: Tensor | None = None
    for chunk in plan.chunks:
        if chunk.strided:
            if out is None or lse is None:
                out = q.new_zeros(b, h, n, d)
                lse = q.new_full((b, h, n), float("-inf"))
            _strided_forward(chunk, q, k, v, out, lse, scale)
            continue
        o, s = _chunk_forward(chunk, q, k, v, scale)
        if chunk.view and out is None:  # the first, r = 1 branch covers every row: start there
            out, lse = o.view(b, h, n, d), s.reshape(b, h, n).contiguous()
            continue
        if out is None or lse is None:
            out = q.new_zeros(b, h, n, d)
            lse = q.new_full((b, h, n), float("-inf"))
        _merge(chunk, o, s, out, lse)
        del o, s
    assert out is not None and lse is not None
    return out, lse


def _chunk_backward(
    chunk: _Chunk,
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The chunk's share of dQ, dK, dV, in slot layout (B*H*G, 1, slots, D)."""
    b, h = q.shape[:2]
    qc, kc, vc = _inputs(chunk, q, k, v)
    mask = _mask(chunk, q)
    if chunk.view:
        shape = qc.shape
        oc, doc, lc = out.view(shape), dout.view(shape), lse.view(shape[:-1])
    else:
        assert chunk.q_src is not None
        oc = _gather(out, chunk.q_src, chunk.segments, chunk.mq)
        doc = _gather(dout, chunk.q_src, chunk.segments, chunk.mq)
        lc = lse.view(-1).index_select(0, chunk.q_src).view(qc.shape[:-1])
        if chunk.q_ok is not None:
            # padded slots: zero query, zero output gradient, lse 0 -> finite and no gradient
            pad = ~chunk.q_ok.expand(b, -1, -1).reshape(qc.shape[:-1])
            qc.masked_fill_(pad.unsqueeze(-1), 0.0)  # fresh gathers: safe to modify
            doc.masked_fill_(pad.unsqueeze(-1), 0.0)
            lc.masked_fill_(pad, 0.0)
    # the combined out and lse make this the branch's share of the union softmax's gradient
    return kernels.attention_backward(
        doc, qc, kc, vc, oc, lc, causal=mask is None, mask=mask, scale=scale
    )


def _backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    plan: DilatedPlan,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    b, h, n, d = q.shape
    dq: Tensor | None = None
    dk: Tensor | None = None
    dv: Tensor | None = None
    for chunk in plan.chunks:
        if chunk.strided:
            if dq is None or dk is None or dv is None:
                dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
            _strided_backward(chunk, dout, q, k, v, out, lse, (dq, dk, dv), scale)
            continue
        gq, gk, gv = _chunk_backward(chunk, dout, q, k, v, out, lse, scale)
        if chunk.view:
            gq, gk, gv = (g.view(b, h, n, d) for g in (gq, gk, gv))
            if dq is None or dk is None or dv is None:
                dq, dk, dv = gq, gk, gv
            else:
                dq.add_(gq)
                dk.add_(gk)
                dv.add_(gv)
            del gq, gk, gv
            continue
        if dq is None or dk is None or dv is None:
            dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        gq, gk, gv = gq.reshape(-1, d), gk.reshape(-1, d), gv.reshape(-1, d)
        if chunk.q_sel is not None:
            gq = gq[chunk.q_sel]
        if chunk.k_sel is not None:
            gk, gv = gk[chunk.k_sel], gv[chunk.k_sel]
        assert chunk.q_dst is not None and chunk.k_dst is not None
        dq.view(-1, d).index_add_(0, chunk.q_dst, gq)
        dk.view(-1, d).index_add_(0, chunk.k_dst, gk)
        dv.view(-1, d).index_add_(0, chunk.k_dst, gv)
        del gq, gk, gv
    assert dq is not None and dk is not None and dv is not None
    return dq, dk, dv


class _DilatedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, plan: DilatedPlan, scale: float) -> Tensor:  # type: ignore[override]
        out, lse = _forward(q, k, v, plan, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan, ctx.scale = plan, scale
        return out

    @staticmethod
    def backward(ctx, dout: Tensor):  # type: ignore[override]
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(dout.contiguous(), q, k, v, out, lse, ctx.plan, ctx.scale)
        return dq, dk, dv, None, None


def dilated_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    *,
    q_start: int = 0,
    row_start: Tensor | None = None,
    key_padding: Tensor | None = None,
    scale: float | None = None,
    plan: DilatedPlan | None = None,
) -> Tensor:
    """Causal dilated attention of ``q`` (B, H, n, D) over ``k``, ``v`` (B, H, L, D) -> (B, H, n, D).

    The keys are the ``L`` positions ending with the queries' last one (``L == n`` without a cache);
    ``q_start`` is the absolute position of the first query. ``row_start`` (B,) is where each
    row's sequence begins (default: the first key) and ``key_padding`` (B, L) is True for real
    keys. Differentiable (exact gradients) with respect to ``q``, ``k`` and ``v``. A ``plan`` from
    :func:`plan_dilated` for the same shapes and positions may be passed to skip building it.
    """
    b, h, n, d = q.shape
    if k.shape != v.shape or k.shape[:2] != (b, h) or k.shape[-1] != d:
        raise ValueError(f"dilated attention: shapes q {tuple(q.shape)}, k {tuple(k.shape)}")
    if plan is not None:
        if (plan.batch, plan.heads, plan.n, plan.length) != (b, h, n, k.shape[2]):
            raise ValueError("dilated attention: the plan was made for other shapes")
    else:
        plan = plan_dilated(
            b,
            h,
            n,
            k.shape[2],
            segment_lengths,
            dilation_rates,
            q_start=q_start,
            row_start=row_start,
            key_padding=key_padding,
            device=q.device,
        )
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    return _DilatedAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), plan, scale)


def multiplicity(
    length: int, heads: int, segment_lengths: Sequence[int], dilation_rates: Sequence[int]
) -> Tensor:
    """(H, T, T) count of branches in which query i attends key j (0: never); for references."""
    i = torch.arange(length)
    count = torch.zeros(heads, length, length, dtype=torch.long)
    for w, r in zip(segment_lengths, dilation_rates, strict=True):
        seg, pos = i // w, i % w
        for head in range(heads):
            kept = pos % r == head % r
            same = seg[:, None] == seg[None, :]
            count[head] += (
                same & kept[:, None] & kept[None, :] & (i[None, :] <= i[:, None])
            ).long()
    return count


def dilated_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    *,
    scale: float | None = None,
) -> Tensor:
    """The paper's definition with explicit (T, T) masks, for tests: (B, H, T, D) -> (B, H, T, D).

    One masked softmax per branch, then log-sum-exp mixing of the branches that contain a row.
    Memory O(H T^2) per branch; differentiable by autograd.
    """
    b, h, t, d = q.shape
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    s = torch.matmul(q, k.transpose(-2, -1)) * scale  # (B, H, T, T)
    i = torch.arange(t, device=q.device)
    heads = torch.arange(h, device=q.device)[:, None]
    outs, lses = [], []
    for w, r in zip(segment_lengths, dilation_rates, strict=True):
        seg, pos = i // w, i % w
        kept = pos[None, :] % r == heads % r  # (H, T)
        mask = (seg[:, None] == seg[None, :]) & (i[None, :] <= i[:, None])
        mask = mask & kept[:, :, None] & kept[:, None, :]  # (H, T, T)
        # rows outside the branch get finite dummy scores here and weight 0 below
        sb = s.masked_fill(~mask, float("-inf")).masked_fill(~kept[..., None], 0.0)
        lse = torch.logsumexp(sb, dim=-1)  # (B, H, T)
        outs.append(torch.matmul(torch.exp(sb - lse.unsqueeze(-1)), v))
        lses.append(lse.masked_fill(~kept, float("-inf")))
    total = torch.logsumexp(torch.stack(lses), dim=0)
    out = sum(o * torch.exp(lse - total).unsqueeze(-1) for o, lse in zip(outs, lses, strict=True))
    return out  # type: ignore[return-value]
