"""World-model agent speed at the paper's configuration: TWM (and IRIS when its module is ready).

Papers: TWM, Robine et al. 2023, https://arxiv.org/abs/2303.07109 (about 10 h per Atari 100k run
on one A100); IRIS, Micheli et al. 2023, https://arxiv.org/abs/2209.00588 (about 3.5 A100-days).

Everything runs as ``seqrl train twm --preset twm-atari100k`` runs it (``world_models/loop.py``),
on synthetic data instead of an emulator: random uint8 frames (4 stacked 64x64 grayscale, 6
actions) in a :class:`seqrl.data.ReplayBuffer`, sampled by :class:`seqrl.data.SequenceSampler`
(world-model batches with TWM's visit-count weights), the preset's world model, actor-critic and
optimizers, and :func:`seqrl.training.update`. Measured, each as seconds per iteration (medians):

1. **World-model update** (sample + ``.to(device)`` + one update), batch ``100 x (1 + 16)``; the
   observation-model-only pretraining update (``pretrain_loss``) separately.
2. **Actor-critic update**: sample 400 contexts of ``burn_in + 1`` real steps, ``imagine`` 15
   steps (KV-cached), one update; the phases are timed separately, and imagined steps per second
   are ``400 x 15 / imagination time`` (the burn-in on the context included).
3. **Cached vs. uncached imagination** (A B A B in one process): ``imagine`` against the same
   rollout that re-runs ``wm.transformer`` over the whole token sequence at every imagined step
   (no KV cache). Before timing, both are run from one seed with the most likely latents: the
   uncached rollout must equal the cached one with an unbounded cache at every step, and the
   preset's cached rollout (16-step memory) at the first step (later steps differ by design: the
   memory drops the oldest tokens).
4. **Acting**: one :class:`WorldModelAgent` ``act`` + ``observe`` with 1 env (as collection),
   no emulator.
5. **Projection** of a full run from these rates (formula in the output).

Run from the repository root::

    .venv/bin/python benchmarks/world_models.py                 # CPU; writes docs/benchmarks.md
    .venv/bin/python benchmarks/world_models.py --device cuda   # a GPU machine (torch + the repo)
    .venv/bin/python benchmarks/world_models.py --quick         # smoke run, small batches, no docs

Needs only torch, numpy, gymnasium and the repository (no emulator, no downloads).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
PAPER_TWM_A100_HOURS = 10.0  # /work/shared/reference/PAPERS.md: about 10 h on one A100
PAPER_IRIS_A100_HOURS = 3.5 * 24  # about 3.5 A100-days
TARGET_H100_HOURS = 12.0  # DESIGN.md: a full run of at most 12 h on one H100


# --- setup --------------------------------------------------------------------------------------


def observation_space(env_cfg: Any) -> Any:
    """The single-env observation space of an Atari preset, as ``make_atari_env`` produces it."""
    from gymnasium import spaces

    atari = env_cfg.atari
    size = atari.screen_size
    shape: tuple[int, ...] = (size, size) if atari.color == "gray" else (size, size, 3)
    if atari.frame_stack > 1:
        shape = (atari.frame_stack, *shape)
    return spaces.Box(0, 255, shape, np.uint8)


def fill_replay(replay: Any, steps: int, rng: np.random.Generator) -> None:
    """``steps`` random steps in episodes of 100-2000 steps (random frames, sparse rewards)."""
    shape = replay.observation_space.shape
    num_actions = int(replay.action_space.n)
    left_in_episode = int(rng.integers(100, 2001))
    chunk = 1000
    for first in range(0, steps, chunk):
        n = min(chunk, steps - first)
        frames = rng.integers(0, 256, size=(n + 1, *shape), dtype=np.uint8)
        actions = rng.integers(0, num_actions, size=n)
        rewards = (rng.random(n) < 0.05).astype(np.float32)
        for i in range(n):
            left_in_episode -= 1
            last = left_in_episode == 0 or first + i == steps - 1
            replay.add(
                frames[i : i + 1],
                actions[i : i + 1],
                rewards[i : i + 1],
                np.array([last]),
                np.array([False]),
                final_observations=frames[i + 1 : i + 2],
            )
            if last:
                left_in_episode = int(rng.integers(100, 2001))


@dataclass
class Setup:
    """One algorithm at its preset: models, optimizers and samplers as the loop builds them."""

    name: str
    cfg: Any
    world_model: Any
    actor_critic: Any
    components: dict[str, torch.nn.Module]
    specs: dict[str, Any]
    wm_optimizers: dict[str, torch.optim.Optimizer]
    wm_samplers: dict[str, Any]
    ac_optimizer: torch.optim.Optimizer
    ac_sampler: Any
    frame_stack: int
    obs_space: Any
    device: torch.device
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per component; default: spec's


def build_setup(
    name: str,
    cfg: Any,
    build_world_model: Callable[[Any, Any, Any], torch.nn.Module],
    replay_steps: int,
    device: torch.device,
    seed: int,
) -> Setup:
    """Models, optimizers, a replay buffer of ``replay_steps`` random steps and the samplers."""
    from gymnasium import spaces
    from seqrl.data import ReplayBuffer
    from seqrl.training import seed_everything
    from seqrl.world_models.loop import build_learner, make_samplers

    rng = seed_everything(seed)
    obs_space, act_space = observation_space(cfg.env), spaces.Discrete(6)
    learner = build_learner(cfg, obs_space, act_space, build_world_model, device)
    replay = ReplayBuffer(replay_steps + 1, 1, obs_space, act_space, env_id="synthetic")
    fill_replay(replay, replay_steps, rng)
    wm_samplers, ac_sampler = make_samplers(learner, replay, cfg)
    return Setup(
        name=name,
        cfg=cfg,
        world_model=learner.world_model,
        actor_critic=learner.actor_critic,
        components=learner.components,
        specs=learner.specs,
        wm_optimizers=learner.wm_optimizers,
        wm_samplers=wm_samplers,
        ac_optimizer=learner.ac_optimizer,
        ac_sampler=ac_sampler,
        frame_stack=learner.frame_stack,
        obs_space=obs_space,
        device=device,
    )


# --- timing -------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def autocast(device: torch.device, amp: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` on ``device`` when ``amp`` is a dtype, else nothing."""
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        yield


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` takes (synchronised) and its result."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def repeat(device: torch.device, fn: Callable[[], Any], warmup: int, iters: int) -> list[float]:
    """Seconds of each of ``iters`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return [timed(device, fn)[0] for _ in range(iters)]


