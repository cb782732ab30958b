"""IRIS: a discrete autoencoder and a GPT over its tokens, imagining frame by frame.

Micheli, Alonso, Fleuret 2023, *Transformers are Sample-Efficient World Models*,
`arXiv 2209.00588 <https://arxiv.org/abs/2209.00588>`_ (code: eloialonso/iris,
``src/models/world_model.py``, ``src/envs/world_model_env.py``).

Two components, trained separately by the shared loop (:mod:`seqrl.world_models.loop`):

- ``tokenizer`` (:class:`~seqrl.world_models.iris_tokenizer.Tokenizer`): 64x64 frames to a 4x4
  grid of 16 tokens from a codebook of 512; trained on single frames.
- ``world_model`` (:class:`Dynamics`): the shared backbone (:class:`seqrl.backbone.Transformer`,
  learned absolute positions) as a GPT over ``sequence_length`` frames of ``K + 1`` tokens
  (``K`` frame tokens, then the action). Every token predicts the next frame token (the action
  token predicts the first token of the next frame; the last frame token predicts nothing); the
  action token also predicts the reward's sign (3 classes) and termination (2 classes). Loss: the
  sum of the three cross-entropies. The tokenizer is frozen here: tokens come from it under
  ``no_grad`` and its weights are not among this component's parameters.

Imagination (``imagine_start`` / ``imagine_step``) follows ``WorldModelEnv``: the KV cache starts
from the tokens of the last real frame; each step feeds the action token (reward and termination
sampled from its heads), then samples the 16 frame tokens one at a time, feeding each back through
the cache; when the next step would overflow ``sequence_length`` frames the cache restarts from the
current frame's tokens. The actor-critic sees frames as floats in [0, 1], (C, 64, 64): decoded
imagined tokens, and for the real context the tokenizer's reconstructions (IRIS's
``use_original_obs: false``) or, with ``policy_frames=real``, the frames themselves. On CUDA
(``decoding=graph``) each imagined frame runs over a fixed-size cache and is recorded once as a CUDA
graph (:class:`_GraphDecoder`): the same tokens, one launch per frame instead of hundreds per
token. Deviations from the paper are listed in ``docs/iris.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import gymnasium as gym
import torch
import torch.nn.functional as F
from seqrl.backbone import KVCache, Transformer, TransformerConfig
from seqrl.backbone.graphs import GraphedCall
from seqrl.errors import ConfigError
from seqrl.protocols import ImaginedStep, TrainingSpec
from seqrl.types import LossOutput, TrajectoryBatch
from seqrl.world_models.evaluation import predictive_mean
from seqrl.world_models.iris_tokenizer import Tokenizer, TokenizerConfig
from torch import Tensor, nn

PolicyFrames = Literal["reconstructed", "real"]
Sampling = Literal["sample", "argmax"]
Decoding = Literal["auto", "cache", "graph"]


def _paper_backbone() -> TransformerConfig:
    return TransformerConfig(
        width=256,
        depth=10,
        heads=4,
        ff="mlp",
        activation="gelu",
        ff_mult=4.0,
        positions="learned",
        max_len=340,
        dropout=0.1,
        attn_dropout=0.1,
    )


@dataclass
class DynamicsConfig:
    """The GPT over frame and action tokens, and its training batches (IRIS ``world_model``)."""

    backbone: TransformerConfig = field(default_factory=_paper_backbone)
    sequence_length: int = field(
        default=20,
        metadata={"help": "frames per training sequence and the imagination window (max_blocks)"},
    )
    batch_size: int = field(default=64, metadata={"help": "sequences per world-model update"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(
        default=0.0,
        metadata={"help": "Adam L2 weight decay (the paper: AdamW 0.01 on weights; see docs)"},
    )
    clip_norm: float = field(default=10.0, metadata={"help": "gradient norm clip (0: none)"})
    action_inputs: bool = field(
        default=False,
        metadata={
            "help": "also add an embedding of the action to every token of the frame it leads "
            "to (not in the paper: each token's input then holds the action, which the GPT "
            "otherwise has to find by attention to the action token)"
        },
    )

    def __post_init__(self) -> None:
        if self.sequence_length < 2 or self.batch_size < 1:
            raise ConfigError("iris: dynamics.sequence_length >= 2 and batch_size >= 1 needed")


@dataclass
class IRISConfig:
    """Everything that shapes an IRIS world model and its training batches."""

    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    policy_frames: PolicyFrames = field(
        default="reconstructed",
        metadata={
            "help": "what the policy sees of real frames: the tokenizer's reconstructions (IRIS) "
            "or the frames themselves"
        },
    )
    sampling: Sampling = field(
        default="sample",
        metadata={"help": "imagined tokens, rewards, terminations: sampled (paper) or argmax"},
    )
    decoding: Decoding = field(
        default="auto",
        metadata={
            "help": "imagination's GPT decoding: 'cache' a growing KV cache, one pass per token; "
            "'graph' a fixed-size cache with each frame's 17 passes and its decoding recorded "
            "once as a CUDA graph (run eagerly off CUDA); 'auto' graph on CUDA, else cache"
        },
    )
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile (inductor) the tokenizer's encoder and decoder: fused "
            "kernels, same weights and checkpoints; the first calls of each batch shape compile "
            "(tens of seconds each at the paper size). The GPT step is not compiled: in graph "
            "decoding on an H200 its compiled form ran 4x slower than the eager one"
        },
    )


# ---------------------------------------------------------------------------------------------
# Presets


def iris_atari100k() -> IRISConfig:
    """The paper's Atari 100k world model (values and sources: ``docs/iris.md``)."""
    return IRISConfig()


