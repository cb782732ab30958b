"""Probe: the GPT passes of IRIS graph decoding, kernel by kernel, and two rewrites of the step.

At ``iris-atari100k`` (batch 64, cache filled to 170 of 340 slots), one frame's 17 one-token passes
recorded as a CUDA graph: the current ``CausalSelfAttention.decode_static``, one with the scale and
mask folded into ``baddbmm``, and one that also writes keys and values with one ``index_copy_``;
a CUDA profile of the current and the last (kernel time by kernel); then a 64 x 20 rollout with the
tokenizer eager and compiled (``Tokenizer.compile_networks``). A diagnostic, not a peer benchmark:
it prints (log: ``benchmarks/logs/iris-probe-gpt-step-h200.log``); docs/iris.md quotes it.

    python benchmarks/probes/iris_gpt_step.py        # on a CUDA machine (gpu.sh part probe_gpt)
    DEV=cpu python benchmarks/probes/iris_gpt_step.py  # a smoke run at iris-minatar
"""

import os
import statistics
import time

import torch
from seqrl.backbone import StaticKVCache
from seqrl.backbone import attention as attn_mod
from seqrl.backbone.graphs import GraphedCall
from seqrl.world_models.iris import IRIS, IRISState, iris_atari100k, iris_minatar

T0 = time.time()
dev = torch.device(os.environ.get("DEV", "cuda"))
cuda = dev.type == "cuda"
sync = torch.cuda.synchronize if cuda else (lambda: None)
torch.manual_seed(0)
model = IRIS(iris_atari100k() if cuda else iris_minatar(), (64, 64, 3), 6).to(dev).eval()
tr = model.dynamics.transformer
cfg = tr.config
B, CAP, START = 64, tr.config.max_len, 170
x = torch.randn(B, 1, cfg.width, device=dev)
KV = {}


def new_cache(fused):
    if not fused:
        return tr.new_static_cache(B, CAP, device=dev)
    kv = torch.zeros(cfg.depth, 2, B, cfg.heads, CAP, cfg.width // cfg.heads, device=dev)
    c = StaticKVCache(kv[:, 0], kv[:, 1])
    for i in range(cfg.depth):
        KV[c.keys[i].data_ptr()] = kv[i]
    return c


orig = attn_mod.CausalSelfAttention.decode_static


def v_baddbmm(self, x, positions, slot, bias, keys, values):
    b = x.shape[0]
    q, k, v = self.qkv(x).view(b, 1, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
    index = slot.view(1)
    keys.index_copy_(2, index, k)
    values.index_copy_(2, index, v)
    bh, cap = b * self.heads, keys.shape[2]
    scores = torch.baddbmm(
        bias.view(1, 1, cap),
        q.reshape(bh, 1, self.head_dim),
        keys.view(bh, cap, self.head_dim).transpose(1, 2),
        alpha=self.head_dim**-0.5,
    )
    y = torch.bmm(scores.softmax(-1), values.view(bh, cap, self.head_dim))
    return self.dropout(self.proj(y.view(b, self.heads * self.head_dim)[:, None]))


def v_fused(self, x, positions, slot, bias, keys, values):
    b = x.shape[0]
    qkv = self.qkv(x).view(b, 1, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
    index = slot.view(1)
    KV[keys.data_ptr()].index_copy_(3, index, qkv[1:])
    bh, cap = b * self.heads, keys.shape[2]
    scores = torch.baddbmm(
        bias.view(1, 1, cap),
        qkv[0].reshape(bh, 1, self.head_dim),
        keys.view(bh, cap, self.head_dim).transpose(1, 2),
        alpha=self.head_dim**-0.5,
    )
    y = torch.bmm(scores.softmax(-1), values.view(bh, cap, self.head_dim))
    return self.dropout(self.proj(y.view(b, self.heads * self.head_dim)[:, None]))


def frame_call(cache):
    def fn():
        h = x
        for _ in range(17):
            h = tr.decode_static(h, cache)
        return (h,)

    return fn


results = {}
with torch.no_grad():
    for name, fn, fused in (
        ("current", orig, False),
        ("baddbmm", v_baddbmm, False),
        ("fused kv + baddbmm", v_fused, True),
    ):
        attn_mod.CausalSelfAttention.decode_static = fn
        cache = new_cache(fused)
        cache.length.fill_(START)
        call = GraphedCall(
            frame_call(cache), lambda cache=cache: cache.length.fill_(START), device=dev
        )
        ts = []
        for _ in range(30):
            cache.length.fill_(START)
            sync()
            t = time.perf_counter()
            (h,) = call()
            sync()
            ts.append((time.perf_counter() - t) * 1e3)
        results[name] = h.clone()
        print(f"{name}: 17 passes {statistics.median(ts[5:]):.3f} ms (graph)", flush=True)
        if cuda and name in ("current", "fused kv + baddbmm"):
            cache.length.fill_(START)
            fn_eager = frame_call(cache)
            fn_eager()
            sync()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                cache.length.fill_(START)
                fn_eager()
                sync()
            print(
                prof.key_averages().table(
                    sort_by="self_cuda_time_total", row_limit=18, max_name_column_width=60
                ),
                flush=True,
            )
for name, h in results.items():
    print(name, "max |diff| vs current", float((h - results["current"]).abs().max()))
attn_mod.CausalSelfAttention.decode_static = orig

# the tokenizer compiled (GPT eager) inside graph decoding
if cuda and time.time() - T0 < 60:
    tokens64 = torch.randint(0, 512, (64, 16), device=dev)
    acts = torch.randint(0, 6, (64,), device=dev)

    def rollout(n=20):
        state = IRISState(tokens64)
        for _ in range(n):
            state, step = model.imagine_step(state, acts)
        return step

    def bench(fn, iters=5):
        ts = []
        for _ in range(iters):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            ts.append((time.perf_counter() - t) * 1e3)
        return statistics.median(ts)

    with torch.no_grad():
        rollout(2)
        print(f"eager rollout 64x20: {bench(rollout):.1f} ms", flush=True)
        model.tokenizer.compile_networks()
        model._decoders.clear()
        t = time.time()
        rollout(1)
        print(f"compiling the tokenizer decoder + record: {time.time() - t:.1f} s", flush=True)
        print(f"tokenizer-compiled rollout 64x20: {bench(rollout):.1f} ms", flush=True)
print(f"done in {time.time() - T0:.0f} s", flush=True)
