"""Decision Transformer contracts: shapes, cached decoding, save/load, learning, presets."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from einops import rearrange
from gymnasium import spaces
from seqrl.agents.dt import DTAgent, DTConfig, build_model, model_from_checkpoint
from seqrl.backbone import TransformerConfig
from seqrl.checkpoint import load_checkpoint, save_checkpoint
from seqrl.errors import UsageError
from seqrl.types import TrajectoryBatch

ROOT = Path(__file__).resolve().parents[2]
OBS = spaces.Box(-1.0, 1.0, (3,), np.float32)
IMAGES = spaces.Box(0, 255, (4, 84, 84), np.uint8)
BOX = spaces.Box(-2.0, 2.0, (2,), np.float32)
DISCRETE = spaces.Discrete(5)


def tiny(attention: str = "banded", discrete: bool = False, **kw) -> DTConfig:
    backbone = TransformerConfig(
        width=32,
        depth=2,
        heads=2,
        attention=attention,
        window=12,
        segment_lengths=(6, 12),
        dilation_rates=(1, 2),
        dropout=0.0,
    )
    return DTConfig(
        backbone=backbone,
        context=4,
        max_timestep=64,
        action_head="categorical" if discrete else "tanh",
        temperature=0.0,
        **kw,
    )


def batch(
    b: int, t: int, discrete: bool, rng: np.random.Generator, obs_shape=(3,)
) -> TrajectoryBatch:
    obs = torch.tensor(rng.normal(size=(b, t, *obs_shape)), dtype=torch.float32)
    if discrete:
        actions = torch.tensor(rng.integers(0, 5, size=(b, t)))
    else:
        actions = torch.tensor(rng.uniform(-2, 2, size=(b, t, 2)), dtype=torch.float32)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, :2] = False  # left padding
    zeros = torch.zeros(b, t)
    return TrajectoryBatch(
        obs,
        actions,
        zeros,
        torch.tensor(rng.normal(size=(b, t)), dtype=torch.float32),
        torch.arange(t).expand(b, t).clone(),
        mask,
        zeros.bool(),
    )


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("mode", ["window", "cached"])
def test_act_shapes_and_bounds(discrete: bool, mode: str) -> None:
    model = build_model(tiny(discrete=discrete), OBS, DISCRETE if discrete else BOX)
    agent = DTAgent(model, [1.0, 2.0], mode=mode)
    agent.reset(3)
    for step in range(6):
        actions = agent.act(np.random.default_rng(step).normal(size=(3, 3)).astype(np.float32))
        agent.observe(np.ones(3), np.array([False, step == 2, False]))
        if discrete:
            assert actions.shape == (3,) and set(actions.tolist()) <= set(range(5))
        else:
            assert actions.shape == (3, 2) and np.all(np.abs(actions) <= 2.0)


def test_image_observations() -> None:
    cfg = tiny(discrete=True, encoder="nature_cnn")
    model = build_model(cfg, IMAGES, DISCRETE)
    rng = np.random.default_rng(0)
    b = batch(2, 4, True, rng, obs_shape=(4, 84, 84))
    b.observations = torch.tensor(rng.integers(0, 256, size=(2, 4, 4, 84, 84)), dtype=torch.uint8)
    assert torch.isfinite(model.loss(b).total)
    agent = DTAgent(model, [5.0])
    agent.reset(2)
    assert agent.act(rng.integers(0, 256, size=(2, 4, 84, 84), dtype=np.uint8)).shape == (2,)


def test_channels_last_frames_reach_the_cnn_as_channels_first() -> None:
    """(H, W, C) frames, as the IRIS protocol gives them (64x64 RGB): the CNN sees each frame
    as (C, H, W), so a frame embeds as the same frame stored channels first does."""
    from gymnasium import spaces

    torch.manual_seed(0)
    cfg = tiny(discrete=True, encoder="nature_cnn")
    rgb = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    model = build_model(cfg, rgb, DISCRETE)
    assert model.channels_last and model.embed_obs.obs_shape == (3, 64, 64)
    torch.manual_seed(0)
    first = build_model(cfg, spaces.Box(0, 255, (3, 64, 64), np.uint8), DISCRETE)
    assert not first.channels_last
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("obs_")}
    first.load_state_dict(weights, strict=False)  # obs_mean / obs_std: unused by the CNN
    frames = torch.randint(0, 256, (2, 5, 64, 64, 3), dtype=torch.uint8)
    torch.testing.assert_close(
        model._obs_tokens(frames), first._obs_tokens(frames.permute(0, 1, 4, 2, 3))
    )
    agent = DTAgent(model, [5.0])
    agent.reset(2)
    assert agent.act(frames[:, 0].numpy()).shape == (2,)


@pytest.mark.parametrize("attention", ["banded", "dilated"])
@pytest.mark.parametrize("discrete", [False, True])
def test_cached_decoding_equals_full_forward(attention: str, discrete: bool) -> None:
    """Incremental decoding with the KV cache equals one full forward pass over the whole
    episode, at positions far beyond the band (12 tokens; the episode has 3 * 30 + 1)."""
    torch.manual_seed(0)
    model = build_model(tiny(attention, discrete), OBS, DISCRETE if discrete else BOX).eval()
    outputs = []
    head = model.head
    model.head = torch.nn.Module()  # record what the head sees at each step
    model.head.forward = lambda h: outputs.append(h.clone()) or head(h)  # type: ignore[method-assign]
    agent = DTAgent(model, [10.0, 5.0], mode="cached")
    n, t_len = 2, 30
    agent.reset(n)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(t_len, n, 3)).astype(np.float32)
    rtgs, actions = [], []
    for t in range(t_len):
        rtgs.append(agent.rtg_now.clone())
        actions.append(agent.act(obs[t]))
        agent.observe(rng.normal(size=n), np.zeros(n, dtype=bool))
    model.head = head
    cached = torch.stack(outputs, dim=1)  # (N, T, width)

    o = torch.tensor(obs).transpose(0, 1)
    a = torch.tensor(np.stack(actions)).transpose(0, 1)
    r = torch.stack(rtgs, dim=1)
    tokens = rearrange(
        model.step_tokens(r, o, a, torch.arange(t_len).expand(n, t_len)), "b t k d -> b (t k) d"
    )
    tokens = torch.cat(
        [torch.zeros(n, 1, tokens.shape[-1]), tokens], dim=1
    )  # the padded a_{-1} slot
    padding = torch.ones(n, 3 * t_len + 1, dtype=torch.bool)
    padding[:, 0] = False
    with torch.no_grad():
        full = model.backbone(model.embed_norm(tokens), padding_mask=padding)[:, 2::3]
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["dense", "banded", "dilated"])
@pytest.mark.parametrize("discrete", [False, True])
def test_forward_computes_only_the_state_tokens_it_needs(attention: str, discrete: bool) -> None:
    """The forward pass (training: every state token; ``last_only``, what ``window`` acting runs:
    the last one) gives the head of the backbone's full pass at those tokens, with left padding
    as in an episode's first steps."""
    torch.manual_seed(0)
    model = build_model(tiny(attention, discrete), OBS, DISCRETE if discrete else BOX).eval()
    b = batch(3, 7, discrete, np.random.default_rng(2))  # 21 tokens: past the 12-token band
    args = (b.returns_to_go, b.observations, b.actions, b.timesteps, b.mask)
    tokens = rearrange(model.step_tokens(*args[:4]), "b t k d -> b (t k) d")
    with torch.no_grad():
        h = model.backbone(model.embed_norm(tokens), padding_mask=b.mask.repeat_interleave(3, 1))
        full = model.head(h[:, 1::3])
        states = model(*args)
        last = model(*args, last_only=True)
    assert states.shape == full.shape and last.shape == full[:, -1:].shape
    torch.testing.assert_close(states, full, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(last, full[:, -1:], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("attention", ["dense", "banded"])
def test_window_agent_acts_as_the_masked_full_forward_of_its_contexts(attention: str) -> None:
    """Each ``window`` action is the model's on the agent's padded contexts: before they fill,
    once they are full (where the agent drops the all-True mask), and after an env restarts."""
    torch.manual_seed(0)
    model = build_model(tiny(attention), OBS, BOX).eval()
    agent = DTAgent(model, [1.0, 5.0], mode="window")
    agent.reset(2)
    rng = np.random.default_rng(3)
    for step in range(12):
        action = agent.act(rng.normal(size=(2, 3)).astype(np.float32))
        previous = agent.actions.clone()
        previous[:, -1] = 0  # the step's own action was not known when it acted
        with torch.no_grad():
            out = model(
                agent.rtg, agent.obs, previous, agent.timesteps, agent.mask.clone(), last_only=True
            )
        np.testing.assert_allclose(action, model.select_action(out[:, -1]).numpy(), atol=1e-6)
        agent.observe(rng.normal(size=2), np.array([step == 8, False]))
    assert not bool(agent.mask.all())  # env 0 restarted after step 8: its context is not full


def test_cached_agent_restarts_a_finished_env_like_a_fresh_one() -> None:
    torch.manual_seed(0)
    model = build_model(tiny(), OBS, BOX).eval()
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(20, 2, 3)).astype(np.float32)
    both = DTAgent(model, [3.0], mode="cached")
    both.reset(2)
    for t in range(7):  # env 1 ends after 7 steps; env 0 goes on
        both.act(obs[t])
        both.observe(np.ones(2), np.array([False, t == 6]))
    fresh = DTAgent(model, [3.0], mode="cached")
    fresh.reset(1)
    for t in range(5):
        got = both.act(obs[7 + t])[1]
        want = fresh.act(obs[7 + t][1:])[0]
        np.testing.assert_allclose(got, want, atol=1e-5)
        both.observe(np.ones(2), np.zeros(2, dtype=bool))
        fresh.observe(np.ones(1), np.zeros(1, dtype=bool))


def test_cached_mode_needs_a_band() -> None:
    model = build_model(tiny("dense"), OBS, BOX)
    with pytest.raises(UsageError, match="cached needs banded or dilated"):
        DTAgent(model, [1.0], mode="cached")


@pytest.mark.parametrize("discrete", [False, True])
def test_save_load_gives_identical_actions(tmp_path, discrete: bool) -> None:
    model = build_model(tiny(discrete=discrete), OBS, DISCRETE if discrete else BOX)
    model.set_normalization(np.array([0.5, -0.5, 0.0]), np.array([2.0, 1.0, 3.0]))
    info = {"obs_shape": [3], "discrete": discrete, "action_dim": 5 if discrete else 2}
    from seqrl.config import to_dict

    path = save_checkpoint(
        tmp_path / "dt.pt",
        algo="dt",
        config={"model": to_dict(model.cfg), "eval": {"targets": [4.0]}},
        step=1,
        state={"model": model.state_dict()},
        extra={"space_info": info},
    )
    clone = model_from_checkpoint(load_checkpoint(path, algo="dt"))
    obs = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    a, b = DTAgent(model, [4.0], seed=1), DTAgent(clone, [4.0], seed=1)
    a.reset(4), b.reset(4)
    for _ in range(3):
        np.testing.assert_array_equal(a.act(obs), b.act(obs))
        (
            a.observe(np.ones(4), np.zeros(4, dtype=bool)),
            b.observe(np.ones(4), np.zeros(4, dtype=bool)),
        )


@pytest.mark.parametrize("head", ["tanh", "tanh_gaussian", "categorical"])
def test_overfits_one_batch(head: str) -> None:
    torch.manual_seed(0)
    discrete = head == "categorical"
    cfg = DTConfig(backbone=tiny().backbone, context=4, max_timestep=64, action_head=head)
    model = build_model(cfg, OBS, DISCRETE if discrete else BOX)
    b = batch(8, 4, discrete, np.random.default_rng(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model.loss(b).total.detach())
    for _ in range(150):
        opt.zero_grad()
        model.loss(b).total.backward()
        opt.step()
    last = float(model.loss(b).total.detach())
    assert last < first - 0.5 * abs(first) if head != "tanh_gaussian" else last < first - 2.0


def test_action_loss_sum_is_the_mean_times_the_action_dimensions() -> None:
    """``action_loss sum`` (d3rlpy's loss) sums the squared error over the action dimensions where
    the paper's code averages; the logged ``action_mse`` is the mean either way."""
    b = batch(4, 4, False, np.random.default_rng(1))
    out = {}
    for reduction in ("mean", "sum"):
        torch.manual_seed(0)
        model = build_model(tiny(action_loss=reduction), OBS, BOX)
        out[reduction] = model.loss(b)
    torch.testing.assert_close(out["sum"].total, 2 * out["mean"].total)  # BOX has 2 dimensions
    assert out["sum"].metrics["action_mse"] == out["mean"].metrics["action_mse"]


def test_bad_combinations() -> None:
    with pytest.raises(UsageError, match="does not fit discrete"):
        build_model(tiny(), OBS, DISCRETE)
    with pytest.raises(UsageError, match="needs image observations"):
        build_model(tiny(discrete=True, encoder="nature_cnn"), OBS, DISCRETE)
    with pytest.raises(UsageError, match="nature_cnn"):
        build_model(tiny(discrete=True), IMAGES, DISCRETE)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("mode", ["window", "cached"])
def test_bfloat16_acting_follows_float32(discrete: bool, mode: str) -> None:
    """``amp_dtype=bfloat16`` autocasts the forward passes: the same actions up to bf16 rounding
    (continuous) and the same greedy choices where float32's margin is clear (discrete)."""
    torch.manual_seed(0)
    model = build_model(tiny(discrete=discrete), OBS, DISCRETE if discrete else BOX)
    rng = np.random.default_rng(0)
    agents = [
        DTAgent(model, [1.0, 5.0], mode=mode, amp_dtype=amp) for amp in (None, torch.bfloat16)
    ]
    for agent in agents:
        agent.reset(4)
    agreed = total = 0
    for _ in range(10):
        obs = rng.normal(size=(4, 3)).astype(np.float32)
        full, half = (agent.act(obs) for agent in agents)
        if discrete:
            agreed, total = agreed + int((full == half).sum()), total + 4
        else:
            np.testing.assert_allclose(half, full, atol=0.1)
            assert not np.array_equal(half, full)  # bf16 did run
        for agent in agents:
            agent.observe(np.ones(4), np.zeros(4, dtype=bool))
    if discrete:
        assert agreed >= 0.8 * total


def test_bfloat16_training_overfits_one_batch() -> None:
    """The shared update step with ``amp_dtype=bfloat16`` (``--loop.precision bf16``) learns."""
    from seqrl.training import update

    torch.manual_seed(0)
    model = build_model(tiny(), OBS, BOX)
    b = batch(8, 4, False, np.random.default_rng(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model.loss(b).total.detach())
    for _ in range(150):
        metrics = update(model.loss, b, opt, amp_dtype=torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert metrics["loss"] < 0.5 * first


def test_bfloat16_agent_acts_as_autocast_of_the_float32_model() -> None:
    """The bf16 agent's copy with linear layers cast ahead gives what autocasting the float32
    model at every step gives, bit for bit (the casts are the same, done once)."""
    torch.manual_seed(0)
    model = build_model(tiny(attention="dense"), OBS, BOX).eval()
    agent = DTAgent(model, [2.0], mode="window", amp_dtype=torch.bfloat16)
    assert agent.net is not model and agent.net.head.weight.dtype == torch.bfloat16
    assert model.head.weight.dtype == torch.float32
    agent.reset(3)
    obs = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    action = agent.act(obs)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(
            agent.rtg, agent.obs, agent.actions * 0, agent.timesteps, agent.mask, last_only=True
        )
    expected = model.select_action(out[:, -1].float())
    np.testing.assert_array_equal(action, expected.numpy())


@pytest.mark.parametrize("discrete", [False, True])
def test_compiled_window_agent_acts_as_the_eager_one_on_a_snapshot(discrete: bool) -> None:
    """``compile=True`` acts as the eager agent (padding, a finished env, its restart), with the
    weights it was given: training the model afterwards leaves the compiled agent unchanged, and
    a compiled agent built afterwards acts with the new weights."""
    torch.manual_seed(0)
    model = build_model(tiny("dense", discrete=discrete), OBS, DISCRETE if discrete else BOX)
    compiled = DTAgent(model, [1.0, 5.0], mode="window", compile=True)
    eager = DTAgent(copy.deepcopy(model), [1.0, 5.0], mode="window")
    rng = np.random.default_rng(0)
    for agent in (compiled, eager):
        agent.reset(3)
    for step in range(7):
        obs = rng.normal(size=(3, 3)).astype(np.float32)
        got, want = compiled.act(obs), eager.act(obs)
        np.testing.assert_allclose(got, want, atol=1e-5)
        dones = np.array([False, step == 2, False])
        for agent in (compiled, eager):
            agent.observe(np.ones(3), dones)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    obs = rng.normal(size=(3, 3)).astype(np.float32)
    moved = DTAgent(model, [1.0, 5.0], mode="window")
    for agent in (moved, eager):
        agent.reset(3)
    compiled.reset(3)
    got = compiled.act(obs)
    np.testing.assert_allclose(got, eager.act(obs), atol=1e-5)
    want = moved.act(obs)
    assert not np.allclose(got, want, atol=1e-3)
    # a compiled agent built on the new weights reuses the compiled code, with those weights
    recompiled = DTAgent(model, [1.0, 5.0], mode="window", compile=True)
    recompiled.reset(3)
    np.testing.assert_allclose(recompiled.act(obs), want, atol=1e-5)


def test_compile_needs_window_mode_and_a_working_compiler() -> None:
    model = build_model(tiny("banded"), OBS, BOX)
    with pytest.raises(UsageError, match="--eval.compile applies to --eval.mode window"):
        DTAgent(model, [1.0], mode="cached", compile=True)
    # inductor caches its compiler checks for the process: try a missing compiler in another one
    script = (
        "import numpy as np\n"
        "from tests.agents.test_dt import BOX, OBS, tiny\n"
        "from seqrl.agents.dt import DTAgent, build_model\n"
        "from seqrl.errors import SeqrlError\n"
        "agent = DTAgent(build_model(tiny('dense'), OBS, BOX), [1.0], compile=True)\n"
        "agent.reset(2)\n"
        "try:\n"
        "    agent.act(np.zeros((2, 3), np.float32))\n"
        "except SeqrlError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "CXX": "/nonexistent/c++"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    message = done.stdout.strip()
    assert "\n" not in message
    assert re.fullmatch(
        r"--eval.compile: torch.compile failed \(.*C\+\+.*\); evaluate without it", message
    )