def wm_update_times(
    s: Setup,
    name: str,
    rng: np.random.Generator,
    warmup: int,
    iters: int,
    amp: torch.dtype | None,
    pretrain: bool,
) -> list[float]:
    """Seconds per world-model update of component ``name`` (sample + transfer + update)."""
    from seqrl.training import update

    module, spec = s.components[name], s.specs[name]
    loss_fn = getattr(module, "pretrain_loss", module.loss) if pretrain else module.loss
    batch_size = s.batch_sizes.get(name, spec.batch_size)

    def step() -> None:
        batch = s.wm_samplers[name].sample(batch_size, rng).to(s.device)
        update(loss_fn, batch, s.wm_optimizers[name], clip_norm=spec.clip_norm, amp_dtype=amp)

    s.world_model.train()
    return repeat(s.device, step, warmup, iters)


def ac_update_times(
    s: Setup,
    rng: np.random.Generator,
    batch_size: int,
    warmup: int,
    iters: int,
    amp: torch.dtype | None,
) -> dict[str, list[float]]:
    """Seconds per actor-critic update and per phase (``sample``, ``imagine``, ``update``)."""
    from seqrl.training import update
    from seqrl.world_models.imagination import imagine

    ac_cfg = s.cfg.actor_critic
    out: dict[str, list[float]] = {"sample": [], "imagine": [], "update": [], "total": []}
    s.world_model.train()
    s.actor_critic.train()
    for i in range(warmup + iters):
        t_sample, context = timed(
            s.device, lambda: s.ac_sampler.sample(batch_size, rng).to(s.device)
        )
        with autocast(s.device, amp):
            t_imagine, rollout = timed(
                s.device,
                lambda c=context: imagine(s.world_model, s.actor_critic, c, ac_cfg.horizon),
            )

        def learn(r: Any = rollout) -> None:
            update(
                s.actor_critic.loss,
                r,
                s.ac_optimizer,
                clip_norm=ac_cfg.grad_clip or None,
                amp_dtype=amp,
            )
            s.actor_critic.after_update()

        t_update, _ = timed(s.device, learn)
        if i >= warmup:
            out["sample"].append(t_sample)
            out["imagine"].append(t_imagine)
            out["update"].append(t_update)
            out["total"].append(t_sample + t_imagine + t_update)
    return out


