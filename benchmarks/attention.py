"""Dilated attention against dense causal SDPA and dilated-attention-pytorch; feed-forward variants.

Attention (section ``attention`` of ``docs/benchmarks.md``): forward and forward+backward time and
peak memory at 2k ... 32k tokens (64k for dilated attention only), 8 heads, head dim 64, float32,
batch 1, for

- dense causal ``torch.nn.functional.scaled_dot_product_attention``;
- seqrl's dilated attention with LongNet's schedule (w = 2048 ... 32768, r = 1, 2, 4, 6, 12;
  pairs with w > length dropped);
- ``dilated-attention-pytorch`` 0.2.0 (PyPI; install it apart, its pins would replace torch:
  ``make peers`` (``pip install --no-deps --target .venv-dap dilated-attention-pytorch==0.2.0``), or point
  ``DAP_PATH`` at such a folder), with torch SDPA standing in for its xformers call.

Every measurement runs in a fresh subprocess (one forward, or one forward+backward, after a small
warm-up), implementations in turn (A B C, then C B A, ...); the table gives medians. Peak memory
on the CPU is the process's peak resident set size during the call minus its size just before
(Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``; malloc is told to return
large blocks to the system at once), so it counts every allocation, torch's included; on CUDA it
is ``torch.cuda.max_memory_allocated``. Correctness: largest absolute error of the output and of
the gradients against the exact reference, one softmax with the log-multiplicity of every
(query, key) pair added to the scores, in float64, up to 4k tokens.

Feed-forward variants (section ``feedforward``): next-step prediction loss of a tiny transformer on
random-action Pendulum trajectories, each variant at the MLP's parameter count.

Run: ``python benchmarks/attention.py [--quick] [--part attention|feedforward|all] [--no-write]``;
on a GPU machine ``--part attention --device cuda`` writes its own section (``attention-cuda``).
Needs only torch (and ``benchmarks/report.py``); seqrl need not be installed; gymnasium only for
the feed-forward table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import ast  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

HEADS, HEAD_DIM = 8, 64
PAPER = ((2048, 4096, 8192, 16384, 32768), (1, 2, 4, 6, 12))
DAP_DEFAULT = Path(__file__).resolve().parent.parent / ".venv-dap"
IMPLS = ("dense", "seqrl", "dap")
GPU_REPEATS = 5  # on CUDA each figure is the median of this many calls after the first


def seqrl_dilated():
    """``seqrl.backbone.dilated``, imported from this checkout even when seqrl is not installed."""
    try:
        import seqrl.backbone.dilated as mod

        return mod
    except ImportError:
        pkg = types.ModuleType("seqrl")
        pkg.__path__ = [str(ROOT / "core")]
        sub = types.ModuleType("seqrl.backbone")
        sub.__path__ = [str(ROOT / "backbone")]
        sys.modules.update({"seqrl": pkg, "seqrl.backbone": sub})
        import seqrl.backbone.dilated as mod

        return mod


def dap_class():
    """dilated-attention-pytorch's ``DilatedAttention`` with an SDPA stand-in for xformers, or None."""
    path = Path(os.environ.get("DAP_PATH", DAP_DEFAULT))
    if path.exists() and str(path) not in sys.path:
        sys.path.append(str(path))
    if "xformers.ops" not in sys.modules:
        ops = types.ModuleType("xformers.ops")

        class LowerTriangularMask:  # the causal bias marker
            pass

        def memory_efficient_attention(query, key, value, op=None, attn_bias=None):
            # xformers layout (batch, seq, heads, dim)
            q, k, v = (x.transpose(1, 2) for x in (query, key, value))
            out = F.scaled_dot_product_attention(q, k, v, is_causal=attn_bias is not None)
            return out.transpose(1, 2)

        ops.LowerTriangularMask = LowerTriangularMask
        ops.memory_efficient_attention = memory_efficient_attention
        ops.AttentionOp = object
        xformers = types.ModuleType("xformers")
        xformers.ops = ops
        sys.modules.update({"xformers": xformers, "xformers.ops": ops})
    try:
        from dilated_attention_pytorch.dilated_attention import DilatedAttention
    except ImportError:
        return None
    return DilatedAttention


