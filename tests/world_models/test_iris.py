"""IRIS (Micheli et al. 2023, https://arxiv.org/abs/2209.00588): tokenizer, GPT world model,
imagination, save/load and the cited preset table (docs/iris.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from preset_tables import check_preset, table_rows
from seqrl.agents.actor_critic import ActorCritic, ac_iris
from seqrl.backbone import TransformerConfig
from seqrl.errors import ConfigError
from seqrl.types import TrajectoryBatch
from seqrl.world_models.imagination import imagine
from seqrl.world_models.iris import (
    IRIS,
    DynamicsConfig,
    IRISConfig,
    build_world_model,
)
from seqrl.world_models.iris_tokenizer import LPIPS, TokenizerConfig, codebook_usage
from seqrl.world_models.train_iris import PRESETS, iris_atari100k

ACTIONS = 3
HWC = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions on a loaded 2-core machine: one thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**changes: object) -> IRISConfig:
    """A tokenizer of a few thousand weights and a one-layer GPT over 3-frame windows."""
    cfg = IRISConfig(
        tokenizer=TokenizerConfig(
            vocab_size=32,
            embed_dim=16,
            channels=8,
            channel_mult=(1, 1, 1, 1, 1),
            res_blocks=1,
            attn_resolutions=(8,),
            z_channels=16,
            norm_groups=4,
            batch_size=8,
            lr=3e-3,
        ),
        dynamics=DynamicsConfig(
            backbone=TransformerConfig(
                width=32,
                depth=1,
                heads=2,
                ff="mlp",
                activation="gelu",
                positions="learned",
                max_len=51,
                dropout=0.0,
            ),
            sequence_length=3,
            batch_size=4,
            lr=3e-3,
        ),
    )
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


def tiny_model(space: gym.Space = HWC, **changes: object) -> IRIS:
    torch.manual_seed(0)
    return build_world_model(tiny_config(**changes), space, gym.spaces.Discrete(ACTIONS))


def blocks_frames(b: int, t: int, seed: int = 0) -> torch.Tensor:
    """(b, t, 64, 64, 3) uint8 frames: a coloured square moving right, on black."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.zeros(b, t, 64, 64, 3, dtype=torch.uint8)
    for i in range(b):
        x = int(torch.randint(0, 32, (1,), generator=g))
        colour = torch.randint(100, 256, (3,), generator=g, dtype=torch.int64).to(torch.uint8)
        for j in range(t):
            frames[i, j, 16:32, x + 4 * j : x + 4 * j + 16] = colour
    return frames


def make_batch(b: int = 4, t: int = 3, seed: int = 0) -> TrajectoryBatch:
    g = torch.Generator().manual_seed(seed)
    zeros = torch.zeros(b, t)
    return TrajectoryBatch(
        observations=blocks_frames(b, t, seed),
        actions=torch.randint(0, ACTIONS, (b, t), generator=g),
        rewards=torch.randint(-1, 2, (b, t), generator=g).float(),
        returns_to_go=zeros,
        timesteps=torch.arange(t).expand(b, t),
        mask=torch.ones(b, t, dtype=torch.bool),
        terminals=torch.zeros(b, t, dtype=torch.bool),
        extras={},
    )


def overfit(module: torch.nn.Module, batch: TrajectoryBatch, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        out = module.loss(batch)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.total.detach()))
    return losses


# --------------------------------------------------------------------------------------------
# Tokenizer


def test_tokenizer_maps_frames_to_a_4x4_grid_of_tokens() -> None:
    model = tiny_model()
    frames = model.tokenizer.frames(blocks_frames(2, 3))
    assert frames.shape == (2, 3, 3, 64, 64) and float(frames.max()) <= 1.0
    tokens = model.tokenizer.encode(frames)
    assert tokens.shape == (2, 3, 16) and tokens.dtype == torch.long
    assert int(tokens.max()) < 32
    assert model.tokenizer.decode(tokens).shape == (2, 3, 3, 64, 64)


