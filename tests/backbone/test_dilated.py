"""Dilated attention (LongNet) against dense attention and an explicit-mask reference, forward and
gradients; real sparsity; causality; cache-style calls; both kernels."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from seqrl.backbone import dilated_attention, dilated_reference, kernels
from seqrl.backbone.dilated import multiplicity, plan_dilated

SCHEDULES = [
    ((4, 8), (1, 2)),
    ((4, 8, 16), (1, 2, 4)),
    ((3, 6, 12), (1, 3, 5)),  # rates that do not divide the segment lengths
    ((8, 16), (2, 1)),  # r = 1 not first
]


def _qkv(b, h, t, d, dtype=torch.float64, seed=0, device="cpu"):
    """Leaf tensors drawn on the CPU (the same values on every device), then moved."""
    g = torch.Generator().manual_seed(seed)
    draws = [torch.randn(b, h, t, d, dtype=dtype, generator=g) for _ in range(3)]
    return [x.to(device).requires_grad_() for x in draws]


def _grads(out, inputs, seed=1):
    g = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(out, inputs, g.to(out.device))


def _assert_matches_reference(q, k, v, ws, rs, atol=1e-10):
    out, ref = dilated_attention(q, k, v, ws, rs), dilated_reference(q, k, v, ws, rs)
    torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    for a, b in zip(_grads(out, (q, k, v)), _grads(ref, (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


def test_single_pair_covering_the_sequence_is_dense_causal_attention():
    q, k, v = _qkv(2, 3, 37, 8)
    out = dilated_attention(q, k, v, (64,), (1,))
    dense = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, dense, atol=1e-12, rtol=0)
    for a, b in zip(_grads(out, (q, k, v)), _grads(dense, (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("ws,rs", SCHEDULES)
@pytest.mark.parametrize("t", [1, 7, 16, 29])
@pytest.mark.parametrize("heads", [1, 5])
def test_equals_explicit_mask_reference(ws, rs, t, heads, device):
    _assert_matches_reference(*_qkv(2, heads, t, 4, device=device), ws, rs)


def test_reference_is_one_softmax_over_the_multiset_union():
    ws, rs = (4, 8, 16), (1, 2, 4)
    q, k, v = _qkv(1, 4, 21, 4)
    count = multiplicity(21, 4, ws, rs).to(torch.float64)
    bias = torch.log(count)  # -inf where never attended, log(2) where two branches hold the key
    one_softmax = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(dilated_attention(q, k, v, ws, rs), one_softmax, atol=1e-12, rtol=0)
    assert count.max() == 3  # keys are held by several branches at once: not the plain union


def test_head_offsets_cover_rows_skipped_by_other_heads():
    # r = 2 branch only keeps odd rows in head 1 and even rows in head 0
    count = multiplicity(8, 2, (8,), (2,))
    assert count[0].diagonal().tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    assert count[1].diagonal().tolist() == [0, 1, 0, 1, 0, 1, 0, 1]


def _record_calls(monkeypatch):
    calls = []
    real = kernels.attention_forward

    def spy(q, k, v, **kw):
        calls.append((q.shape, k.shape))
        return real(q, k, v, **kw)

    monkeypatch.setattr(kernels, "attention_forward", spy)
    return calls


def test_each_call_sees_at_most_w_over_r_keys_and_work_is_linear(monkeypatch):
    ws, rs = (64, 128, 256), (1, 2, 4)
    work = {}
    for t in (1024, 2048):
        calls = _record_calls(monkeypatch)
        q, k, v = (torch.randn(1, 4, t, 8) for _ in range(3))
        with torch.no_grad():
            dilated_attention(q, k, v, ws, rs)
        assert len(calls) >= len(ws)
        assert max(ks[-2] for _, ks in calls) <= max(
            math.ceil(w / r) for w, r in zip(ws, rs, strict=True)
        )
        work[t] = sum(qs[0] * qs[1] * qs[2] * ks[2] for qs, ks in calls)  # score entries
        assert work[t] < 0.2 * 4 * t * t  # dense: H * T^2
    assert work[2048] == 2 * work[1024]  # linear in the sequence length


@pytest.mark.parametrize("ws,rs", SCHEDULES[:3])
def test_causal(ws, rs, device):
    q, k, v = (x.detach() for x in _qkv(2, 3, 30, 4, device=device))
    out = dilated_attention(q, k, v, ws, rs)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 17:] += 5.0
    v2[:, :, 17:] -= 3.0
    q2 = q.clone()
    q2[:, :, 17:] *= 2.0
    out2 = dilated_attention(q2, k2, v2, ws, rs)
    torch.testing.assert_close(out[:, :, :17], out2[:, :, :17], atol=0, rtol=0)
    assert not torch.allclose(out[:, :, 17:], out2[:, :, 17:])


@pytest.mark.parametrize("flash", [True, False])
def test_gradcheck_float64(monkeypatch, flash):
    if not flash:
        monkeypatch.setattr(kernels, "_use_cpu_flash", lambda q: False)
    q, k, v = _qkv(1, 2, 7, 2)
    assert torch.autograd.gradcheck(
        lambda q, k, v: dilated_attention(q, k, v, (2, 4), (1, 2)), (q, k, v), atol=1e-8
    )


def test_cpu_flash_kernel_and_math_kernel_agree_in_float32(monkeypatch):
    q, k, v = _qkv(2, 4, 50, 16, dtype=torch.float32)
    ws, rs = (8, 16, 32), (1, 2, 4)
    out = dilated_attention(q, k, v, ws, rs)
    grads = _grads(out, (q, k, v))
    monkeypatch.setattr(kernels, "_use_cpu_flash", lambda q: False)
    out2 = dilated_attention(q, k, v, ws, rs)
    torch.testing.assert_close(out, out2, atol=1e-5, rtol=1e-4)
    for a, b in zip(grads, _grads(out2, (q, k, v)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_float32_kernels_match_the_float64_reference(device):
    """In float32 the fast kernels (CPU flash; on CUDA, SDPA's GPU kernels) stay close to the
    exact float64 reference, forward and gradients, at lengths several segments long."""
    ws, rs = (8, 16, 32), (1, 2, 4)
    q, k, v = _qkv(2, 4, 70, 16, dtype=torch.float32, device=device)
    out = dilated_attention(q, k, v, ws, rs)
    exact = [x.detach().double().cpu().requires_grad_() for x in (q, k, v)]
    ref = dilated_reference(*exact, ws, rs)
    torch.testing.assert_close(out.double().cpu(), ref, atol=1e-5, rtol=1e-4)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = torch.autograd.grad(out, (q, k, v), g.to(device, torch.float32))
    for a, b in zip(ours, torch.autograd.grad(ref, exact, g), strict=True):
        torch.testing.assert_close(a.double().cpu(), b, atol=1e-5, rtol=1e-4)


def test_mixing_weights_need_their_gradient(device):
    """Detaching the softmax-denominator weights (as one implementation does) breaks dQ, dK."""
    ws, rs = (4, 8), (1, 2)
    q, k, v = _qkv(1, 2, 16, 4, device=device)
    exact = _grads(dilated_reference(q, k, v, ws, rs), (q, k, v))
    ours = _grads(dilated_attention(q, k, v, ws, rs), (q, k, v))
    torch.testing.assert_close(ours[0], exact[0], atol=1e-10, rtol=0)
    assert ours[0].abs().max() > 0.1  # (the exactness above is not vacuous)


def _decode(q, k, v, ws, rs, block, keep):
    """Run the queries block by block against at most ``keep`` cached keys (as a KV cache does)."""
    t = q.shape[2]
    outs = []
    for t0 in range(0, t, block):
        t1 = min(t, t0 + block)
        kb = max(0, t0 - keep)
        outs.append(
            dilated_attention(
                q[:, :, t0:t1],
                k[:, :, kb:t1],
                v[:, :, kb:t1],
                ws,
                rs,
                q_start=t0,
                row_start=torch.zeros(q.shape[0], dtype=torch.long, device=q.device),
            )
        )
    return torch.cat(outs, dim=2)


@pytest.mark.parametrize("block", [1, 3, 8])
def test_cache_style_calls_equal_the_full_call(block, device):
    ws, rs = (4, 8, 16), (1, 2, 4)
    q, k, v = (x.detach() for x in _qkv(2, 3, 40, 4, device=device))
    full = dilated_attention(q, k, v, ws, rs)
    torch.testing.assert_close(_decode(q, k, v, ws, rs, block, keep=15), full, atol=1e-12, rtol=0)


def test_too_few_cached_keys_is_an_error():
    q, k, v = (torch.randn(1, 2, 20, 4) for _ in range(3))
    with pytest.raises(ValueError, match="max\\(segment_lengths\\) - 1"):
        dilated_attention(
            q[:, :, 19:],
            k[:, :, 17:],
            v[:, :, 17:],
            (16,),
            (1,),
            q_start=19,
            row_start=torch.zeros(1, dtype=torch.long),
        )


def test_rows_starting_later_and_key_padding(device):
    """Queries 5..19 over keys 0..19; row 1 starts at 5 (a reset) and has a padding token at 9."""
    ws, rs = (4, 8), (1, 2)
    q, k, v = (x.detach() for x in _qkv(2, 3, 20, 4, device=device))
    pad = torch.ones(2, 20, dtype=torch.bool, device=device)
    pad[1, 9] = False
    row_start = torch.tensor([0, 5], device=device)
    out = dilated_attention(
        q[:, :, 5:], k, v, ws, rs, q_start=5, row_start=row_start, key_padding=pad
    )
    torch.testing.assert_close(out[0], dilated_attention(q[:1], k[:1], v[:1], ws, rs)[0, :, 5:])
    # row 1 alone is the sequence 5..19, in which key 9 (index 4) is seen only by itself
    count = multiplicity(15, 3, ws, rs).to(torch.float64)
    count[:, :, 4] *= torch.eye(15, dtype=torch.float64)[:, 4]
    alone = F.scaled_dot_product_attention(
        q[1:, :, 5:], k[1:, :, 5:], v[1:, :, 5:], attn_mask=count.log().to(device)
    )
    torch.testing.assert_close(out[1:], alone, atol=1e-12, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(1, 40),
    heads=st.integers(1, 4),
    base=st.integers(1, 6),
    rates=st.lists(st.integers(2, 5), max_size=2),
    block=st.integers(1, 9),
)
def test_property_reference_and_decoding(t, heads, base, rates, block):
    ws = tuple(base * 2**i for i in range(len(rates) + 1))
    rs = (1, *rates)
    q, k, v = _qkv(1, heads, t, 4, seed=t)
    _assert_matches_reference(q, k, v, ws, rs)
    with torch.no_grad():
        full = dilated_attention(q, k, v, ws, rs)
        decoded = _decode(q, k, v, ws, rs, block, keep=max(ws) - 1)
    torch.testing.assert_close(decoded, full, atol=1e-12, rtol=0)


def test_plan_reads_views_where_segments_divide_evenly():
    """r = 1 branches are plain views, r | w branches strided views; only the rest gather."""
    plan = plan_dilated(1, 4, 48, 48, (8, 16, 12), (1, 2, 5))
    kinds = sorted(
        ("view" if c.view else "strided" if c.strided else "gather") for c in plan.chunks
    )
    assert kinds == ["gather", "strided", "view"]
