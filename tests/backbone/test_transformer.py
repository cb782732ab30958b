"""The pre-norm decoder: shapes, init, causality, padding, and KV-cached decoding equal to the
full forward pass (dense, banded, dilated; token by token and block by block; per-row resets), also
through a ``StaticKVCache`` and a recorded CUDA graph (``GraphedCall``)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from seqrl.backbone import KVCache, StaticKVCache, Transformer, TransformerConfig, banded_attention
from seqrl.backbone.attention import Step, attention_mask
from seqrl.backbone.graphs import GraphedCall

KINDS = ["dense", "banded", "dilated"]


def _model(attention="dense", positions="rotary", device="cpu", **kw):
    cfg = TransformerConfig(
        width=16,
        depth=2,
        heads=4,
        attention=attention,
        window=6,
        segment_lengths=(4, 8, 16),
        dilation_rates=(1, 2, 4),
        positions=positions,
        dropout=0.0,
        max_len=128,
        **kw,
    )
    torch.manual_seed(0)
    return Transformer(cfg).double().eval().to(device)


def _x(b, t, seed=0, device="cpu"):
    """Drawn on the CPU (the same values on every device), then moved."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 16, dtype=torch.float64, generator=g).to(device)


def _decode(model, x, block, cache=None):
    cache = cache if cache is not None else model.new_cache(x.shape[0])
    outs = [model(x[:, i : i + block], cache=cache) for i in range(0, x.shape[1], block)]
    return torch.cat(outs, dim=1), cache


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("ff", ["mlp", "swiglu"])
def test_shapes_and_gradients(norm, ff):
    model = _model(norm=norm, ff=ff).train()
    x = _x(3, 10).requires_grad_()
    y = model(x)
    assert y.shape == (3, 10, 16)
    y.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in model.parameters())


def test_gpt2_init():
    cfg = TransformerConfig(width=256, depth=4, heads=4)
    model = Transformer(cfg)
    block = model.blocks[0]
    assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert block.attn.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)
    assert block.ff.out.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)
    assert torch.all(block.attn.qkv.bias == 0)


@pytest.mark.parametrize("attention", KINDS)
def test_causal(attention, device):
    model = _model(attention, device=device)
    x = _x(2, 30, device=device)
    x2 = x.clone()
    x2[:, 21:] += 1.0
    torch.testing.assert_close(model(x)[:, :21], model(x2)[:, :21], atol=0, rtol=0)


@pytest.mark.parametrize("attention", KINDS)
@pytest.mark.parametrize("positions", ["none", "learned", "rotary"])
@pytest.mark.parametrize("block", [1, 5])
def test_cached_decoding_equals_full_forward(attention, positions, block, device):
    model = _model(attention, positions, device)
    x = _x(3, 37, device=device)
    decoded, cache = _decode(model, x, block)
    torch.testing.assert_close(decoded, model(x), atol=1e-12, rtol=0)
    assert cache.position == 37
    if attention == "banded":
        assert cache.length == 5  # window - 1: the cache stays small and outputs stay exact
    if attention == "dilated":
        assert cache.length == 15


@pytest.mark.parametrize("attention", KINDS)
def test_float32_on_the_device_matches_float64(attention, device):
    """The model in float32 (SDPA's fast kernels; on CUDA its GPU kernels), full forward and
    cached decoding, against the same weights in float64 on the CPU."""
    exact = _model(attention, "rotary")
    model = _model(attention, "rotary", device).float()
    x = _x(2, 40)
    ref = exact(x)
    full = model(x.float().to(device))
    decoded, _ = _decode(model, x.float().to(device), 3)
    for y in (full, decoded):
        torch.testing.assert_close(y.double().cpu(), ref, atol=1e-4, rtol=1e-4)


def test_banded_far_beyond_the_window_stays_exact(device):
    """Cached evaluation over a chunk many windows long (as the Decision Transformer runs)."""
    model = _model("banded", "none", device)
    x = _x(2, 90, device=device)
    decoded, _ = _decode(model, x, 3)  # e.g. (return, state, action) per step
    torch.testing.assert_close(decoded, model(x), atol=1e-12, rtol=0)