def iris_minatar() -> IRISConfig:
    """MinAtar as 64x64 RGB frames: a narrow tokenizer and a 2-layer GPT for the CPU.

    The tokenizer trains on squared error, restarts dead codes, encodes each token's patch
    alone and caches its tokens; the GPT also gets the action in the next frame's token inputs
    (``docs/iris.md``, MinAtar)."""
    return IRISConfig(
        tokenizer=TokenizerConfig(
            vocab_size=128,
            embed_dim=32,
            channels=8,
            channel_mult=(1, 2, 2, 4, 4),
            res_blocks=1,
            attn_resolutions=(),
            z_channels=32,
            norm_groups=8,
            restart_dead_codes=20,
            reconstruction="mse",  # with L1 it draws none of the paddle, ball or trail
            # a patch that does not change keeps its token (whole frames: 36% of them did)
            encoder_scope="patch",
            batch_size=32,
            lr=3e-4,
            # frozen after its schedule's stop: the GPT's batches then encode only new frames
            cache_tokens=True,
        ),
        dynamics=DynamicsConfig(
            backbone=TransformerConfig(
                width=64,
                depth=2,
                heads=2,
                ff="mlp",
                activation="gelu",
                positions="learned",
                max_len=340,
                dropout=0.1,
                attn_dropout=0.0,
            ),
            sequence_length=20,
            batch_size=16,
            lr=1e-3,
            # the GPT then uses the action within 1000 updates, not 3000 (docs/iris.md)
            action_inputs=True,
        ),
    )


PRESETS = {"iris-atari100k": iris_atari100k, "iris-minatar": iris_minatar}
"""Preset name -> config factory."""


# ---------------------------------------------------------------------------------------------
# The GPT over tokens


def _mean_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over the rows, 0 (not NaN) when there are none (all slots burn-in)."""
    return F.cross_entropy(logits, target, reduction="sum") / max(len(target), 1)


def _head(width: int, out: int) -> nn.Sequential:
    """IRIS's heads: Linear-ReLU-Linear."""
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