def acting_times(
    s: Setup, warmup: int, iters: int, amp: torch.dtype | None, seed: int
) -> list[float]:
    """Seconds per agent step (``act`` + ``observe``) with 1 env, on random frames."""
    from seqrl.world_models.agent import WorldModelAgent

    agent = WorldModelAgent(
        s.world_model,
        s.actor_critic,
        context_len=s.cfg.actor_critic.burn_in + 1,
        frame_stack=s.frame_stack,
        epsilon=s.cfg.collect.epsilon,
        temperature=s.cfg.collect.temperature,
        seed=seed,
        device=s.device,
    )
    s.world_model.eval()
    s.actor_critic.eval()
    agent.reset(1)
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(8, 1, *s.obs_space.shape), dtype=np.uint8)
    rewards, dones = np.zeros(1, np.float32), np.zeros(1, bool)
    # fill the agent's context first: from then on every step hands the full context to the model
    for t in range(agent.context_len):
        agent.act(frames[t % len(frames)])
        agent.observe(rewards, dones)
    counter = iter(range(10**9))

    def step() -> None:
        agent.act(frames[next(counter) % len(frames)])
        agent.observe(rewards, dones)

    with autocast(s.device, amp):
        times = repeat(s.device, step, warmup, iters)
    s.world_model.train()
    s.actor_critic.train()
    return times


# --- uncached imagination (the peer) -------------------------------------------------------------


@torch.no_grad()
def imagine_uncached(
    wm: Any, ac: Any, context: Any, horizon: int, *, temperature: float = 1.0
) -> dict[str, torch.Tensor]:
    """TWM imagination without a KV cache: every step re-runs ``wm.transformer`` over all tokens.

    The same rollout as :func:`seqrl.world_models.imagination.imagine` (same random draws in the
    same order) except that the transformer attends to the whole sequence (an unbounded memory).
    One transformer pass per step ends at the action token, whose output predicts the reward,
    the continue probability and the next latent; a second pass (through the new latent token) is
    only needed when the policy reads the transformer output (``policy_input = z_h``).
    Returns time-major ``features`` (H + 1, B, F), ``actions``, ``rewards``, ``continues`` (H, B).
    """
    from seqrl.world_models.imagination import sample_actions

    was_training = wm.training
    wm.eval()
    try:
        mode = wm.cfg.latents == "mode"
        obs, mask = context.observations, context.mask.bool()
        b, t = mask.shape
        z = wm.obs_model.sample(wm.obs_model.logits(obs), mode=mode)
        rewards_in = wm._reward_input(context.rewards[:, : t - 1])
        tokens = torch.cat(
            (
                wm._tokens(z[:, :-1], context.actions[:, : t - 1], rewards_in),
                wm.embed_z(z[:, -1:]),
            ),
            dim=1,
        )
        token_mask = mask.repeat_interleave(3, dim=1)[:, : 3 * t - 2]
        padded = not bool(token_mask.all())
        y = wm.transformer(tokens, padding_mask=token_mask if padded else None)
        context_features = wm._features(z, y[:, 0::3])
        policy_state = ac.burn_in(context_features[:, :-1], context.mask[:, :-1])
        feature = context_features[:, -1]
        features, actions, rewards, continues = [feature], [], [], []
        ones = torch.ones(b, 3, dtype=torch.bool, device=token_mask.device)
        for _ in range(horizon):
            logits, _, policy_state = ac.step(feature, policy_state)
            action, _ = sample_actions(logits, temperature)
            tokens = torch.cat((tokens, wm.embed_a(action.long())[:, None]), dim=1)
            token_mask = torch.cat((token_mask, ones[:, :1]), dim=1)
            h = wm.transformer(tokens, padding_mask=token_mask if padded else None)[:, -1]
            reward = wm.reward_head(h).squeeze(-1)
            cont = torch.sigmoid(wm.discount_head(h).squeeze(-1))
            z_next = wm.obs_model.sample(wm._z_logits(h), mode=mode)
            new = torch.stack((wm.embed_r(reward[:, None]), wm.embed_z(z_next)), dim=1)
            tokens = torch.cat((tokens, new), dim=1)
            token_mask = torch.cat((token_mask, ones[:, :2]), dim=1)
            if wm.cfg.policy_input == "z":
                feature = z_next
            else:
                y = wm.transformer(tokens, padding_mask=token_mask if padded else None)
                feature = wm._features(z_next, y[:, -1])
            features.append(feature)
            actions.append(action)
            rewards.append(reward.float())
            continues.append(cont.float())
    finally:
        wm.train(was_training)
    return {
        "features": torch.stack(features),
        "actions": torch.stack(actions),
        "rewards": torch.stack(rewards),
        "continues": torch.stack(continues),
    }