@pytest.mark.parametrize("scope", ["frame", "patch"])
def test_encoder_scope_patch_keeps_the_tokens_of_unchanged_patches(scope: str) -> None:
    """``encoder_scope=patch``: a token's encoding depends on its own 16x16 patch only, so
    changing one patch changes no other patch's encoder output; the paper's whole-frame encoder
    lets it reach its neighbours."""
    tok_cfg = dataclasses.replace(tiny_config().tokenizer, encoder_scope=scope)
    model = tiny_model(tokenizer=tok_cfg).eval()
    frames = model.tokenizer.frames(blocks_frames(2, 1))[:, 0]
    changed = frames.clone()
    changed[:, :, 16:32, 32:48] = torch.rand(
        2, 3, 16, 16, generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        z, _, _ = model.tokenizer._quantise(frames)
        z2, _, _ = model.tokenizer._quantise(changed)
    assert z.shape == (2, 16, 4, 4)
    moved = (z2 - z).abs().amax(dim=(0, 1)) > 0  # (4, 4): patch (row 1, column 2) changed
    assert moved[1, 2]
    others = moved.clone()
    others[1, 2] = False
    assert bool(others.any()) == (scope == "frame")
    # trains end to end: the loss has gradients for the encoder
    model.train()
    out = model.tokenizer.loss(make_batch(b=2, t=1))
    out.total.backward()
    assert model.tokenizer.encoder[0].weight.grad.abs().sum() > 0


def test_tokens_are_float32_nearest_codes_under_bf16_autocast() -> None:
    """Under CPU bf16 autocast (``--loop.precision bf16``) ``encode`` gives the float32 tokens
    (the GPT's targets must be those imagination and acting see), and the tokenizer's own
    quantisation picks the exact nearest code of its (bf16) encoder output."""
    torch.manual_seed(0)
    model = tiny_model()
    tok = model.tokenizer
    with torch.no_grad():  # spread the codebook the way training does (codes near the outputs)
        z = tok.pre_quant(tok.encoder(tok.frames(blocks_frames(4, 4)).flatten(0, 1) * 2 - 1))
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        tok.codebook.weight.copy_(flat[torch.randperm(len(flat))[: tok.codebook.num_embeddings]])
        tok.codebook.weight.add_(0.01 * torch.randn_like(tok.codebook.weight))
    frames = tok.frames(blocks_frames(3, 4, seed=1))
    full = tok.encode(frames)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(tok.encode(frames), full)
        z, tokens, _ = tok._quantise(frames.flatten(0, 1))
    flat = z.detach().double().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    nearest = torch.cdist(flat, tok.codebook.weight.double()).argmin(-1)
    assert z.dtype == torch.bfloat16  # the encoder did run in bf16
    assert torch.equal(tokens.flatten(), nearest)


def test_tokenizer_loss_is_finite_and_falls_when_overfitting() -> None:
    model = tiny_model()
    batch = make_batch(b=4, t=1)
    losses = overfit(model.tokenizer, batch, steps=20, lr=3e-3)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses[::4]
    metrics = model.tokenizer.loss(batch).metrics
    for key in ("reconstruction_loss", "codebook_loss", "commitment_loss", "codebook_perplexity"):
        assert np.isfinite(metrics[key])
    assert 0.0 < metrics["codebook_used"] <= 1.0


@pytest.mark.parametrize("space", [HWC, gym.spaces.Box(0.0, 1.0, (3, 64, 64), np.float32)])
def test_cached_tokens_encode_each_new_observation_once_until_the_weights_change(
    space: gym.Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(tiny_config().tokenizer, cache_tokens=True)
    tok = tiny_model(space, tokenizer=cfg).tokenizer

    def in_space(frames: torch.Tensor) -> torch.Tensor:
        if space.dtype == np.float32:
            return frames.permute(0, 1, 4, 2, 3).float() / 255.0
        return frames

    observations = blocks_frames(3, 4)  # 12 frames, 10 distinct
    observations[1, 0] = observations[0, 1]
    observations[2, 3] = observations[0, 0]
    observations = in_space(observations)
    encoded = []
    encode = tok.encode
    monkeypatch.setattr(tok, "encode", lambda frames: encoded.append(len(frames)) or encode(frames))

    def fresh() -> torch.Tensor:
        return encode(tok.frames(observations))

    assert torch.equal(tok.tokenize(observations), fresh()) and encoded == [10]
    assert torch.equal(tok.tokenize(observations[:, 1:]), fresh()[:, 1:]) and encoded == [10]
    # a training step changes the weights: everything is encoded again, with the new weights
    batch = make_batch(b=4, t=1)
    overfit(tok, dataclasses.replace(batch, observations=in_space(batch.observations)), 1, 0.1)
    assert torch.equal(tok.tokenize(observations), fresh()) and encoded == [10, 10]
    # so does a loaded state (here: the codebook's rows reversed)
    state = {k: v.clone() for k, v in tok.state_dict().items()}
    state["codebook.weight"] = state["codebook.weight"].flip(0)
    tok.load_state_dict(state)
    assert torch.equal(tok.tokenize(observations), fresh()) and encoded == [10, 10, 10]


@pytest.mark.parametrize("reconstruction", ["l1", "mse"])
def test_tokenizer_reconstruction_loss_is_the_configured_pixel_loss(reconstruction: str) -> None:
    cfg = dataclasses.replace(tiny_config().tokenizer, reconstruction=reconstruction)
    tok = tiny_model(tokenizer=cfg).tokenizer.eval()
    batch = make_batch(b=2, t=1)
    metrics = tok.loss(batch).metrics
    frames = tok.frames(batch.observations.flatten(0, 1))
    with torch.no_grad():
        recon = tok._decode_grid(tok.embed(tok.encode(frames)))  # [-1, 1] scale, unclamped
    error = recon - (frames * 2.0 - 1.0)
    l1, mse = float(error.abs().mean()), float(error.pow(2).mean())
    expected = mse if reconstruction == "mse" else l1
    assert metrics["reconstruction_loss"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert metrics["l1"] == pytest.approx(l1, rel=1e-4, abs=1e-6)


def test_codebook_usage_counts_codes_and_perplexity() -> None:
    used, perplexity = codebook_usage(torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]]), 8)
    assert used == pytest.approx(0.5) and perplexity == pytest.approx(4.0)
    used, perplexity = codebook_usage(torch.full((5, 16), 7), 8)
    assert used == pytest.approx(1 / 8) and perplexity == pytest.approx(1.0)


