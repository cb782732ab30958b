"""Probe: does the IRIS GPT learn its tokens as well under ``--loop.precision bf16`` as in float32?

On a replay dataset of an ``iris-minatar`` run (``RUN/dataset``), trains the preset's tokenizer
(dead-code restarts every 20 batches, as the MinAtar trials) for ``--tokenizer-updates`` updates
in float32, freezes it, then trains the same GPT from the same weights and seeds once per
precision, and prints its token accuracy on one fixed batch of 64 windows (eval mode, float32)
every 300 updates. The components' optimisers come from ``IRIS.training_spec`` and the updates from
``seqrl.training.update``, as in the loop. A diagnostic, not a peer benchmark: docs/iris.md
(MinAtar section) quotes its output, before and after the tokenizer's float32 encoding::

    python benchmarks/probes/iris_bf16_tokens.py runs/trials/t6/dataset
"""

import argparse
import copy
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from seqrl.data import SequenceSampler, TrajectoryDataset
from seqrl.training import seed_everything, update
from seqrl.world_models.iris import build_world_model, iris_minatar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a replay dataset folder, e.g. runs/trials/t6/dataset")
    parser.add_argument("--tokenizer-updates", type=int, default=600)
    parser.add_argument("--updates", type=int, default=1200, help="GPT updates per precision")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = seed_everything(0)
    data = TrajectoryDataset.load(args.dataset)
    cfg = iris_minatar()
    cfg = replace(cfg, tokenizer=replace(cfg.tokenizer, restart_dead_codes=20))
    model = build_world_model(cfg, data.metadata.observation_space, data.metadata.action_space)

    def adam(name: str) -> tuple[torch.optim.Optimizer, Any]:
        spec = model.training_spec(name)
        params = model.components()[name].parameters()
        opt = torch.optim.Adam(params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay)
        return opt, spec

    opt, spec = adam("tokenizer")
    frames = SequenceSampler(data, seq_len=spec.seq_len, burn_in=spec.burn_in)
    model.train()
    start = time.time()
    for _ in range(args.tokenizer_updates):
        batch = frames.sample(spec.batch_size, rng)
        m = update(model.tokenizer.loss, batch, opt, clip_norm=spec.clip_norm)
    print(
        f"tokenizer: reconstruction {m['reconstruction_loss']:.4f}, codes used "
        f"{m['codebook_used']:.3f} ({time.time() - start:.0f} s)",
        flush=True,
    )
    weights = copy.deepcopy(model.state_dict())
    fixed = SequenceSampler(data, seq_len=20).sample(64, np.random.default_rng(123))
    for precision in args.precisions:
        model.load_state_dict(weights)
        seed_everything(1)
        batches = np.random.default_rng(1)
        opt, spec = adam("world_model")
        sequences = SequenceSampler(data, seq_len=spec.seq_len, burn_in=spec.burn_in)
        amp = torch.bfloat16 if precision == "bf16" else None
        model.train()
        start = time.time()
        for i in range(1, args.updates + 1):
            batch = sequences.sample(spec.batch_size, batches)
            m = update(model.dynamics.loss, batch, opt, clip_norm=spec.clip_norm, amp_dtype=amp)
            if i % 300 == 0:
                model.eval()
                with torch.no_grad():
                    held = model.dynamics.loss(fixed).metrics
                model.train()
                print(
                    f"{precision} {i}: training batch accuracy {m['obs_accuracy']:.3f}, fixed "
                    f"batch accuracy {held['obs_accuracy']:.3f} (obs loss {held['obs_loss']:.3f}, "
                    f"{time.time() - start:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