@torch.no_grad()
def imagine_cached(
    wm: Any, ac: Any, context: Any, horizon: int, *, unbounded: bool
) -> dict[str, torch.Tensor]:
    """``imagine``'s rollout through ``imagine_start``/``imagine_step`` (same draws), optionally
    with an unbounded KV cache instead of the preset's memory."""
    from seqrl.world_models.imagination import imagine, sample_actions

    if not unbounded:
        r = imagine(wm, ac, context, horizon)
        return {
            "features": r.features,
            "actions": r.actions,
            "rewards": r.rewards,
            "continues": r.continues,
        }
    was_training = wm.training
    wm.eval()
    try:
        state, context_features = wm.imagine_start(context)
        state.cache.keep = None  # nothing was cropped yet: the context is shorter than the memory
        policy_state = ac.burn_in(context_features[:, :-1], context.mask[:, :-1])
        feature = context_features[:, -1]
        features, actions, rewards, continues = [feature], [], [], []
        for _ in range(horizon):
            logits, _, policy_state = ac.step(feature, policy_state)
            action, _ = sample_actions(logits, 1.0)
            state, out = wm.imagine_step(state, action)
            feature = out.features
            features.append(feature)
            actions.append(action)
            rewards.append(out.rewards.float())
            continues.append(out.continues.float())
    finally:
        wm.train(was_training)
    return {
        "features": torch.stack(features),
        "actions": torch.stack(actions),
        "rewards": torch.stack(rewards),
        "continues": torch.stack(continues),
    }


def check_uncached(s: Setup, batch_size: int, horizon: int, seed: int) -> list[str]:
    """Compare the uncached rollout with the cached ones (most likely latents, one seed).

    Raises SystemExit when the uncached rollout does not match the unbounded cached one or the
    first step of the preset's; returns lines describing the differences.
    """
    wm = s.world_model
    saved = wm.cfg
    wm.cfg = dataclasses.replace(saved, latents="mode")
    try:
        context = s.ac_sampler.sample(batch_size, np.random.default_rng(seed)).to(s.device)
        runs = {}
        for key, fn in (
            ("uncached", lambda: imagine_uncached(wm, s.actor_critic, context, horizon)),
            (
                "unbounded",
                lambda: imagine_cached(wm, s.actor_critic, context, horizon, unbounded=True),
            ),
            (
                "memory",
                lambda: imagine_cached(wm, s.actor_critic, context, horizon, unbounded=False),
            ),
        ):
            torch.manual_seed(seed)
            if s.device.type == "cuda":
                torch.cuda.manual_seed_all(seed)
            runs[key] = fn()
    finally:
        wm.cfg = saved

    def diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], steps: slice) -> float:
        return max(
            float((a[k][steps].float() - b[k][steps].float()).abs().max())
            for k in ("rewards", "continues")
        )

    def same_discrete(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], n: int) -> bool:
        return bool(
            torch.equal(a["actions"][:n], b["actions"][:n])
            and torch.equal(a["features"][: n + 1], b["features"][: n + 1])
        )

    u, c, m = runs["uncached"], runs["unbounded"], runs["memory"]
    tol = 1e-3 if s.device.type == "cuda" else 1e-4
    full = diff(u, c, slice(None))
    first = diff(u, m, slice(0, 1))
    later = diff(u, m, slice(1, None)) if horizon > 1 else 0.0
    if not same_discrete(u, c, horizon) or full > tol:
        raise SystemExit(
            f"uncached imagination differs from the unbounded cache (max |diff| {full:.2e}, "
            f"latents/actions equal: {same_discrete(u, c, horizon)})"
        )
    if not same_discrete(u, m, 1) or first > tol:
        raise SystemExit(f"uncached imagination differs at step 1 from imagine() ({first:.2e})")
    return [
        f"uncached == cached with an unbounded cache over all {horizon} steps (latents, actions "
        f"equal; rewards/continues max |diff| {full:.1e}); == `imagine()` (16-step memory) at "
        f"step 1 (max |diff| {first:.1e}); from step 2 on `imagine()` attends to the last 16 "
        f"steps only (max |diff| {later:.1e} there, by design)"
    ]


def peer_times(
    s: Setup, batch_size: int, rounds: int, iters: int, warmup: int, amp: torch.dtype | None
) -> dict[str, list[float]]:
    """A B A B: seconds per rollout of ``imagine`` (cached) and of :func:`imagine_uncached`."""
    from seqrl.world_models.imagination import imagine

    horizon = s.cfg.actor_critic.horizon
    context = s.ac_sampler.sample(batch_size, np.random.default_rng(1)).to(s.device)
    fns = {
        "cached": lambda: imagine(s.world_model, s.actor_critic, context, horizon),
        "uncached": lambda: imagine_uncached(s.world_model, s.actor_critic, context, horizon),
    }
    out: dict[str, list[float]] = {k: [] for k in fns}
    with autocast(s.device, amp):
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        for _ in range(rounds):
            for k, fn in fns.items():
                out[k].append(statistics.median(repeat(s.device, fn, 0, iters)))
    return out


