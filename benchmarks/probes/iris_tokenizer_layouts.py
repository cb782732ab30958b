"""Probe: IRIS imagination on a GPU by parts, tokenizer layouts and precisions, a compiled GPT step.

At ``iris-atari100k``: the tokenizer's decoding of 64 frames, encoding and decoding of the 64 x 21
context frames, a tokenizer update of 256 frames, and a 64 x 20 imagined rollout (graph decoding,
fixed actions, no policy), each with the tokenizer in NCHW or channels-last, float32 or bfloat16
autocast, cuDNN benchmark off and on; then the rollout with the decoder replaced by zeros (the GPT
passes alone) and with ``torch.compile``'d GPT steps. A diagnostic, not a peer benchmark: it
prints its table (log: ``benchmarks/logs/iris-probe-tokenizer-layouts-h200.log``) and writes no
docs section; docs/iris.md quotes it.

    python benchmarks/probes/iris_tokenizer_layouts.py [SECONDS]   # on a CUDA machine (gpu.sh: probe_tokenizer)
    DEV=cpu python benchmarks/probes/iris_tokenizer_layouts.py     # a smoke run at iris-minatar

(on a machine without seqrl installed, put it on PYTHONPATH as benchmarks/gpu.sh does)
"""

import os
import statistics
import sys
import time

import torch
from seqrl.world_models import iris_tokenizer
from seqrl.world_models.iris import IRIS, IRISState, iris_atari100k
from seqrl.world_models.iris_tokenizer import Tokenizer

T0 = time.time()
LIMIT = float(sys.argv[1]) if len(sys.argv) > 1 else 250.0
dev = torch.device(os.environ.get("DEV", "cuda"))
torch.manual_seed(0)
print(torch.__version__, flush=True)


def bench(fn, iters=10, warm=3):
    for _ in range(warm):
        fn()
    (torch.cuda.synchronize() if dev.type == "cuda" else None)
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        (torch.cuda.synchronize() if dev.type == "cuda" else None)
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def left():
    return LIMIT - (time.time() - T0)


model = (
    IRIS(
        (
            iris_atari100k()
            if dev.type == "cuda"
            else __import__("seqrl.world_models.iris", fromlist=["x"]).iris_minatar()
        ),
        (64, 64, 3),
        6,
    )
    .to(dev)
    .eval()
)
tok = model.tokenizer
orig_decode = Tokenizer.decode
CL = torch.channels_last


def set_variant(layout, amp):
    if layout == "cl":
        iris_tokenizer.cpu_channels_last = lambda x: (
            x.contiguous(memory_format=CL) if x.dim() == 4 else x
        )
        tok.to(memory_format=CL)
    else:
        iris_tokenizer.cpu_channels_last = lambda x: x
        tok.to(memory_format=torch.contiguous_format)

    def decode(tokens):
        with torch.autocast(dev.type, torch.bfloat16, enabled=amp, cache_enabled=False):
            out = orig_decode(tok, tokens)
        return out.float()

    tok.decode = decode
    model._decoders.clear()
    return decode


tokens64 = torch.randint(0, model.cfg.tokenizer.vocab_size, (64, tok.tokens_per_frame), device=dev)
frames1344 = torch.rand(1344 if dev.type == "cuda" else 64, 3, 64, 64, device=dev)
frames256 = torch.rand(256, 3, 64, 64, device=dev)
opt = torch.optim.Adam(tok.parameters(), lr=1e-4)


def tok_update(amp):
    with torch.autocast(dev.type, torch.bfloat16, enabled=amp):
        z, tokens, z_q = tok._quantise(frames256)
        recon = tok._decode_grid(z + (z_q - z).detach())
        loss = (recon.float() - (frames256 * 2 - 1)).abs().mean() + (z.detach() - z_q).pow(
            2
        ).mean().float()
    opt.zero_grad()
    loss.backward()
    opt.step()


def rollout(n=20):
    state = IRISState(tokens64)
    acts = torch.randint(0, 6, (64,), device=dev)
    for _ in range(n):
        state, step = model.imagine_step(state, acts)
    return step


print(
    "| variant | cudnn.benchmark | decode 64 | enc+dec 1344 | tok update 256 | rollout 64x20 |",
    flush=True,
)
for bm in (False, True):
    torch.backends.cudnn.benchmark = bm
    for layout, amp in (("nchw", False), ("cl", False), ("nchw", True), ("cl", True)):
        if left() < 60:
            break
        dec = set_variant(layout, amp)
        with torch.no_grad():
            a = bench(lambda dec=dec: dec(tokens64))

            def ed(amp=amp):
                with torch.autocast(dev.type, torch.bfloat16, enabled=amp, cache_enabled=False):
                    return orig_decode(tok, tok.encode(frames1344))

            b = bench(ed, iters=5)
            c = bench(rollout, iters=5, warm=2)
        tok.train()
        u = bench(lambda amp=amp: tok_update(amp), iters=5)
        tok.eval()
        print(
            f"| {layout} {'bf16' if amp else 'fp32'} | {bm} | {a:.2f} ms | {b:.1f} ms | {u:.1f} ms | {c:.1f} ms |",
            flush=True,
        )

torch.backends.cudnn.benchmark = False
# GPT alone in the graph (decoder replaced by zeros)
tok.decode = lambda tokens: torch.zeros(tokens.shape[0], 3, 64, 64, device=dev)
model._decoders.clear()
with torch.no_grad():
    g = bench(rollout, iters=5, warm=2)
print(f"GPT only (graph, eager step): rollout 64x20 {g:.1f} ms", flush=True)


def compile_gpt_step():
    """Graph decoding with torch.compile'd GPT steps (what world_model.compile did until this
    probe measured it)."""
    model._decoders.clear()
    if dev.type == "cuda":
        decoder = model._graph_decoder(64, False, dev)
        decoder.decode = torch.compile(decoder.decode)


if left() > 120:
    compile_gpt_step()
    t = time.time()
    with torch.no_grad():
        rollout(1)
    print(f"compile of the GPT step + record: {time.time() - t:.1f} s", flush=True)
    with torch.no_grad():
        g2 = bench(rollout, iters=5, warm=1)
    print(f"GPT only (graph, compiled step): rollout 64x20 {g2:.1f} ms", flush=True)
    set_variant("cl", True)
    compile_gpt_step()
    with torch.no_grad():
        rollout(1)
        g3 = bench(rollout, iters=5, warm=1)
    print(f"compiled step + cl bf16 decoder: rollout 64x20 {g3:.1f} ms", flush=True)
print(f"done in {time.time() - T0:.0f} s", flush=True)