def schedule(length: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The paper's pairs with w <= length."""
    pairs = [(w, r) for w, r in zip(*PAPER, strict=True) if w <= length]
    return tuple(w for w, _ in pairs), tuple(r for _, r in pairs)


def attention_fn(impl: str, length: int):
    """(q, k, v) in (B, H, T, D) -> output (B, H, T, D) for ``impl``."""
    ws, rs = schedule(length)
    if impl == "dense":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if impl == "seqrl":
        mod = seqrl_dilated()
        return lambda q, k, v: mod.dilated_attention(q, k, v, ws, rs)
    cls = dap_class()
    if cls is None:
        raise RuntimeError("dilated-attention-pytorch is not installed (see the module docstring)")
    dap = cls(list(ws), list(rs))
    return lambda q, k, v: dap(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
    ).transpose(1, 2)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_case(impl: str, length: int, mode: str, device: str) -> dict:
    """One measurement (call in a fresh process): seconds and peak extra memory (MiB) of one call."""
    fn = attention_fn(impl, length)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(1, HEADS, length, HEAD_DIM, generator=gen)
        .to(device)
        .requires_grad_(mode == "fwdbwd")
        for _ in range(3)
    )
    warm = [x[:, :, :2048].detach().clone().requires_grad_(mode == "fwdbwd") for x in (q, k, v)]
    try:  # warm-up (thread pool, kernels); a failure shows in the real call below
        wout = attention_fn(impl, 2048)(*warm)
        if mode == "fwdbwd":
            wout.sum().backward()
        del wout
    except RuntimeError:
        pass
    del warm
    grad = torch.ones(1, HEADS, length, HEAD_DIM, device=device) if mode == "fwdbwd" else None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_kib("VmRSS") * 1024
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM, the peak resident size

    def call() -> float:
        start = time.perf_counter()
        if mode == "fwd":
            with torch.no_grad():
                fn(q, k, v)
        else:
            fn(q, k, v).backward(grad)
            q.grad = k.grad = v.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    seconds = call()
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _rss_kib("VmHWM") * 1024
    if device == "cuda":  # one GPU call is short and the first of a size pays one-off costs
        seconds = statistics.median(call() for _ in range(GPU_REPEATS))
    return {"seconds": seconds, "peak_mib": (peak - before) / 2**20}