def iris_decoding_times(
    s: Setup, batch: int, rounds: int, warmup: int, amp: torch.dtype | None
) -> tuple[dict[str, list[float]], str]:
    """A B A B: seconds per ``imagine`` rollout of IRIS with ``decoding`` graph and cache, after
    checking that both give the same argmax open-loop prediction."""
    from seqrl.world_models.imagination import imagine

    wm, horizon = s.world_model, s.cfg.actor_critic.horizon
    context = s.ac_sampler.sample(batch, np.random.default_rng(2)).to(s.device)
    actions = torch.randint(0, 6, (batch, horizon), generator=torch.Generator().manual_seed(3))
    actions = actions.to(s.device)
    predicted = {}
    out: dict[str, list[float]] = {"graph": [], "cache": []}

    def run(mode: str) -> Any:
        wm.cfg.decoding = mode
        return imagine(wm, s.actor_critic, context, horizon)

    was_training = wm.training
    try:
        with autocast(s.device, amp):
            wm.eval()  # dropout off, as in imagine()
            for mode in out:
                wm.cfg.decoding = mode
                predicted[mode] = wm.predict(context, actions, horizon).float()
            wm.train(was_training)
            for mode in out:
                for _ in range(warmup):
                    run(mode)
            for _ in range(rounds):
                for mode in out:
                    out[mode].append(
                        statistics.median(repeat(s.device, lambda m=mode: run(m), 0, 1))
                    )
    finally:
        wm.cfg.decoding = "auto"
    diff = float((predicted["graph"] - predicted["cache"]).abs().max())
    same = float((predicted["graph"] == predicted["cache"]).float().mean())
    return out, (
        f"argmax open-loop prediction of {batch} x {horizon} frames: graph vs cache decoding "
        f"max |diff| {diff:.1e}, {100 * same:.2f}% of pixel values identical"
    )


# --- the report ---------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    """Median."""
    return statistics.median(values)


def fmt_ms(values: list[float]) -> str:
    """``median (each)`` in milliseconds; ``median (min-max of n)`` for more than 5 values."""
    if len(values) > 5:
        spread = f"{1e3 * min(values):,.1f}-{1e3 * max(values):,.1f} of {len(values)}"
        return f"{1e3 * med(values):,.1f} ms ({spread})"
    each = ", ".join(f"{1e3 * v:,.0f}" for v in values)
    return f"{1e3 * med(values):,.1f} ms ({each})"


def iris_setup(
    replay_steps: int, device: torch.device, seed: int, compile: bool = False
) -> tuple[Setup | None, str]:
    """The IRIS setup when ``seqrl.world_models.iris`` and its preset are ready, else a note.

    Hook: IRIS must offer ``seqrl.world_models.iris.build_world_model(cfg, obs_space,
    act_space)`` with ``components()`` (tokenizer, world_model) and ``training_spec(name)``, and
    ``seqrl.world_models.train_iris.PRESETS["iris-atari100k"]`` (config as TWM's, with a
    ``<component>_train`` schedule per component).
    """
    try:
        from seqrl.world_models import iris
        from seqrl.world_models.train_iris import PRESETS
    except ImportError as exc:
        return None, f"IRIS not measured: {exc}"
    try:
        cfg = PRESETS["iris-atari100k"]()
        cfg.world_model.compile = compile
        setup = build_setup("IRIS", cfg, iris.build_world_model, replay_steps, device, seed)
        for name in setup.components:
            if not hasattr(cfg, f"{name}_train"):
                raise AttributeError(f"the preset has no schedule '{name}_train'")
    except Exception as exc:  # the API is being written: report what is missing, measure TWM
        return None, f"IRIS not measured: its API is not ready ({type(exc).__name__}: {exc})"
    return setup, ""


def said(s: Setup, label: str, times: list[float]) -> None:
    """Print one row's median as soon as it is measured (a cut-off run keeps what it had)."""
    print(f"{s.name}: {label}: median {fmt_ms(times)}", flush=True)