def test_dead_codes_restart_to_encoder_outputs_of_the_batch() -> None:
    tok = tiny_model(
        tokenizer=dataclasses.replace(tiny_config().tokenizer, restart_dead_codes=2)
    ).tokenizer.train()
    batch = make_batch(b=2, t=1)
    start = tok.codebook.weight.detach().clone()
    tok.loss(batch)
    tok.loss(batch)  # codes unused in both batches are now idle for 2 batches
    assert torch.equal(tok.codebook.weight, start)  # (nothing restarted yet)
    dead = tok.code_idle >= 2
    assert 0 < int(dead.sum()) < 32
    tok.loss(batch)
    moved = (tok.codebook.weight != start).any(1)
    assert torch.equal(moved, dead)
    frames = tok.frames(batch.observations.flatten(0, 1))
    with torch.no_grad():
        z = tok.pre_quant(tok.encoder(frames * 2.0 - 1.0))
    outputs = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    restarted = tok.codebook.weight[dead].detach()
    nearest = torch.cdist(restarted, outputs, compute_mode="donot_use_mm_for_euclid_dist")
    nearest = nearest.min(1).values
    assert float(nearest.max()) < 1e-5  # each restarted code is one of this batch's outputs
    tok.eval()
    tok.code_idle.fill_(5)
    before = tok.codebook.weight.detach().clone()
    tok.loss(batch)
    assert torch.equal(tok.codebook.weight, before)  # evaluation never restarts codes