def measure(impl: str, length: int, mode: str, device: str, threads: int) -> dict:
    """``run_case`` in a subprocess with the same threads and malloc settings for every side; on
    CUDA in this process (a fresh process costs seconds of CUDA start-up per case, and the peak is
    measured with the allocator's own counters, reset before each call)."""
    if device.startswith("cuda"):
        try:
            return run_case(impl, length, mode, device)
        except RuntimeError as exc:
            return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        finally:
            torch.cuda.empty_cache()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MALLOC_MMAP_THRESHOLD_="131072")
    cmd = [sys.executable, __file__, "--case", impl, str(length), mode, "--device", device]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if res.returncode:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _multiplicity_bias(length: int, dtype: torch.dtype) -> torch.Tensor:
    """(H, T, T) log of how many branches give query i key j (-inf: none): the exact reference."""
    ws, rs = schedule(length)
    i = torch.arange(length)
    count = torch.zeros(HEADS, length, length, dtype=torch.int8)
    causal = i[None, :] <= i[:, None]
    for w, r in zip(ws, rs, strict=True):
        same = (i[:, None] // w == i[None, :] // w) & causal
        for h in range(HEADS):
            kept = (i % w) % r == h % r
            count[h] += (same & kept[:, None] & kept[None, :]).to(torch.int8)
    return count.to(dtype).log()


def correctness(length: int, impls: list[str], device: str = "cpu") -> dict[str, dict[str, float]]:
    """Largest errors against the float64 reference (computed on the CPU; each method runs in
    float32 on ``device``), and the largest change of outputs before position T/2 when the tokens
    after it change (0 for a causal method)."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (
        torch.randn(1, HEADS, length, HEAD_DIM, generator=gen, dtype=torch.float64)
        for _ in range(3)
    )
    dout = torch.randn(q.shape, generator=gen, dtype=torch.float64)
    bias = _multiplicity_bias(length, torch.float64)
    ref_in = [x.clone().requires_grad_() for x in (q, k, v)]
    ref = F.scaled_dot_product_attention(*ref_in, attn_mask=bias)
    ref_grads = torch.autograd.grad(ref, ref_in, dout)
    del bias
    results = {}
    half = length // 2
    for impl in impls:
        fn = attention_fn(impl, length)
        ins = [x.float().to(device).requires_grad_() for x in (q, k, v)]
        try:
            out = fn(*ins)
            grads = torch.autograd.grad(out, ins, dout.float().to(device))
            grad_err = max(
                (a.double().cpu() - b).abs().max().item()
                for a, b in zip(grads, ref_grads, strict=True)
            )
        except RuntimeError:  # dilated-attention-pytorch's backward fails with a single branch
            with torch.no_grad():
                out = fn(*(x.float().to(device) for x in (q, k, v)))
            grad_err = float("nan")
        with torch.no_grad():
            changed = [x.float().clone() for x in (q, k, v)]
            for x in changed:
                x[:, :, half:] = torch.randn(x[:, :, half:].shape, generator=gen)
            changed_out = fn(*(x.to(device) for x in changed))
            leak = (changed_out[:, :, :half] - out[:, :, :half]).abs().max().item()
        results[impl] = {
            "out": (out.double().cpu() - ref).abs().max().item(),
            "grad": grad_err,
            "leak": leak,
        }
    return results


def raw_from_log(path: Path) -> dict[tuple[str, int, str], list[dict]]:
    """The measurements a run printed (``impl length mode {...}`` lines), e.g. of a run on a GPU
    machine that was stopped at its time limit before it wrote its table."""
    pattern = re.compile(r"^(dense|seqrl|dap) (\d+) (fwd|fwdbwd) (\{.*\})$")
    raw: dict[tuple[str, int, str], list[dict]] = {}
    for line in path.read_text().splitlines():
        if m := pattern.match(line.strip()):
            key = (m.group(1), int(m.group(2)), m.group(3))
            raw.setdefault(key, []).append(ast.literal_eval(m.group(4)))
    if not raw:
        print(
            f"attention.py: error: --from-log {path}: no measurement lines in it", file=sys.stderr
        )
        raise SystemExit(2)
    return raw


def attention_table(
    lengths: list[int],
    long_lengths: list[int],
    rounds: int,
    device: str,
    threads: int,
    *,
    from_log: Path | None = None,
    card: str = "",
) -> str:
    """Run every measurement (A B C, C B A, ...) and return the markdown section; with
    ``from_log``, the table of an earlier run's printed measurements (no correctness columns)."""
    load_before = os.getloadavg()
    have_dap = dap_class() is not None
    impls = [i for i in IMPLS if i != "dap" or have_dap]
    cases = [(impl, t) for t in lengths for impl in impls]
    cases += [("seqrl", t) for t in long_lengths]
    raw: dict[tuple[str, int, str], list[dict]] = {}
    started = time.perf_counter()
    if from_log is not None:
        raw = raw_from_log(from_log)
        impls = [i for i in IMPLS if any(k[0] == i for k in raw)]
        rounds = max(len(v) for v in raw.values())
    for rnd in range(rounds if from_log is None else 0):
        for t in lengths + long_lengths:
            order = [c for c in cases if c[1] == t]
            for impl, _ in order if rnd % 2 == 0 else order[::-1]:
                for mode in ("fwd", "fwdbwd"):
                    res = measure(impl, t, mode, device, threads)
                    raw.setdefault((impl, t, mode), []).append(res)
                    print(impl, t, mode, res, flush=True)
    checks = {
        t: correctness(t, [i for i in impls if i != "dense"], device)
        for t in lengths
        if t <= 4096 and from_log is None
    }
    elapsed = time.perf_counter() - started

    def med(impl: str, t: int, mode: str, key: str) -> float | None:
        vals = [r[key] for r in raw.get((impl, t, mode), []) if "error" not in r]
        return statistics.median(vals) if vals else None

    ms = 2 if device.startswith("cuda") else 0  # digits of milliseconds

    def fmt(x: float | None, unit: float = 1.0, digits: int = 0) -> str:
        return "—" if x is None else f"{x * unit:,.{digits}f}"

    names = {
        "dense": "dense causal SDPA",
        "seqrl": "seqrl dilated",
        "dap": "dilated-attention-pytorch 0.2.0",
    }
    rows = [
        "| tokens | method | fwd ms | fwd+bwd ms | fwd+bwd vs dense (per round) | peak MiB fwd | peak MiB fwd+bwd | memory vs dense | max err out | max err grads | future leak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in lengths + long_lengths:
        for impl in impls:
            if (impl, t, "fwd") not in raw:
                continue
            fb, dense_fb = med(impl, t, "fwdbwd", "seconds"), med("dense", t, "fwdbwd", "seconds")
            mem, dense_mem = (
                med(impl, t, "fwdbwd", "peak_mib"),
                med("dense", t, "fwdbwd", "peak_mib"),
            )
            speed = f"{dense_fb / fb:.1f}x" if fb and dense_fb and impl != "dense" else ""
            per_round = [
                a["seconds"] / b["seconds"]
                for a, b in zip(
                    raw.get(("dense", t, "fwdbwd"), []), raw[(impl, t, "fwdbwd")], strict=False
                )
                if "error" not in a and "error" not in b
            ]
            if speed and len(per_round) > 1:
                speed += " (" + ", ".join(f"{x:.1f}" for x in per_round) + ")"
            memr = f"{mem / dense_mem:.2f}x" if mem and dense_mem and impl != "dense" else ""
            check = checks.get(t, {}).get(impl)
            errs = ("", "", "")
            if check is not None:
                grad = "fails" if math.isnan(check["grad"]) else f"{check['grad']:.1e}"
                errs = (f"{check['out']:.1e}", grad, f"{check['leak']:.1e}")
            label = names[impl]
            rows.append(
                f"| {t:,} | {label} | {fmt(med(impl, t, 'fwd', 'seconds'), 1e3, ms)} | {fmt(fb, 1e3, ms)} | "
                f"{speed} | {fmt(med(impl, t, 'fwd', 'peak_mib'))} | {fmt(mem)} | {memr} | "
                f"{errs[0]} | {errs[1]} | {errs[2]} |"
            )
    errors = sorted(
        {
            f"{k[0]} {k[1]} {k[2]}: {r['error']}"
            for k, runs in raw.items()
            for r in runs
            if "error" in r
        }
    )
    from report import machine_line

    load_after = os.getloadavg()
    gpu = device.startswith("cuda")
    if gpu and not card:
        card = torch.cuda.get_device_name(device)
    flags = f" --device {device} --rounds {rounds}" if gpu else ""
    machine = (
        f"{machine_line()}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    if from_log is not None:
        machine = (
            f"{card}; rendered with `--from-log` from the measurements that run printed "
            f"({from_log.name}; it stopped at its time limit before writing its table). A log "
            "holds no correctness figures, so the error columns are empty here; the CUDA "
            "kernels' exactness (output and gradients against the float64 reference) is checked "
            "by `tests/backbone` on CUDA: `bash benchmarks/gpu.sh tests`"
        )
    memory_note = (
        "- Peak memory: `torch.cuda.max_memory_allocated` during the call minus the memory allocated "
        "just before. It includes the inputs' gradients in forward+backward."
        if gpu
        else "- Peak memory: peak resident set size of the process during the call minus its size "
        "just before (`VmHWM` reset through `/proc/self/clear_refs`; `MALLOC_MMAP_THRESHOLD_=131072` "
        "so freed blocks leave at once). It includes the inputs' gradients in forward+backward."
    )
    lines = [
        f"## Attention: dense SDPA vs dilated attention (LongNet){' on ' + card if gpu else ''}",
        "",
        f"`.venv/bin/python benchmarks/attention.py --part attention{flags}`"
        + (f" ({elapsed / 60:.0f} min, torch {torch.__version__}). " if from_log is None else ". ")
        + f"Batch 1, {HEADS} heads, head dim {HEAD_DIM}, float32, device {device}"
        + ("" if gpu else f", {threads} thread(s) for every side")
        + f"; each figure is the median of {rounds} runs, each run one call"
        + ("" if gpu else " in a fresh subprocess")
        + " after a 2k-token warm-up, the methods in turn (A B C, C B A)"
        + (
            f"; on CUDA a run's time is the median of {GPU_REPEATS} further calls after that one "
            "(peak memory from the first)."
            if gpu
            else "."
        ),
        "",
        f"Machine: {machine}.",
        "",
        *rows,
        "",
        "- Schedule: the paper's pairs w = 2048, 4096, 8192, 16384, 32768 with r = 1, 2, 4, 6, 12, pairs with "
        "w > length dropped (so 2k is plain dense attention). At 32k these pairs cost about 13% of dense "
        "attention's work.",
        memory_note,
        "- Errors: largest absolute difference from the exact reference (one float64 softmax over the "
        "multiset union of the branches' keys, i.e. log-multiplicity added to the scores) for the output "
        "and for dQ, dK, dV (upstream gradient standard normal); *future leak*: largest change of the "
        "outputs before position T/2 when every token after it changes (0 = causal).",
        "- dilated-attention-pytorch 0.2.0 gives each branch only a group of heads (8 heads: 2, 2, 2, 1, 1), "
        "so at 32k it computes about 3.0% of dense attention's scores where the paper's definition (every "
        "head in every branch, as seqrl) computes 13.0%: 4.3x less work, which is why it is faster here. "
        "It normalises each branch by a sum over the whole sequence instead of its softmax denominators "
        "(so future tokens change past outputs; errors above), needs lengths divisible by every segment "
        "length, and its backward fails with a single branch (2k); its xformers call is replaced by "
        "torch SDPA here.",
        "- torchscale: its PyPI releases contain no LongNet dilated attention; the repository version is "
        "CUDA-only (flash-attention kernels) and computes the mixing weights without gradient, so it is "
        "not in the table.",
    ]
    if errors:
        lines.append(f"- Failed runs: {'; '.join(errors)}")
    return "\n".join(lines)


def pendulum_windows(
    episodes: int, steps: int, context: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-action Pendulum-v1 trajectories cut into windows: inputs (N, K, 4), targets (N, K, 3)."""
    import gymnasium as gym
    import numpy as np

    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 10_000 + ep)
        traj_in, traj_out = [], []
        for _ in range(steps):
            action = rng.uniform(-2, 2, size=1).astype(np.float32)
            nxt, _, _, _, _ = env.step(action)
            traj_in.append(np.concatenate([obs, action / 2]))
            traj_out.append(nxt - obs)
            obs = nxt
        a, b = np.asarray(traj_in, np.float32), np.asarray(traj_out, np.float32)
        for s in range(0, steps - context + 1, context):
            xs.append(a[s : s + context])
            ys.append(b[s : s + context])
    return torch.tensor(np.stack(xs)), torch.tensor(np.stack(ys))


def feedforward_table(quick: bool) -> str:
    """Train a tiny model per feed-forward variant (3 seeds) and tabulate held-out loss."""
    sys.path.insert(0, str(ROOT))
    from seqrl.backbone import Transformer, TransformerConfig

    torch.set_num_threads(1)  # tiny ops: one thread is fastest on a shared machine
    context, train_steps, seeds = 32, (60 if quick else 250), (0, 1, 2)
    train_x, train_y = pendulum_windows(100 if quick else 400, 192, context, seed=0)
    test_x, test_y = pendulum_windows(50, 192, context, seed=1)
    scale = train_y.std(dim=(0, 1))
    started = time.perf_counter()
    rows = []
    for kind in ("mlp", "glu", "bilinear", "reglu", "geglu", "swiglu"):
        losses, params = [], 0
        t0 = time.perf_counter()
        for seed in seeds:
            torch.manual_seed(seed)
            cfg = TransformerConfig(
                width=64,
                depth=2,
                heads=4,
                ff=kind,
                activation="gelu",
                positions="rotary",
                dropout=0.0,
            )
            body = Transformer(cfg)
            model = torch.nn.ModuleDict(
                {"inp": torch.nn.Linear(4, 64), "body": body, "out": torch.nn.Linear(64, 3)}
            )
            params = sum(p.numel() for blk in body.blocks for p in blk.ff.parameters())
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(train_steps):
                idx = torch.randint(0, len(train_x), (64,), generator=gen)
                pred = model["out"](model["body"](model["inp"](train_x[idx])))
                loss = F.mse_loss(pred / scale, train_y[idx] / scale)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                pred = model["out"](model["body"](model["inp"](test_x)))
                losses.append(F.mse_loss(pred / scale, test_y / scale).item())
        sec = (time.perf_counter() - t0) / len(seeds)
        mean, sd = statistics.mean(losses), statistics.stdev(losses)
        rows.append((kind, params, mean, sd, sec))
    best = min(r[2] for r in rows)
    from report import machine_line

    table = [
        "| feed-forward | FF parameters (2 layers) | held-out loss (mean ± sd, 3 seeds) | train s / run |",
        "|---|---|---|---|",
    ]
    for kind, params, mean, sd, sec in rows:
        cell = f"{mean:.4f} ± {sd:.4f}"
        table.append(
            f"| {kind} | {params:,} | {'**' + cell + '**' if mean == best else cell} | {sec:.1f} |"
        )
    return "\n".join(
        [
            "## Feed-forward variants at equal parameter count (Shazeer 2020, table 1 in spirit)",
            "",
            f"`.venv/bin/python benchmarks/attention.py --part feedforward` ({(time.perf_counter() - started) / 60:.1f} min). "
            f"Task: predict the next state change of Pendulum-v1 from (state, action) tokens, random "
            f"actions, {len(train_x)} training windows of {context} steps and {len(test_x)} held-out "
            f"windows from other episodes; a 2-layer, 64-wide, 4-head transformer (rotary positions, "
            f"no dropout), AdamW lr 1e-3, batch 64, {train_steps} steps, 1 thread. Loss: MSE of standardised "
            "targets on the held-out windows. The MLP uses GELU; GLU variants have hidden size "
            "2/3 * 4 * 64 rounded to a multiple of 8 (168 vs 256), so parameter counts match.",
            "",
            f"Machine: {machine_line()}.",
            "",
            *table,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["attention", "feedforward", "all"], default="all")
    parser.add_argument(
        "--quick", action="store_true", help="small lengths and few steps (smoke test)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs per measurement (median)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--no-write", action="store_true", help="print, do not touch docs/benchmarks.md"
    )
    parser.add_argument(
        "--from-log",
        type=Path,
        help="write the attention table of an earlier run from its printed measurements "
        "(e.g. a GPU run stopped at its time limit); give its --device and --card",
    )
    parser.add_argument("--card", default="", help="with --from-log: the run's GPU and torch")
    parser.add_argument(
        "--case", nargs=3, metavar=("IMPL", "LENGTH", "MODE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.case:
        impl, length, mode = args.case
        torch.set_num_threads(args.threads)
        print(json.dumps(run_case(impl, int(length), mode, args.device)))
        return 0
    from report import write_section

    if args.part in ("attention", "all"):
        lengths = [2048, 4096] if args.quick else [2048, 4096, 8192, 16384, 32768]
        long_lengths = [8192] if args.quick else [65536]
        if args.from_log is not None and not args.from_log.is_file():
            parser.error(f"--from-log {args.from_log}: no such file")
        if args.from_log is not None and args.device != "cpu" and not args.card:
            parser.error("--from-log of a GPU run needs --card (the run's GPU and torch)")
        section = attention_table(
            lengths,
            long_lengths,
            1 if args.quick else args.rounds,
            args.device,
            args.threads,
            from_log=args.from_log,
            card=args.card,
        )
        print(section)
        if not args.no_write:
            write_section(
                "attention" if args.device == "cpu" else f"attention-{args.device}", section
            )
    if args.part in ("feedforward", "all"):
        section = feedforward_table(args.quick)
        print(section)
        if not args.no_write:
            write_section("feedforward", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