class Dynamics(nn.Module):
    """The ``world_model`` component: a GPT over ``T`` frames x (K frame tokens + 1 action).

    ``loss(batch)`` tokenizes the batch's observations with the frozen tokenizer (a reference,
    not a submodule: the ``tokenizer`` component owns and trains its weights).
    """

    def __init__(self, cfg: DynamicsConfig, tokenizer: Tokenizer, num_actions: int) -> None:
        super().__init__()
        self.cfg = cfg
        self._tokenizer = (tokenizer,)
        self.k = tokenizer.tokens_per_frame
        self.block = self.k + 1  # tokens per frame: K frame tokens, one action
        self.max_tokens = cfg.sequence_length * self.block
        if cfg.backbone.positions == "learned" and cfg.backbone.max_len < self.max_tokens:
            raise ConfigError(
                f"iris: dynamics.backbone.max_len {cfg.backbone.max_len} < "
                f"{self.max_tokens} tokens ({cfg.sequence_length} frames x {self.block})"
            )
        width, vocab = cfg.backbone.width, tokenizer.cfg.vocab_size
        self.embed_obs = nn.Embedding(vocab, width)
        self.embed_action = nn.Embedding(num_actions, width)
        # action_inputs: the action's embedding added to the next frame's token inputs
        self.embed_action_input = nn.Embedding(num_actions, width) if cfg.action_inputs else None
        self.transformer = Transformer(cfg.backbone)
        self.obs_head = _head(width, vocab)
        self.reward_head = _head(width, 3)
        self.end_head = _head(width, 2)
        for part in (
            self.embed_obs,
            self.embed_action,
            self.embed_action_input,
            self.obs_head,
            self.reward_head,
            self.end_head,
        ):
            if part is not None:
                part.apply(Transformer._init_weights)  # IRIS init_weights: N(0, 0.02), zero biases

    @property
    def tokenizer(self) -> Tokenizer:
        """The frozen tokenizer the tokens come from."""
        return self._tokenizer[0]

    def embed(self, tokens: Tensor, actions: Tensor) -> Tensor:
        """Frame tokens (B, T, K) and actions (B, T) -> interleaved embeddings (B, T (K+1), W).

        With ``action_inputs`` the tokens of frame t + 1 also get the embedding of action t (the
        first frame, whose action is not in the window, gets none)."""
        actions = actions.long()
        obs = self.embed_obs(tokens)
        if self.embed_action_input is not None:
            led = self.embed_action_input(actions[:, :-1])[:, :, None]
            obs = torch.cat((obs[:, :1], obs[:, 1:] + led), 1)
        x = torch.cat((obs, self.embed_action(actions)[:, :, None]), 2)
        return x.flatten(1, 2)

    def embed_frame_token(self, token: Tensor, actions: Tensor) -> Tensor:
        """One imagined frame token (B,) that ``actions`` (B,) led to -> its input (B, 1, W)."""
        x = self.embed_obs(token)
        if self.embed_action_input is not None:
            x = x + self.embed_action_input(actions.long())
        return x[:, None]

    def loss(self, batch: TrajectoryBatch) -> LossOutput:
        """Next-token, reward-sign and termination cross-entropies on real slots.

        Burn-in slots (``extras["burn_in"]``), if any, are context only.
        """
        mask = batch.mask.bool()
        b, t = mask.shape
        k = self.k
        with torch.no_grad():
            tokens = self.tokenizer.tokenize(batch.observations)  # (B, T, K)
        x = self.embed(tokens, batch.actions)
        padding = None if bool(mask.all()) else mask.repeat_interleave(self.block, dim=1)
        h = self.transformer(x, padding_mask=padding).view(b, t, self.block, -1)
        trained = mask
        burn = batch.extras.get("burn_in")
        if burn is not None:
            trained = trained & ~burn.bool()

        # frame token j < K - 1 predicts token j + 1; the action token predicts the next frame's 0
        logits_in = self.obs_head(h[:, :, : k - 1])  # (B, T, K-1, V)
        logits_next = self.obs_head(h[:, :-1, k])  # (B, T-1, V)
        ce_in = F.cross_entropy(
            logits_in.flatten(0, 2), tokens[:, :, 1:].flatten(), reduction="none"
        )
        ce_next = F.cross_entropy(
            logits_next.flatten(0, 1), tokens[:, 1:, 0].flatten(), reduction="none"
        )
        valid_in = trained[:, :, None].expand(b, t, k - 1).flatten()
        valid_next = (trained[:, :-1] & mask[:, 1:]).flatten()
        ce = torch.cat((ce_in[valid_in], ce_next[valid_next]))
        obs_loss = ce.mean() if ce.numel() else ce.sum()

        h_a = h[:, :, k][trained]  # (N, W) at the real action tokens
        reward_target = (batch.rewards[trained].sign() + 1).long()
        reward_logits = self.reward_head(h_a)
        reward_loss = _mean_cross_entropy(reward_logits, reward_target)
        end_logits = self.end_head(h_a)
        end_loss = _mean_cross_entropy(end_logits, batch.terminals[trained].long())
        total = obs_loss + reward_loss + end_loss
        with torch.no_grad():
            accuracy = torch.cat(
                (
                    (logits_in.argmax(-1).flatten() == tokens[:, :, 1:].flatten())[valid_in],
                    (logits_next.argmax(-1).flatten() == tokens[:, 1:, 0].flatten())[valid_next],
                )
            )
        return LossOutput(
            total,
            {
                "obs_loss": float(obs_loss.detach()),
                "reward_loss": float(reward_loss.detach()),
                "end_loss": float(end_loss.detach()),
                "obs_accuracy": float(accuracy.float().mean()) if accuracy.numel() else 0.0,
                "reward_accuracy": float((reward_logits.argmax(-1) == reward_target).float().mean())
                if len(reward_target)
                else 0.0,
            },
        )