def test_dead_code_restarts_keep_more_codes_in_use() -> None:
    """Over the same updates, restarts leave more of the codebook in use than the paper's
    plain quantiser (which collapses onto a few codes on such simple frames)."""
    batch = make_batch(b=8, t=2)
    used = {}
    for every in (0, 3):
        tok = tiny_model(
            tokenizer=dataclasses.replace(tiny_config().tokenizer, restart_dead_codes=every)
        ).tokenizer.train()
        overfit(tok, batch, steps=15, lr=3e-3)
        used[every] = tok.eval().loss(batch).metrics["codebook_used"]
    assert used[3] > used[0], used


def test_perceptual_loss_with_random_weights(tmp_path: Path) -> None:
    model = tiny_model(
        tokenizer=dataclasses.replace(tiny_config().tokenizer, perceptual="lpips_random")
    )
    assert model.tokenizer.lpips is not None
    assert not any(p.requires_grad for p in model.tokenizer.lpips.parameters())
    batch = make_batch(b=2, t=1)
    out = model.tokenizer.loss(batch)
    assert np.isfinite(out.metrics["perceptual_loss"]) and out.metrics["perceptual_loss"] > 0
    out.total.backward()
    assert model.tokenizer.encoder[0].weight.grad is not None
    # LPIPS is a distance: zero for identical images, positive otherwise
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    lpips = model.tokenizer.lpips
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    assert bool((lpips(x, x.flip(0)) > 0).all())
    # a weights file in the published layout loads into the 'lpips' setting
    path = tmp_path / "lpips_vgg.pt"
    torch.save(lpips.state_dict(), path)
    assert any(k.startswith("features.28.") for k in lpips.state_dict())
    assert "lin4.model.1.weight" in lpips.state_dict()
    loaded = LPIPS(str(path))
    assert torch.allclose(loaded(x, x.flip(0)), lpips(x, x.flip(0)))
    with pytest.raises(ConfigError, match="perceptual_weights"):
        tiny_model(tokenizer=dataclasses.replace(tiny_config().tokenizer, perceptual="lpips"))
    with pytest.raises(ConfigError, match="does not exist"):
        LPIPS(str(tmp_path / "missing.pt"))


def test_frame_layouts_agree_and_bad_shapes_are_rejected() -> None:
    hwc = tiny_model()
    chw = tiny_model(gym.spaces.Box(0, 255, (3, 64, 64), np.uint8))
    obs = blocks_frames(2, 1)
    a = hwc.tokenizer.frames(obs)
    b = chw.tokenizer.frames(obs.permute(0, 1, 4, 2, 3))
    assert torch.equal(a, b)
    assert hwc.reconstruct(obs).shape == obs.shape
    gray = tiny_model(gym.spaces.Box(0, 255, (64, 64), np.uint8))
    assert gray.feature_shape == (1, 64, 64)
    with pytest.raises(ConfigError, match="64x64"):
        tiny_model(gym.spaces.Box(0, 255, (84, 84, 3), np.uint8))
    with pytest.raises(ConfigError, match="discrete"):
        build_world_model(tiny_config(), HWC, gym.spaces.Box(-1, 1, (2,)))


# --------------------------------------------------------------------------------------------
# World model


def test_world_model_loss_falls_when_overfitting_one_batch_and_leaves_the_tokenizer() -> None:
    model = tiny_model()
    components = model.components()
    assert set(components) == {"tokenizer", "world_model"}
    tok_ids = {id(p) for p in components["tokenizer"].parameters()}
    assert not tok_ids & {id(p) for p in components["world_model"].parameters()}
    batch = make_batch(b=4, t=3)
    losses = overfit(components["world_model"], batch, steps=60, lr=3e-3)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.3 * losses[0], losses[::10]
    assert all(p.grad is None for p in components["tokenizer"].parameters())
    metrics = components["world_model"].loss(batch).metrics
    assert metrics["obs_accuracy"] > 0.5 and metrics["reward_accuracy"] == 1.0