def measure(s: Setup, args: argparse.Namespace, amp: torch.dtype | None) -> dict[str, Any]:
    """All measurements of one setup: per-iteration seconds by row, and the update counts."""
    rng = np.random.default_rng(args.seed)
    res: dict[str, Any] = {"rows": {}, "counts": {}}
    steps = s.cfg.collect.steps + s.cfg.collect.train_only  # the schedules' last step
    s.batch_sizes = {n: args.wm_batch or spec.batch_size for n, spec in s.specs.items()}
    for name in s.components:
        schedule = getattr(s.cfg, f"{name}_train")
        total, pre = schedule.due(steps), schedule.pretrain
        if pre:
            label = f"{name} pretraining update" + (
                " (`pretrain_loss`)" if hasattr(s.components[name], "pretrain_loss") else ""
            )
            print(f"{s.name}: timing {label}", flush=True)
            res["rows"][label] = wm_update_times(
                s, name, rng, args.warmup, args.iters, amp, pretrain=True
            )
            res["counts"][label] = pre
            said(s, label, res["rows"][label])
        label = f"{name} update"
        print(f"{s.name}: timing {label}", flush=True)
        res["rows"][label] = wm_update_times(
            s, name, rng, args.warmup, args.iters, amp, pretrain=False
        )
        res["counts"][label] = total - pre
        said(s, label, res["rows"][label])
    ac_batch = args.ac_batch or s.cfg.actor_critic.batch_size
    print(f"{s.name}: timing actor-critic updates", flush=True)
    phases = ac_update_times(s, rng, ac_batch, args.warmup, args.iters, amp)
    res["phases"] = phases
    res["rows"]["actor-critic update (sample + imagine + update)"] = phases["total"]
    res["counts"]["actor-critic update (sample + imagine + update)"] = s.cfg.actor_critic_train.due(
        steps
    )
    res["ac_batch"] = ac_batch
    said(s, "actor-critic update", phases["total"])
    said(s, "of which imagination", phases["imagine"])
    print(f"{s.name}: timing acting", flush=True)
    res["rows"]["acting (agent step, 1 env, no emulator)"] = acting_times(
        s, args.warmup, args.acting_steps, amp, args.seed
    )
    said(s, "acting", res["rows"]["acting (agent step, 1 env, no emulator)"])
    res["counts"]["acting (agent step, 1 env, no emulator)"] = s.cfg.collect.steps
    return res


def table(s: Setup, res: dict[str, Any]) -> tuple[list[str], float]:
    """Markdown rows of one setup and its projected full-run hours."""
    rows = []
    hours = 0.0
    for label, times in res["rows"].items():
        count = res["counts"][label]
        cost = count * med(times) / 3600
        hours += cost
        rows.append(
            f"| {s.name} {label} | {1 / med(times):,.2f}/s | {fmt_ms(times)} | {count:,} | "
            f"{cost:,.2f} h |"
        )
    phases = res["phases"]
    horizon = s.cfg.actor_critic.horizon
    b = res["ac_batch"]
    rows.append(
        f"| {s.name} of which imagination ({b} x {horizon}, KV cache) | "
        f"**{b * horizon / med(phases['imagine']):,.0f} imagined steps/s** | "
        f"{fmt_ms(phases['imagine'])} | | |"
    )
    rows.append(
        f"| {s.name} of which context sampling / actor-critic update | | "
        f"{1e3 * med(phases['sample']):,.1f} / {1e3 * med(phases['update']):,.1f} ms | | |"
    )
    return rows, hours