# ---------------------------------------------------------------------------------------------
# The world model


@dataclass
class IRISState:
    """Where B imagined rollouts stand: the current frame's tokens and the KV cache behind them.

    ``cache`` is None until the first :meth:`IRIS.imagine_step` (acting in the real env only needs
    the features of ``imagine_start``, not the transformer); otherwise it ends with ``tokens``.
    """

    tokens: Tensor  # (B, K) long
    cache: KVCache | None = None
    decoder: _GraphDecoder | None = None  # graph decoding: the decoder whose cache ends here
    version: int = 0  # the decoder's step count when this state was made

    def select(self, index: Tensor) -> IRISState:
        """Rows ``index`` (long (B',), may repeat), e.g. several rollouts per context (graph
        decoding continues on a copy of its cache, in ``cache`` mode)."""
        cache = self.cache
        if self.decoder is not None:
            cache = self.decoder.kv_cache(self.version)
        cache = None if cache is None else cache.select(index)
        return IRISState(self.tokens.index_select(0, index.to(self.tokens.device)), cache)


class _GraphDecoder:
    """Graph decoding of imagined frames for B rollouts over one :class:`StaticKVCache`.

    A call runs one frame: the action token (reward sign and termination sampled from its heads),
    the K frame tokens one pass each, and the tokenizer's decoding of them; on CUDA the whole
    frame is recorded once as a CUDA graph (:class:`GraphedCall`) and replayed. The cache is
    advanced in place, so only the newest state (``version``) may step.
    """

    def __init__(
        self, model: IRIS, batch_size: int, argmax: bool, device: torch.device, dtype: torch.dtype
    ) -> None:
        dyn = model.dynamics
        self.model, self.argmax = model, argmax
        self.decode = dyn.transformer.decode_static
        self.cache = dyn.transformer.new_static_cache(
            batch_size, dyn.max_tokens, dtype=dtype, device=device
        )
        self.actions = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.length = 0  # the host's copy of cache.length
        self.version = 0
        self.call = GraphedCall(
            self._frame, lambda: self.cache.length.fill_(self.length), device=device
        )

    def _frame(self) -> tuple[Tensor, ...]:
        dyn, argmax, decode = self.model.dynamics, self.argmax, self.decode
        h = decode(dyn.embed_action(self.actions)[:, None], self.cache)[:, 0]
        reward = IRIS._sample(dyn.reward_head(h), argmax)
        end = IRIS._sample(dyn.end_head(h), argmax)
        tokens = []
        for _ in range(dyn.k):
            token = IRIS._sample(dyn.obs_head(h), argmax)
            tokens.append(token)
            h = decode(dyn.embed_frame_token(token, self.actions), self.cache)[:, 0]
        next_tokens = torch.stack(tokens, dim=1)
        return reward, end, next_tokens, self.model.tokenizer.decode(next_tokens)

    def start(self, tokens: Tensor) -> None:
        """Fill the cache with the frame ``tokens`` (B, K) alone (one eager pass)."""
        cache = self.model._refresh(tokens)
        self.cache.load(cache)
        self.length = cache.length

    def step(self, state: IRISState, actions: Tensor) -> tuple[IRISState, ImaginedStep]:
        """The frame after ``state`` (whose cache this decoder holds, or none yet) and ``actions``."""
        block = self.model.dynamics.block
        if state.decoder is self and state.version != self.version:
            raise RuntimeError(
                "iris: this imagination state was already stepped: graph decoding advances one "
                "cache in place (branch rollouts with state.select, or decoding=cache)"
            )
        if state.decoder is not self or self.length + block > self.cache.capacity:
            self.start(state.tokens)
        self.actions.copy_(actions)
        reward, end, tokens, frames = (t.clone() for t in self.call())
        self.length += block
        self.version += 1
        step = ImaginedStep(frames, reward.float() - 1.0, 1.0 - end.float())
        return IRISState(tokens, decoder=self, version=self.version), step

    def kv_cache(self, version: int) -> KVCache:
        """A :class:`KVCache` copy of the cache as of ``version`` (the newest)."""
        if version != self.version:
            raise RuntimeError("iris: this imagination state was already stepped")
        n, c = self.length, self.cache
        return KVCache(
            keys=[k[:, :, :n].clone() for k in c.keys],
            values=[v[:, :, :n].clone() for v in c.values],
            valid=torch.ones(c.batch_size, n, dtype=torch.bool, device=c.keys.device),
            row_start=torch.zeros(c.batch_size, dtype=torch.long, device=c.keys.device),
        )