def test_padding_slots_are_neither_targets_nor_seen() -> None:
    model = tiny_model()
    batch = make_batch(b=2, t=3)
    mask = batch.mask.clone()
    mask[0, 0] = False  # row 0's episode starts at slot 1
    padded = dataclasses.replace(batch, mask=mask)
    obs, rewards = batch.observations.clone(), batch.rewards.clone()
    obs[0, 0], rewards[0, 0] = 255 - obs[0, 0], 9.0  # whatever lies in the padding slot
    other = dataclasses.replace(padded, observations=obs, rewards=rewards)
    with torch.no_grad():
        a, b = model.dynamics.loss(padded), model.dynamics.loss(other)
        full = model.dynamics.loss(batch)
    assert np.isfinite(float(a.total))
    assert torch.allclose(a.total, b.total, atol=1e-6)
    assert not torch.allclose(a.total, full.total)


def test_a_batch_of_burn_in_only_gives_a_finite_zero_loss() -> None:
    model = tiny_model()
    batch = make_batch(b=2, t=3)
    burn = dataclasses.replace(batch, extras={"burn_in": torch.ones(2, 3, dtype=torch.bool)})
    out = model.dynamics.loss(burn)
    assert float(out.total.detach()) == 0.0 and out.metrics["reward_accuracy"] == 0.0
    out.total.backward()  # still a graph: the update step can run it


def test_training_specs_give_each_component_its_batches() -> None:
    model = tiny_model()
    tok, wm = model.training_spec("tokenizer"), model.training_spec("world_model")
    assert (tok.batch_size, tok.seq_len, tok.burn_in) == (8, 1, 0)
    assert (wm.batch_size, wm.seq_len, wm.burn_in) == (4, 3, 0)
    assert tok.clip_norm == 10.0 and wm.clip_norm == 10.0
    with pytest.raises(KeyError):
        model.training_spec("actor_critic")


@pytest.mark.parametrize("policy_frames", ["reconstructed", "real"])
def test_imagine_shapes(policy_frames: str) -> None:
    model = tiny_model(policy_frames=policy_frames).eval()
    context = make_batch(b=2, t=4)
    with torch.no_grad():
        state, features = model.imagine_start(context)
        assert features.shape == (2, 4, 3, 64, 64)
        assert float(features.min()) >= 0.0 and float(features.max()) <= 1.0
        if policy_frames == "real":
            assert torch.equal(features, context.observations.permute(0, 1, 4, 2, 3).float() / 255)
        for _ in range(4):  # the 4th step passes the 3-frame window: the cache restarts
            state, step = model.imagine_step(state, torch.tensor([0, 2]))
    assert step.features.shape == (2, *model.feature_shape)
    assert set(step.rewards.tolist()) <= {-1.0, 0.0, 1.0}
    assert set(step.continues.tolist()) <= {0.0, 1.0}
    assert state.cache is not None and state.cache.length <= model.dynamics.max_tokens
    # the shared imagination runs the IRIS actor-critic on these frames
    ac_cfg = dataclasses.replace(ac_iris(), cnn_channels=(4, 4, 4, 4), lstm_dim=16, horizon=3)
    ac = ActorCritic(model.feature_shape, ACTIONS, ac_cfg)
    rollout = imagine(model, ac, context, horizon=3)
    assert rollout.features.shape == (4, 2, 3, 64, 64)
    assert np.isfinite(float(ac.loss(rollout).total.detach()))