def test_decoding_runs_only_the_new_tokens():
    model = _model("dilated")
    seen = []
    for block in model.blocks:
        block.ff.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[1]))
    cache = model.new_cache(2)
    model(_x(2, 12), cache=cache)
    seen.clear()
    model(_x(2, 3, seed=1), cache=cache)
    assert seen == [3, 3]  # each layer saw the 3 new tokens, never the 12 cached ones


def test_banded_blockwise_kernel_equals_the_explicit_mask():
    q, k, v = (torch.randn(2, 3, 50, 8, dtype=torch.float64) for _ in range(3))
    step = Step(
        q_start=0, positions=torch.arange(50).expand(2, 50), row_start=None, key_padding=None
    )
    mask = attention_mask(step, 50, 7, q.device)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(banded_attention(q, k, v, 7), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("attention", KINDS)
def test_padding_tokens_are_invisible(attention, device):
    model = _model(attention, "none", device)
    x = _x(2, 20, device=device)
    pad = torch.ones(2, 20, dtype=torch.bool, device=device)
    pad[0, :4] = False  # left padding
    pad[1, 12] = False
    x2 = x.clone()
    x2[~pad] = 7.0
    y, y2 = model(x, padding_mask=pad), model(x2, padding_mask=pad)
    torch.testing.assert_close(y[pad], y2[pad], atol=1e-12, rtol=0)
    assert torch.isfinite(y).all()
    decoded = torch.cat(
        [
            model(x[:, i : i + 1], padding_mask=pad[:, i : i + 1], cache=c)
            for c in [model.new_cache(2)]
            for i in range(20)
        ],
        1,
    )
    torch.testing.assert_close(decoded, y, atol=1e-12, rtol=0)


@pytest.mark.parametrize("attention", KINDS)
@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_reset_rows_start_fresh_sequences(attention, positions, device):
    """Row 1's episode ends after 13 tokens: after reset it continues as a fresh sequence would."""
    model = _model(attention, positions, device)
    first, second = _x(2, 13, device=device), _x(2, 22, seed=1, device=device)
    cache = model.new_cache(2)
    _decode(model, first, 1, cache)
    cache.reset(torch.tensor([False, True]))
    decoded, _ = _decode(model, second, 2, cache)
    both = model(torch.cat((first, second), dim=1))
    torch.testing.assert_close(decoded[0], both[0, 13:], atol=1e-12, rtol=0)  # row 0 unaffected
    torch.testing.assert_close(decoded[1], model(second[1:])[0], atol=1e-12, rtol=0)


def test_select_rows_for_batched_imagination(device):
    model = _model("dilated", device=device)
    context, future = _x(2, 11, device=device), _x(6, 7, seed=1, device=device)
    cache = model.new_cache(2)
    model(context, cache=cache)
    rows = torch.tensor([0, 0, 0, 1, 1, 1], device=device)  # three imagined rollouts per context
    imagined, _ = _decode(model, future, 1, cache.select(rows))
    full = model(torch.cat((context[rows], future), dim=1))[:, 11:]
    torch.testing.assert_close(imagined, full, atol=1e-12, rtol=0)


def test_memory_of_earlier_segments_trains_with_detached_cache(device):
    """Transformer-XL style: segment 2 attends to segment 1's cached keys, gradients stop there."""
    model = _model("dense", "rotary", device).train()
    seg1, seg2 = _x(2, 8, device=device), _x(2, 8, seed=1, device=device)
    cache = model.new_cache(2)
    model(seg1, cache=cache)
    cache.detach_()
    y = model(seg2, cache=cache)
    torch.testing.assert_close(y, model(torch.cat((seg1, seg2), 1))[:, 8:], atol=1e-12, rtol=0)
    y.sum().backward()
    assert model.blocks[0].attn.qkv.weight.grad is not None


def test_dense_sliding_window_cache_and_too_small_keep():
    model = _model("dense", "rotary")
    cache = model.new_cache(1, keep=4)
    _decode(model, _x(1, 10), 1, cache)
    assert cache.length == 4 and cache.offset == 6
    with pytest.raises(ValueError, match="keep"):
        _model("dilated").new_cache(1, keep=8)


def test_learned_positions_beyond_max_len_raise():
    model = _model("dense", "learned")
    with pytest.raises(ValueError, match="max_len"):
        model(_x(1, 129))


@settings(max_examples=15, deadline=None)
@given(
    attention=st.sampled_from(KINDS),
    positions=st.sampled_from(["none", "learned", "rotary"]),
    t=st.integers(1, 30),
    block=st.integers(1, 8),
    batch=st.integers(1, 3),
)
def test_property_cached_equals_full(attention, positions, t, block, batch):
    model = _model(attention, positions)
    x = _x(batch, t, seed=t)
    with torch.no_grad():
        torch.testing.assert_close(_decode(model, x, block)[0], model(x), atol=1e-12, rtol=0)


def test_attention_dropout_only_in_training_and_only_dense() -> None:
    from seqrl.errors import ConfigError

    cfg = TransformerConfig(width=16, depth=1, heads=2, dropout=0.0, attn_dropout=0.5)
    model = Transformer(cfg)
    x = torch.randn(2, 8, 16)
    model.train()
    assert not torch.allclose(model(x), model(x))  # probabilities are dropped at random
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    with pytest.raises(ConfigError, match="attn_dropout needs dense attention"):
        Transformer(
            TransformerConfig(
                width=16, depth=1, heads=2, attention="banded", window=4, attn_dropout=0.1
            )
        )


@pytest.mark.parametrize("attention", ["dense", "banded"])
@pytest.mark.parametrize("positions", ["none", "learned", "rotary"])
def test_static_decoding_after_a_prefill_equals_the_full_forward(attention, positions, device):
    """Fixed-shape decoding (``StaticKVCache`` + ``decode_static``) after a prefill copied in."""
    model = _model(attention, positions, device)
    x = _x(3, 30, device=device)
    prefill = model.new_cache(3, keep=None)
    head = model(x[:, :7], cache=prefill)
    static = model.new_static_cache(3, capacity=40)
    static.load(prefill)
    steps = [model.decode_static(x[:, i : i + 1], static) for i in range(7, 30)]
    decoded = torch.cat([head, *steps], dim=1)
    torch.testing.assert_close(decoded, model(x), atol=1e-12, rtol=0)
    assert int(static.length) == 30 and static.capacity == 40


def test_static_cache_refuses_what_it_cannot_hold():
    model = _model(positions="learned")
    with pytest.raises(ValueError, match="max_len"):
        model.new_static_cache(2, capacity=129)
    with pytest.raises(ValueError, match="dense and banded"):
        Transformer(TransformerConfig(width=16, heads=4, attention="dilated")).new_static_cache(
            2, 8
        )
    static = model.new_static_cache(2, capacity=4)
    long = model.new_cache(2)
    model(_x(2, 5), cache=long)
    with pytest.raises(ValueError, match="at most 4 positions"):
        static.load(long)
    with pytest.raises(ValueError, match="2 rows x 2 layers, this one 3"):
        model.new_static_cache(3, capacity=8).load(long)
    cropped = model.new_cache(2, keep=3)  # a sliding-window approximation of dense attention
    model(_x(2, 5), cache=cropped)
    approx = model.new_static_cache(2, capacity=8)
    approx.load(cropped)
    with pytest.raises(ValueError, match="starts at position 2"):
        model.decode_static(_x(2, 1), approx)
    with pytest.raises(ValueError, match="layer 0 holds no keys"):
        model.new_static_cache(2, capacity=8).load(KVCache.empty(2, 2))


def test_graphed_call_replays_with_new_inputs_and_restores_after_warmup(device):
    """On CUDA the step is recorded (after warm-up calls undone by ``restore``) and replayed; on
    the CPU it is called as is. Either way each call sees the inputs written before it."""
    model = _model(device=device).float()
    x = _x(2, 12, device=device).float()
    static = model.new_static_cache(2, capacity=16)
    inputs = torch.zeros(2, 1, 16, device=device)
    host = {"length": 0}
    call = GraphedCall(
        lambda: (model.decode_static(inputs, static),),
        lambda: static.length.fill_(host["length"]),
        device=device,
    )
    outs = []
    for i in range(12):
        inputs.copy_(x[:, i : i + 1])
        outs.append(call()[0].clone())
        host["length"] += 1
    assert int(static.length) == 12
    torch.testing.assert_close(torch.cat(outs, dim=1), model(x), atol=1e-5, rtol=1e-5)
    assert (call.graph is not None) == (device.type == "cuda")


def test_static_cache_shapes():
    cache = StaticKVCache.empty(2, 3, 4, 5, 6)
    assert cache.keys.shape == (3, 2, 4, 6, 5) and cache.batch_size == 2 and cache.capacity == 6
    with pytest.raises(ValueError, match="StaticKVCache"):
        StaticKVCache(torch.zeros(1, 2, 3, 4, 5), torch.zeros(1, 2, 3, 4))


@pytest.mark.parametrize("attention", ["dense", "banded"])
@pytest.mark.parametrize("positions", ["none", "learned", "rotary"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize(
    "select",
    [
        slice(-1, None),
        slice(1, None, 3),
        slice(1, -1, 3),
        slice(0, 20, 2),
        slice(3, 5),
        slice(17, 18),
    ],
)
def test_select_equals_those_rows_of_the_full_forward(attention, positions, padded, select, device):
    """``select``: the final block runs the selected tokens' queries alone (the last one to act
    from a window, DT's state tokens in training); their features equal the full forward's rows,
    with left padding too, and past the 6-token band (banded attention)."""
    model = _model(attention, positions, device)
    x = _x(3, 20, device=device)
    pad = None
    if padded:
        pad = torch.ones(3, 20, dtype=torch.bool, device=device)
        pad[0, :7] = False
        pad[2, :1] = False
    full = model(x, padding_mask=pad)[:, select]
    some = model(x, padding_mask=pad, select=select)
    assert some.shape == full.shape == (3, len(range(20)[select]), 16)
    torch.testing.assert_close(some, full, atol=1e-12, rtol=0)


def test_select_gives_the_gradients_of_the_full_forward():
    """Training through ``select`` (DT's state tokens) back-propagates what the full pass does."""
    model = _model("dense", "learned")
    x = _x(2, 15)
    weights = torch.randn(2, 5, 16, dtype=x.dtype)
    grads = []
    for select in (None, slice(1, None, 3)):
        model.zero_grad()
        out = model(x) if select is None else model(x, select=select)
        (out[:, 1::3] if select is None else out).mul(weights).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for full, some in zip(*grads, strict=True):
        torch.testing.assert_close(some, full, atol=1e-10, rtol=1e-6)


def test_select_refuses_a_cache_dilated_attention_and_an_empty_selection():
    with pytest.raises(ValueError, match="select"):
        _model("dense").forward(
            _x(1, 4), cache=_model("dense").new_cache(1), select=slice(-1, None)
        )
    with pytest.raises(ValueError, match="select"):
        _model("dilated")(_x(1, 4), select=slice(-1, None))
    with pytest.raises(ValueError, match="select"):
        _model("dense")(_x(1, 4), select=slice(5, None))


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_cpu_autocast_carries_the_residual_stream_in_bfloat16(positions):
    """Under CPU autocast the blocks' residual stream (and so the features) is bfloat16, close to
    float32's, and the float32 weights still get float32 gradients."""
    model = Transformer(TransformerConfig(width=32, depth=2, heads=4, positions=positions)).eval()
    x = torch.randn(3, 10, 32, generator=torch.Generator().manual_seed(2))
    full = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x)
    assert full.dtype == torch.float32 and low.dtype == torch.bfloat16
    assert (low.float() - full).abs().max() < 0.1 * full.abs().max()
    low.float().pow(2).mean().backward()
    grad = model.blocks[0].attn.qkv.weight.grad
    assert grad is not None and grad.dtype == torch.float32 and grad.abs().sum() > 0