def main() -> None:
    """Measure, print the table and write the ``world-models`` section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per row")
    parser.add_argument("--acting-steps", type=int, default=None, help="timed agent steps")
    parser.add_argument("--rounds", type=int, default=None, help="cached/uncached A B rounds")
    parser.add_argument(
        "--peer-batch",
        type=int,
        default=None,
        help="rollouts in the cached/uncached comparison (default: 400 on cuda, 32 on cpu)",
    )
    parser.add_argument(
        "--replay-steps",
        type=int,
        default=None,
        help="synthetic steps in the replay buffer (default 50000, the run's mean size)",
    )
    parser.add_argument(
        "--amp",
        choices=("none", "bf16"),
        default="none",
        help="autocast every row, imagination included (the loop's --loop.precision bf16 "
        "autocasts the world-model updates only)",
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="cuda: allow TF32 matmuls (off in torch and in the loop by default)",
    )
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="cuda: let cuDNN time its convolution algorithms per shape (off in torch and the loop)",
    )
    parser.add_argument(
        "--iris-compile",
        action="store_true",
        help="IRIS with world_model.compile (torch.compile of the tokenizer's networks); "
        "compiling happens in the untimed warm-up iterations; the "
        "graph/cache A B table is skipped (each decoding would compile anew)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--iris",
        choices=("auto", "on", "off"),
        default="auto",
        help="IRIS rows too (auto: on cuda only; at the paper config an IRIS actor-critic "
        "update takes minutes on one CPU core)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: batches 4-8, one iteration, small replay; prints, writes no docs",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    device = torch.device(args.device)
    gpu = args.device == "cuda"
    quick = args.quick
    defaults = {
        "warmup": 0 if quick else (3 if gpu else 1),
        "iters": 1 if quick else (20 if gpu else 2),
        "acting_steps": 3 if quick else (200 if gpu else 20),
        "rounds": 1 if quick else (3 if gpu else 2),
        "peer_batch": 4 if quick else (400 if gpu else 32),
        "replay_steps": 3000 if quick else 50_000,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.wm_batch = 4 if quick else None
    args.ac_batch = 8 if quick else None
    amp = torch.bfloat16 if args.amp == "bf16" else None
    if gpu and args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if gpu and args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True

    sys.path.insert(0, str(HERE))
    from report import machine_line, write_section
    from seqrl.world_models.train_twm import twm_atari100k
    from seqrl.world_models.twm import build_world_model

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    caption = machine_line()
    if gpu:
        caption = f"{torch.cuda.get_device_name(device)}; host: {caption}"
    print(caption, flush=True)

    print(f"TWM: building the model and {args.replay_steps:,} synthetic replay steps", flush=True)
    setups = [
        build_setup("TWM", twm_atari100k(), build_world_model, args.replay_steps, device, args.seed)
    ]
    with_iris = args.iris == "on" or (args.iris == "auto" and gpu)
    iris_note = (
        "IRIS not measured here (`--iris auto` measures it on cuda only: at the paper's "
        "configuration one IRIS actor-critic update takes minutes on one CPU core; "
        "`--iris on` forces it)."
    )
    if with_iris:
        iris, iris_note = iris_setup(args.replay_steps, device, args.seed, args.iris_compile)
        if iris is not None:
            setups.append(iris)

    twm = setups[0]
    horizon = twm.cfg.actor_critic.horizon
    print("TWM: checking uncached against cached imagination", flush=True)
    check = check_uncached(twm, min(args.peer_batch, 8), min(horizon, 6), args.seed)
    results = {}
    for s in setups:
        results[s.name] = measure(s, args, amp)
    print("TWM: cached vs uncached imagination", flush=True)
    peer = peer_times(twm, args.peer_batch, args.rounds, 1, 1 if gpu or not quick else 0, amp)
    ratios = [u / c for c, u in zip(peer["cached"], peer["uncached"], strict=True)]
    iris_decoding = None
    if len(setups) > 1 and not args.iris_compile:  # compiled: new graphs per mode, minutes
        print("IRIS: graph vs cache decoding", flush=True)
        ib = args.ac_batch or setups[1].cfg.actor_critic.batch_size
        iris_decoding = iris_decoding_times(setups[1], ib, args.rounds, 1, amp)
    load_after = os.getloadavg()[0]

    rows = [
        "| measurement | rate | time per iteration: median (each, or min-max of n) | count in a full run | "
        "projected share |",
        "|---|---|---|---|---|",
    ]
    projected: dict[str, float] = {}
    for s in setups:
        part, hours = table(s, results[s.name])
        rows += part
        projected[s.name] = hours
        reference = PAPER_TWM_A100_HOURS if s.name == "TWM" else PAPER_IRIS_A100_HOURS
        rows.append(
            f"| **{s.name} projected full Atari 100k run** | | | | **{hours:,.2f} h** "
            f"(paper: about {reference:g} h on one A100; target <= {TARGET_H100_HOURS:g} h on one H100) |"
        )
    pb = args.peer_batch
    rows += [
        "",
        f"| TWM imagination, {pb} rollouts x {horizon} steps, A B rounds | cached (`imagine`) | "
        "uncached (full re-run per step) | uncached / cached |",
        "|---|---|---|---|",
        f"| seconds per rollout batch: median (rounds) | {fmt_ms(peer['cached'])} | "
        f"{fmt_ms(peer['uncached'])} | **{med(ratios):.2f}x** "
        f"({', '.join(f'{r:.2f}' for r in ratios)}) |",
        f"| imagined steps/s | {pb * horizon / med(peer['cached']):,.0f} | "
        f"{pb * horizon / med(peer['uncached']):,.0f} | |",
    ]
    if iris_decoding is not None:
        times, _ = iris_decoding
        ih = setups[1].cfg.actor_critic.horizon
        gain = [c / g for g, c in zip(times["graph"], times["cache"], strict=True)]
        rows += [
            "",
            f"| IRIS imagination, {ib} rollouts x {ih} frames, A B rounds | `decoding graph` "
            "(CUDA graph per frame) | `decoding cache` (one launch sequence per token) | "
            "cache / graph |",
            "|---|---|---|---|",
            f"| seconds per rollout batch: median (rounds) | {fmt_ms(times['graph'])} | "
            f"{fmt_ms(times['cache'])} | **{med(gain):.2f}x** "
            f"({', '.join(f'{r:.2f}' for r in gain)}) |",
            f"| imagined steps/s | {ib * ih / med(times['graph']):,.0f} | "
            f"{ib * ih / med(times['cache']):,.0f} | |",
        ]

    wm_cfg = twm.cfg.world_model
    ac_cfg = twm.cfg.actor_critic
    minutes = (time.perf_counter() - started) / 60
    precision = f"autocast {args.amp}"
    if gpu:
        precision += (
            f", TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'} "
            f"(cuDNN convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}), "
            f"cuDNN benchmark {'on' if torch.backends.cudnn.benchmark else 'off'}, "
            f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
        )
    threads = torch.get_num_threads()
    counts = results["TWM"]["counts"]
    notes = [
        f"TWM at `twm-atari100k` ({sum(p.numel() for p in twm.world_model.parameters()):,} "
        f"world-model and {sum(p.numel() for p in twm.actor_critic.parameters()):,} actor-critic "
        f"parameters): world-model batch {args.wm_batch or wm_cfg.batch_size} x "
        f"({wm_cfg.burn_in} + {wm_cfg.sequence_length}) steps, actor-critic batch "
        f"{args.ac_batch or ac_cfg.batch_size}, burn-in {ac_cfg.burn_in}, horizon {horizon}; "
        f"observations (4, 64, 64) uint8, 6 actions; torch {torch.__version__} on {args.device}, "
        f"{threads} torch thread{'s' if threads > 1 else ''}, {precision}; "
        f"{args.iters} timed iteration(s) after {args.warmup} untimed per row "
        f"({args.acting_steps} timed agent steps; cached/uncached: {args.rounds} A B rounds); "
        f"replay buffer of {args.replay_steps:,} random steps (TWM's visit-count sampling); "
        f"load average (1 min) {load_before:.2f} before, {load_after:.2f} after; "
        f"the run took {minutes:.1f} min.",
        "",
        "Projection: hours = (18,750 x pretraining update + "
        f"{counts['world_model update']:,} x world-model update + "
        f"{counts['actor-critic update (sample + imagine + update)']:,} x actor-critic update "
        f"+ {twm.cfg.collect.steps:,} x agent step) / 3600, each at its median time above; the "
        "counts are the preset's schedules at 100k env steps (pretraining on the 5k-step "
        "prefill, then 1/0.76 updates of each part per env step). Not included: emulator "
        "steps, the 5k-step random prefill's policy cost (counted as agent steps: a slight "
        "over-estimate), evaluation (every 5k steps 10 episodes, 100 at the end: its agent steps "
        "cost the acting rate above each), logging and checkpoints (the replay buffer, up to "
        "1.6 GB, every 10k steps).",
        "",
        f"Cached vs. uncached: {check[0]}. The uncached peer re-runs `wm.transformer` over all "
        f"tokens of the context (3 x {ac_cfg.burn_in + 1} - 2) and the rollout so far at every "
        "step, one pass per step (it needs no pass through the new latent token: the policy "
        "reads only z); both include the encoder on the context frames.",
        "",
        iris_note
        if len(setups) == 1
        else "IRIS measured with its `iris-atari100k` preset"
        + (" and `world_model.compile` (torch.compile)" if args.iris_compile else "")
        + "; its counts include the paper's 100 training-only epochs after the 100k steps "
        "(`collect.train_only`).",
    ]
    if iris_decoding is not None:
        notes += [
            "",
            f"IRIS decoding: the rows above use `decoding auto` (graph on CUDA, cache on the "
            f"CPU); the A B table runs `imagine` with each. Check: {iris_decoding[1]}.",
        ]
    if quick:
        notes.insert(1, "**Smoke run (`--quick`): batches shrunk; the figures mean nothing.**")
    if not gpu:
        notes.append(
            "\nOn the CPU the paper configuration is heavy: few iterations per row "
            "(one update takes tens of seconds on one core), the cached/uncached comparison at a smaller batch "
            f"({pb}); the projection shows the order of magnitude only. The GPU figures come "
            "from `--device cuda`."
        )
    text = "\n".join(rows)
    print()
    print(text)
    print()
    print("\n".join(notes))
    if not args.no_write and not quick:
        command = " ".join([".venv/bin/python benchmarks/world_models.py", *sys.argv[1:]])
        markdown = (
            f"## World models: TWM{' and IRIS' if len(setups) > 1 else ''} speed at the paper's "
            f"configuration ({args.device})\n\n"
            f"`{command}`  \n{caption}\n\n{text}\n\n" + "\n".join(notes)
        )
        section = "world-models" if not gpu else "world-models-cuda"
        print(f"wrote {write_section(section, markdown)}")


if __name__ == "__main__":
    main()