def _uncached_rollout(model: IRIS, start: torch.Tensor, actions: torch.Tensor) -> list:
    """Argmax imagination that re-runs the whole token sequence (no KV cache) for every token,
    embedded as in training (``Dynamics.embed`` over the window's frames and actions)."""
    dyn = model.dynamics
    frames, taken, out = [start], [], []

    def last(n: int) -> torch.Tensor:
        """The output at the n-th token of the window (the frames' unfilled slots are zeros)."""
        tokens = torch.stack([F.pad(f, (0, dyn.k - f.shape[1])) for f in frames], 1)
        acts = torch.stack(taken + [torch.zeros_like(start[:, 0])] * (len(frames) - len(taken)), 1)
        return dyn.transformer(dyn.embed(tokens, acts)[:, :n])[:, -1]

    for a in actions.T:
        if len(frames) * dyn.block + dyn.block > dyn.max_tokens:  # the cached version's restart
            frames, taken = frames[-1:], []
        taken.append(a)
        n = len(frames) * dyn.block
        h = last(n)
        reward = dyn.reward_head(h).argmax(-1).float() - 1
        cont = 1 - dyn.end_head(h).argmax(-1).float()
        frames.append(start[:, :0])
        for _ in range(dyn.k):
            token = dyn.obs_head(h).argmax(-1)
            frames[-1] = torch.cat((frames[-1], token[:, None]), 1)
            n += 1
            h = last(n)
        out.append((frames[-1], reward, cont))
    return out


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("decoding", ["cache", "graph"])
@pytest.mark.parametrize("action_inputs", [False, True])
def test_kv_cached_imagination_equals_uncached(
    decoding: str, device: str, action_inputs: bool
) -> None:
    """Both decodings (on CUDA ``graph`` replays a recorded CUDA graph; on the CPU it runs the
    same fixed-shape steps eagerly) give the uncached argmax rollout, across cache restarts,
    with the training's embedding of tokens and actions (``dynamics.action_inputs`` too)."""
    cfg = tiny_config(sampling="argmax", decoding=decoding)
    cfg.dynamics.action_inputs = action_inputs
    torch.manual_seed(0)
    model = build_world_model(cfg, HWC, gym.spaces.Discrete(ACTIONS)).eval().to(device)
    context = make_batch(b=3, t=2).to(device)
    actions = torch.randint(0, ACTIONS, (3, 5), generator=torch.Generator().manual_seed(1))
    actions = actions.to(device)
    with torch.no_grad():
        state, _ = model.imagine_start(context)
        reference = _uncached_rollout(model, state.tokens, actions)
        for j, (tokens, reward, cont) in enumerate(reference):
            state, step = model.imagine_step(state, actions[:, j])
            assert torch.equal(state.tokens, tokens), j
            assert torch.equal(step.rewards, reward) and torch.equal(step.continues, cont)
            assert torch.allclose(step.features, model.tokenizer.decode(tokens), atol=1e-5)
            assert (state.decoder is not None) == (decoding == "graph")
    if device == "cuda" and decoding == "graph":
        assert state.decoder is not None and state.decoder.call.graph is not None
    # open-loop prediction is the same argmax rollout, in the observations' layout
    predicted = model.predict(context, actions, 5)
    assert predicted.shape == (3, 5, 64, 64, 3)
    last = model.tokenizer.decode(reference[-1][0]).permute(0, 2, 3, 1)
    assert torch.allclose(predicted[:, -1], last, atol=1e-5)


def test_graph_decoding_steps_only_the_newest_state_and_branches_through_select() -> None:
    model = tiny_model(sampling="argmax", decoding="graph").eval()
    context = make_batch(b=2, t=2)
    a = torch.tensor([1, 2])
    with torch.no_grad():
        start, _ = model.imagine_start(context)
        first, _ = model.imagine_step(start, a)
        second, _ = model.imagine_step(first, a)
        with pytest.raises(RuntimeError, match="already stepped"):
            model.imagine_step(first, a)  # its cache has moved on to `second`
        # select copies the cache into a growing KVCache: the branches continue like the original
        branch = second.select(torch.tensor([1, 1, 0]))
        assert branch.decoder is None and branch.cache is not None
        b_next, _ = model.imagine_step(branch, torch.tensor([0, 0, 1]))
        cache_model = tiny_model(sampling="argmax", decoding="cache").eval()
        ref, _ = cache_model.imagine_start(context)
        for _ in range(2):
            ref, _ = cache_model.imagine_step(ref, a)
        ref, _ = cache_model.imagine_step(
            ref.select(torch.tensor([1, 1, 0])), torch.tensor([0, 0, 1])
        )
    assert torch.equal(b_next.tokens, ref.tokens)