class IRIS(nn.Module):
    """The IRIS world model: components ``tokenizer`` and ``world_model``, imagination, and the
    evaluation hooks ``reconstruct`` and ``predict`` (see ``world_models/evaluation.py``)."""

    def __init__(self, cfg: IRISConfig, obs_shape: tuple[int, ...], num_actions: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_actions = num_actions
        self.tokenizer = Tokenizer(cfg.tokenizer, obs_shape)
        self.dynamics = Dynamics(cfg.dynamics, self.tokenizer, num_actions)
        if cfg.compile:
            self.tokenizer.compile_networks()
        self.feature_shape: tuple[int, ...] = (self.tokenizer.channels, 64, 64)
        self._decoders: dict[tuple, _GraphDecoder] = {}

    def components(self) -> dict[str, nn.Module]:
        """Trainable parts by name: the tokenizer, and the GPT (without the tokenizer)."""
        return {"tokenizer": self.tokenizer, "world_model": self.dynamics}

    def training_spec(self, name: str) -> TrainingSpec:
        """Batches and optimizer of the component ``name`` (``tokenizer`` or ``world_model``)."""
        if name == "tokenizer":
            t = self.cfg.tokenizer
            return TrainingSpec(
                batch_size=t.batch_size,
                seq_len=1,
                burn_in=0,
                lr=t.lr,
                clip_norm=t.clip_norm or None,
            )
        if name == "world_model":
            d = self.cfg.dynamics
            return TrainingSpec(
                batch_size=d.batch_size,
                seq_len=d.sequence_length,
                burn_in=0,
                lr=d.lr,
                weight_decay=d.weight_decay,
                clip_norm=d.clip_norm or None,
            )
        raise KeyError(f"iris: no component '{name}' (tokenizer, world_model)")

    def loss(self, batch: TrajectoryBatch) -> LossOutput:
        """Both components' losses summed (the loop trains them separately, with their own
        batches; this is for tools that want one number)."""
        tok, dyn = self.tokenizer.loss(batch), self.dynamics.loss(batch)
        metrics = {f"tokenizer/{k}": v for k, v in tok.metrics.items()}
        metrics.update({f"world_model/{k}": v for k, v in dyn.metrics.items()})
        return LossOutput(tok.total + dyn.total, metrics)

    # -- imagination ---------------------------------------------------------------------------

    @staticmethod
    def _sample(logits: Tensor, argmax: bool) -> Tensor:
        """(B, C) logits -> (B,) classes, sampled (Gumbel-max: no host read, so a CUDA graph can
        record it) or the most likely."""
        if argmax:
            return logits.argmax(-1)
        gumbel = -torch.empty_like(logits, dtype=torch.float32).exponential_().log()
        return (logits.float() + gumbel).argmax(-1)

    def imagine_start(self, context: TrajectoryBatch) -> tuple[IRISState, Tensor]:
        """Real context (B, T) -> (state at the last frame, features (B, T, C, 64, 64) in [0, 1]).

        The transformer's memory starts from the last frame alone, as IRIS's ``WorldModelEnv``;
        the earlier steps only burn in the policy (through the returned features).
        """
        if self.cfg.policy_frames == "real":
            frames = self.tokenizer.frames(context.observations)  # (B, T, C, 64, 64)
            return IRISState(self.tokenizer.tokenize(context.observations[:, -1])), frames
        tokens = self.tokenizer.tokenize(context.observations)  # (B, T, K)
        return IRISState(tokens[:, -1]), self.tokenizer.decode(tokens)

    def _refresh(self, tokens: Tensor) -> KVCache:
        """A new cache holding only the frame ``tokens`` (B, K)."""
        cache = self.dynamics.transformer.new_cache(tokens.shape[0])
        self.dynamics.transformer(self.dynamics.embed_obs(tokens), cache=cache)
        return cache

    def imagine_step(self, state: IRISState, actions: Tensor) -> tuple[IRISState, ImaginedStep]:
        """Feed actions (B,), sample reward sign, termination and the next frame's K tokens.

        Returns the decoded next frame (B, C, 64, 64) in [0, 1], rewards in {-1, 0, 1} and
        continues = 1 - termination (each sampled, as the paper).
        """
        return self._step(state, actions, argmax=self.cfg.sampling == "argmax")

    def _graph_decoder(self, batch_size: int, argmax: bool, device: torch.device) -> _GraphDecoder:
        """The decoder for this batch size, sampling mode, device and autocast state."""
        amp = torch.is_autocast_enabled(device.type)
        dtype = (
            torch.get_autocast_dtype(device.type) if amp else self.dynamics.embed_obs.weight.dtype
        )
        key = (batch_size, argmax, device, dtype, self.training)
        if key not in self._decoders:
            if len(self._decoders) >= 4:  # each holds a cache: keep a few
                self._decoders.clear()
            self._decoders[key] = _GraphDecoder(self, batch_size, argmax, device, dtype)
        return self._decoders[key]

    def _step(
        self, state: IRISState, actions: Tensor, argmax: bool
    ) -> tuple[IRISState, ImaginedStep]:
        dyn = self.dynamics
        device = state.tokens.device
        graph = self.cfg.decoding == "graph" or (
            self.cfg.decoding == "auto" and device.type == "cuda"
        )
        if state.decoder is not None or (state.cache is None and graph):
            decoder = state.decoder or self._graph_decoder(state.tokens.shape[0], argmax, device)
            return decoder.step(state, actions)
        cache = state.cache
        if cache is None or cache.length + dyn.block > dyn.max_tokens:
            cache = self._refresh(state.tokens)
        h = dyn.transformer(dyn.embed_action(actions.long())[:, None], cache=cache)[:, 0]
        reward = self._sample(dyn.reward_head(h), argmax).float() - 1.0
        continues = 1.0 - self._sample(dyn.end_head(h), argmax).float()
        tokens = []
        for _ in range(dyn.k):
            token = self._sample(dyn.obs_head(h), argmax)
            tokens.append(token)
            # feed it back (the last one too: the cache then ends with the whole frame)
            h = dyn.transformer(dyn.embed_frame_token(token, actions), cache=cache)[:, 0]
        next_tokens = torch.stack(tokens, dim=1)  # (B, K)
        frames = self.tokenizer.decode(next_tokens)
        return IRISState(next_tokens, cache), ImaginedStep(frames, reward, continues)

    # -- evaluation hooks ----------------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(self, observations: Tensor) -> Tensor:
        """Observations (..., *obs_shape) through the tokens and back: floats in [0, 1] in the
        observations' layout."""
        frames = self.tokenizer.decode(self.tokenizer.encode(self.tokenizer.frames(observations)))
        return self.tokenizer.observations(frames)

    @torch.no_grad()
    def predict(
        self, context: TrajectoryBatch, actions: Tensor, horizon: int, *, samples: int = 0
    ) -> Tensor:
        """Open-loop prediction (B, horizon, *obs_shape) of the observations after the context.

        ``actions`` (B, horizon): ``actions[:, 0]`` is taken at the context's last step.
        ``samples = 0``: the most likely tokens (argmax), whatever ``sampling`` says;
        ``samples = N``: the mean of the decoded frames of N rollouts with sampled tokens (the
        model's predictive mean).
        """

        def rollout(argmax: bool) -> Tensor:
            state, _ = self.imagine_start(context)
            frames = []
            for j in range(horizon):
                state, step = self._step(state, actions[:, j], argmax=argmax)
                frames.append(step.features)
            return torch.stack(frames, dim=1)

        return self.tokenizer.observations(predictive_mean(rollout, samples))


def build_world_model(
    cfg: IRISConfig, observation_space: gym.Space, action_space: gym.Space
) -> IRIS:
    """An IRIS model for image observations (64, 64, C) / (C, 64, 64) / (64, 64) and discrete
    actions."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(f"iris: needs a discrete action space, got {action_space}")
    shape = observation_space.shape
    if shape is None:
        raise ConfigError(f"iris: observation space {observation_space} has no shape")
    return IRIS(cfg, tuple(shape), int(action_space.n))


__all__ = [
    "IRIS",
    "PRESETS",
    "Dynamics",
    "DynamicsConfig",
    "IRISConfig",
    "IRISState",
    "build_world_model",
    "iris_atari100k",
    "iris_minatar",
]