def test_gumbel_max_sampling_follows_the_softmax() -> None:
    """Imagination samples tokens as argmax(logits + Gumbel noise): no host read (a CUDA graph
    records it) and the same distribution as sampling the softmax."""
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0]]).expand(40_000, 4)
    torch.manual_seed(0)
    counts = torch.bincount(IRIS._sample(logits, argmax=False), minlength=4).float()
    torch.testing.assert_close(counts / counts.sum(), logits[0].softmax(-1), atol=0.01, rtol=0)
    assert torch.equal(IRIS._sample(logits[:2], argmax=True), torch.tensor([0, 0]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("decoding", ["cache", "graph"])
def test_sampled_imagination_varies_with_the_seed(decoding: str, device: str) -> None:
    """Sampled tokens follow the seed, also when a recorded CUDA graph draws them (replays of
    one graph under two seeds)."""
    model = tiny_model(decoding=decoding).eval().to(device)
    context = make_batch(b=8, t=2).to(device)
    runs = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        with torch.no_grad():
            state, _ = model.imagine_start(context)
            for _ in range(2):
                state, _ = model.imagine_step(
                    state, torch.zeros(8, dtype=torch.long, device=device)
                )
        runs.append(state.tokens)
    assert not torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], runs[2])


def test_predict_with_samples_averages_sampled_rollouts() -> None:
    """``predict(samples=N)``: the mean of N rollouts with sampled tokens, in draw order."""
    model = tiny_model(sampling="argmax").eval()  # argmax imagination; predict samples anyway
    context = make_batch(b=4, t=2)
    actions = torch.randint(0, ACTIONS, (4, 2), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    mean = model.predict(context, actions, 2, samples=3)
    torch.manual_seed(0)
    runs = [model.predict(context, actions, 2, samples=1) for _ in range(3)]
    assert torch.allclose(mean, torch.stack(runs).mean(0), atol=1e-6)
    assert not torch.equal(runs[0], runs[1])
    assert mean.shape == model.predict(context, actions, 2).shape == (4, 2, 64, 64, 3)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = tiny_model(sampling="argmax").eval()
    overfit(model.tokenizer, make_batch(b=4, t=1), steps=3, lr=3e-3)
    path = tmp_path / "iris.pt"
    torch.save(model.state_dict(), path)
    assert all(k.startswith(("tokenizer.", "dynamics.")) for k in model.state_dict())
    torch.manual_seed(5)
    other = build_world_model(tiny_config(sampling="argmax"), HWC, gym.spaces.Discrete(ACTIONS))
    other.load_state_dict(torch.load(path, weights_only=True))
    other.eval()
    context = make_batch(b=2, t=2)
    actions = torch.tensor([[0, 1, 2], [2, 1, 0]])
    assert torch.equal(
        model.reconstruct(context.observations), other.reconstruct(context.observations)
    )
    assert torch.equal(model.predict(context, actions, 3), other.predict(context, actions, 3))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_with_a_4x4_token_grid(name: str) -> None:
    cfg = PRESETS[name]()
    model = build_world_model(cfg.world_model, HWC, gym.spaces.Discrete(ACTIONS))
    assert model.tokenizer.tokens_per_frame == 16
    assert model.dynamics.max_tokens == 340
    assert model.feature_shape == (3, 64, 64)
    assert cfg.actor_critic.encoder == "iris_cnn"


def test_max_len_must_hold_the_window() -> None:
    cfg = tiny_config()
    short = dataclasses.replace(cfg.dynamics.backbone, max_len=50)
    with pytest.raises(ConfigError, match="max_len"):
        build_world_model(
            dataclasses.replace(cfg, dynamics=dataclasses.replace(cfg.dynamics, backbone=short)),
            HWC,
            gym.spaces.Discrete(ACTIONS),
        )


# --------------------------------------------------------------------------------------------
# The iris-atari100k preset equals the cited table in docs/iris.md


def test_atari100k_preset_matches_the_cited_table() -> None:
    rows = table_rows("iris.md", "| key | iris-atari100k")
    assert len(rows) >= 60
    cfg = iris_atari100k()
    check_preset(cfg, rows)
    assert cfg.env.id.startswith("ALE/")
    # the paper's epochs: 200 env steps each, 200 updates per started component per epoch
    for name, epochs in (("tokenizer", 5), ("world_model", 25), ("actor_critic", 50)):
        schedule = getattr(cfg, f"{name}_train")
        assert schedule.due(200 * epochs) == 0 and schedule.due(200 * (epochs + 1)) == 200
    # 600 epochs, the last 100 without collecting: 119k / 115k / 110k updates
    end = cfg.collect.steps + cfg.collect.train_only
    assert (cfg.collect.steps, end) == (500 * 200, 600 * 200)
    updates = [cfg.tokenizer_train, cfg.world_model_train, cfg.actor_critic_train]
    assert [s.due(end) for s in updates] == [119_000, 115_000, 110_000]


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_model_imagines_and_trains_like_the_eager_one(
    device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``compile=True`` (inductor kernels for the tokenizer's networks; not the GPT step, slower
    compiled) gives the eager model's argmax rollout and tokenizer loss and gradients, with the
    same state dict."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # full float32 on both sides
    eager = tiny_model(sampling="argmax", decoding="graph").eval().to(device)
    compiled = tiny_model(sampling="argmax", decoding="graph", compile=True).eval().to(device)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    compiled.load_state_dict(eager.state_dict())
    context = make_batch(b=3, t=1).to(device)  # every frame batch of 3: fewer compiles
    actions = torch.randint(0, ACTIONS, (3, 3), generator=torch.Generator().manual_seed(1))
    actions = actions.to(device)
    with torch.no_grad():
        states = [m.imagine_start(context) for m in (eager, compiled)]
        assert torch.allclose(states[0][1], states[1][1], atol=1e-4)
        (a, _), (b, _) = states
        for j in range(3):
            a, step_a = eager.imagine_step(a, actions[:, j])
            b, step_b = compiled.imagine_step(b, actions[:, j])
            assert torch.equal(a.tokens, b.tokens), j
            assert torch.allclose(step_a.features, step_b.features, atol=1e-4)
    assert compiled.tokenizer._compiled is not None and b.decoder is not None
    assert b.decoder.decode == compiled.dynamics.transformer.decode_static  # eager GPT step
    losses = []
    for m in (eager, compiled):
        m.train()
        m.tokenizer.zero_grad()
        loss = m.tokenizer.loss(make_batch(b=3, t=1).to(device)).total
        loss.backward()
        losses.append((loss.detach(), m.tokenizer.decoder[-1].weight.grad.clone()))
    assert torch.allclose(losses[0][0], losses[1][0], atol=1e-5)
    assert torch.allclose(losses[0][1], losses[1][1], atol=1e-4)


def test_channels_last_layout_gives_the_contiguous_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tokenizer and the actor-critic's CNN take channels-last images on the CPU: the same
    tokens, reconstructions, losses and features as torch's default layout."""
    from seqrl.agents import actor_critic
    from seqrl.world_models import iris_tokenizer

    model = tiny_model().eval()
    cnn = ActorCritic((3, 64, 64), ACTIONS, ac_iris()).trunk
    assert cnn is not None
    frames = model.tokenizer.frames(make_batch(b=2, t=2).observations)
    batch = make_batch(b=2, t=2)
    out = {}
    for layout in ("channels_last", "contiguous"):
        if layout == "contiguous":
            monkeypatch.setattr(iris_tokenizer, "cpu_channels_last", lambda x: x)
            monkeypatch.setattr(actor_critic, "cpu_channels_last", lambda x: x)
        with torch.no_grad():
            tokens = model.tokenizer.encode(frames)
            out[layout] = (
                tokens,
                model.tokenizer.decode(tokens),
                model.tokenizer.loss(batch).total,
                cnn(frames.flatten(0, 1)),
            )
    (t1, d1, l1, f1), (t2, d2, l2, f2) = out["channels_last"], out["contiguous"]
    assert torch.equal(t1, t2)
    torch.testing.assert_close(d1, d2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(l1, l2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(f1, f2, atol=1e-5, rtol=1e-5)
