"""TWM: a Transformer-XL-style world model over categorical latents, rewards and actions.

Robine, Höftmann, Uelwer, Harmeling 2023, *Transformer-based World Models Are Happy With 100k
Interactions*, `arXiv 2303.07109 <https://arxiv.org/abs/2303.07109>`_ (code: jrobine/twm).

Two parts, trained together by :meth:`TWM.loss`:

- **Observation model**: an encoder maps each observation (4 stacked 64x64 grayscale frames, or a
  vector) to ``categoricals`` independent categoricals of ``classes`` classes; ``z`` is a one-hot
  sample with straight-through gradients, and a decoder maps ``z`` back to the observation.
  Loss: decoder NLL (unit variance) + thresholded entropy ``5 * relu(0.1 - H(z)/H_max)`` +
  ``0.01 *`` consistency cross-entropy toward the dynamics' prediction of ``z``.
- **Dynamics**: the shared causal transformer (:class:`seqrl.backbone.Transformer`, rotary relative
  positions) over interleaved tokens ``z_0, a_0, r_0, z_1, a_1, r_1, ...``. The output at ``a_t``,
  ``h_t``, predicts the reward ``r_t``, whether the episode continues after ``a_t`` and the next
  latent ``z_{t+1}`` (cross-entropy against the encoder's distribution, weight 1; reward NLL weight
  10; continue Bernoulli weight 50). The dynamics sees ``z`` detached and the encoder sees the
  dynamics' prediction detached: the "balanced" pair of cross-entropies.

Burn-in slots of a batch (``extras["burn_in"]``) are run without gradients into a KV cache whose
keys and values are then detached (Transformer-XL memory); the trained steps attend to them.
Imagination keeps the last ``memory`` steps in the same kind of cache. Deviations from the paper
are listed in ``docs/twm.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import torch
import torch.nn.functional as F
from seqrl.backbone import KVCache, Transformer, TransformerConfig
from seqrl.errors import ConfigError
from seqrl.protocols import ImaginedStep, TrainingSpec
from seqrl.types import LossOutput, TrajectoryBatch
from seqrl.world_models.evaluation import predictive_mean
from torch import Tensor, nn

ObservationKind = Literal["auto", "image", "vector"]
PolicyInput = Literal["z", "z_h"]
LatentSampling = Literal["sample", "mode"]
RewardTransform = Literal["tanh", "none"]

IMAGE_SIZE = 64  # the CNN (four stride-2 convolutions) and its decoder are built for 64x64 frames


@dataclass
class ObservationModelConfig:
    """Encoder, latent and decoder of the observation model (paper sec. 2.1)."""

    kind: ObservationKind = field(
        default="auto",
        metadata={"help": "image (CNN) or vector (MLP) observations; auto: from the space's rank"},
    )
    categoricals: int = field(default=32, metadata={"help": "number of categorical latents"})
    classes: int = field(default=32, metadata={"help": "classes per categorical latent"})
    unimix: float = field(
        default=0.0,
        metadata={"help": "mix this much of the uniform into latent probabilities (0: paper)"},
    )
    channels: int = field(
        default=48, metadata={"help": "CNN base channels c: encoder c-2c-4c-8c, kernel 4, stride 2"}
    )
    hidden: tuple[int, ...] = field(
        default=(512, 512),
        metadata={"help": "MLP hidden sizes after the CNN (or of the vector MLP)"},
    )
    decoder_coef: float = field(default=1.0, metadata={"help": "weight of the decoder NLL"})
    entropy_coef: float = field(default=5.0, metadata={"help": "weight of the entropy hinge"})
    entropy_threshold: float = field(
        default=0.1, metadata={"help": "normalised latent entropy below which the hinge acts"}
    )
    consistency_coef: float = field(
        default=0.01,
        metadata={"help": "weight of the encoder's CE toward the dynamics' prediction"},
    )

    def __post_init__(self) -> None:
        if self.categoricals < 1 or self.classes < 2:
            raise ValueError("categoricals must be >= 1 and classes >= 2")
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"unimix must be in [0, 1), got {self.unimix}")


def _paper_backbone() -> TransformerConfig:
    return TransformerConfig(
        width=256,
        depth=10,
        heads=4,
        ff="mlp",
        activation="silu",
        ff_mult=4.0,
        positions="rotary",
        dropout=0.1,
    )


@dataclass
class DynamicsConfig:
    """The transformer over (z, a, r) tokens and its heads (paper sec. 2.2)."""

    backbone: TransformerConfig = field(default_factory=_paper_backbone)
    memory: int = field(
        default=16, metadata={"help": "steps of past the KV cache keeps when imagining (mem_len)"}
    )
    z_head: tuple[int, ...] = field(
        default=(512, 512, 512, 512), metadata={"help": "hidden sizes of the next-latent head"}
    )
    reward_head: tuple[int, ...] = field(
        default=(256, 256, 256, 256), metadata={"help": "hidden sizes of the reward head"}
    )
    discount_head: tuple[int, ...] = field(
        default=(256, 256, 256, 256), metadata={"help": "hidden sizes of the continue head"}
    )
    z_coef: float = field(default=1.0, metadata={"help": "weight of the next-latent CE"})
    reward_coef: float = field(default=10.0, metadata={"help": "weight of the reward NLL"})
    discount_coef: float = field(default=50.0, metadata={"help": "weight of the continue NLL"})
    reward_transform: RewardTransform = field(
        default="tanh", metadata={"help": "rewards as the model sees and predicts them"}
    )

    def __post_init__(self) -> None:
        if self.memory < 1:
            raise ValueError(f"memory must be >= 1 step, got {self.memory}")


@dataclass
class WorldModelOptimConfig:
    """Adam for the world model (the paper uses one per part with these same values)."""

    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    eps: float = field(default=1e-5, metadata={"help": "Adam epsilon"})
    weight_decay: float = field(default=1e-6, metadata={"help": "Adam (L2) weight decay"})
    clip_norm: float = field(default=100.0, metadata={"help": "gradient norm clip"})


@dataclass
class TWMConfig:
    """Everything that shapes a TWM world model and its training batches."""

    obs: ObservationModelConfig = field(default_factory=ObservationModelConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    optim: WorldModelOptimConfig = field(default_factory=WorldModelOptimConfig)
    batch_size: int = field(default=100, metadata={"help": "sequences per world-model update"})
    sequence_length: int = field(default=16, metadata={"help": "trained steps per sequence"})
    burn_in: int = field(
        default=1, metadata={"help": "context steps before them, run without gradients"}
    )
    policy_input: PolicyInput = field(
        default="z",
        metadata={"help": "features for the policy: z only, or z and the transformer h"},
    )
    latents: LatentSampling = field(
        default="sample", metadata={"help": "imagined latents: sampled, or the most likely class"}
    )


# ---------------------------------------------------------------------------------------------
# Presets


def twm_atari100k() -> TWMConfig:
    """The paper's Atari 100k world model (values and sources: docs/twm.md)."""
    return TWMConfig()


def twm_cartpole() -> TWMConfig:
    """A small vector-observation model for CartPole: trains in minutes on two CPU cores."""
    return TWMConfig(
        obs=ObservationModelConfig(kind="vector", categoricals=8, classes=8, hidden=(128, 128)),
        dynamics=DynamicsConfig(
            backbone=TransformerConfig(
                width=64,
                depth=2,
                heads=2,
                ff="mlp",
                activation="silu",
                positions="rotary",
                dropout=0.0,
            ),
            memory=16,
            z_head=(128,),
            reward_head=(64,),
            discount_head=(64,),
        ),
        optim=WorldModelOptimConfig(lr=3e-4),
        batch_size=32,
        sequence_length=16,
        burn_in=1,
    )


def twm_minatar() -> TWMConfig:
    """MinAtar rendered as 64x64 grayscale frames: a narrow CNN and a small transformer, sized
    for a few thousand env steps on 2 CPU cores."""
    return TWMConfig(
        obs=ObservationModelConfig(
            kind="image", categoricals=16, classes=16, channels=8, hidden=(128,)
        ),
        dynamics=DynamicsConfig(
            backbone=TransformerConfig(
                width=64,
                depth=2,
                heads=2,
                ff="mlp",
                activation="silu",
                positions="rotary",
                dropout=0.0,
            ),
            memory=16,
            z_head=(128,),
            reward_head=(64,),
            discount_head=(64,),
        ),
        optim=WorldModelOptimConfig(lr=3e-4),
        batch_size=16,
        sequence_length=8,
        burn_in=1,
    )


PRESETS = {"twm-atari100k": twm_atari100k, "twm-cartpole": twm_cartpole, "twm-minatar": twm_minatar}
"""Preset name -> config factory."""


# ---------------------------------------------------------------------------------------------
# Observation model


def _mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int, final_bias: float = 0.0
) -> nn.Sequential:
    """Linear-SiLU layers then a linear output whose bias starts at ``final_bias``."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        layers += [nn.Linear(last, h), nn.SiLU()]
        last = h
    return _twm_init(nn.Sequential(*layers, nn.Linear(last, out_dim)), final_bias)


def _twm_init(net: nn.Sequential, final_bias: float = 0.0) -> nn.Sequential:
    """jrobine/twm ``nets.py`` initialisation: kaiming-uniform weights with the ReLU gain after
    which a SiLU follows, gain 1 for the output layer, zero biases (the output's: ``final_bias``).

    PyTorch's default (gain sqrt(1/3)) shrinks activations layer by layer: the encoder's logits
    start so small that the latents stay uniform and the decoder learns the mean frame instead.
    """
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    for i, layer in enumerate(layers):
        gain = 1.0 if i == len(layers) - 1 else math.sqrt(2.0)
        fan_in = layer.weight[0].numel()  # torch's fan_in (transposed convs: out_ch * k * k)
        bound = math.sqrt(3.0) * gain / math.sqrt(fan_in)
        nn.init.uniform_(layer.weight, -bound, bound)
        assert layer.bias is not None
        nn.init.constant_(layer.bias, final_bias if i == len(layers) - 1 else 0.0)
    return net


def _image_encoder(in_ch: int, c: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """(N, in_ch, 64, 64) -> (N, out_dim): four k4 s2 convolutions (64-31-14-6-2) then an MLP."""
    convs: list[nn.Module] = []
    for cin, cout in ((in_ch, c), (c, 2 * c), (2 * c, 4 * c), (4 * c, 8 * c)):
        convs += [nn.Conv2d(cin, cout, 4, 2), nn.SiLU()]
    return _twm_init(nn.Sequential(*convs, nn.Flatten(), _mlp(8 * c * 2 * 2, hidden, out_dim)))


def _image_decoder(z_dim: int, c: int, out_ch: int) -> nn.Sequential:
    """(N, z_dim) -> (N, out_ch, 64, 64): a linear layer to 16c x 1 x 1, then four transposed
    convolutions with kernels 5, 5, 6, 6 and stride 2 (1-5-13-30-64); output bias starts at 0.5."""
    net = nn.Sequential(
        nn.Linear(z_dim, 16 * c),
        nn.SiLU(),
        nn.Unflatten(1, (16 * c, 1, 1)),
        nn.ConvTranspose2d(16 * c, 4 * c, 5, 2),
        nn.SiLU(),
        nn.ConvTranspose2d(4 * c, 2 * c, 5, 2),
        nn.SiLU(),
        nn.ConvTranspose2d(2 * c, c, 6, 2),
        nn.SiLU(),
        nn.ConvTranspose2d(c, out_ch, 6, 2),
    )
    return _twm_init(net, final_bias=0.5)


class ObservationModel(nn.Module):
    """Observations (..., *obs_shape) <-> categorical latents (..., categoricals * classes).

    Image observations are (C, 64, 64) or (64, 64) (uint8 in [0, 255] or floats in [0, 1]);
    decoded images are floats on the [0, 1] scale. Vector observations are floats.
    """

    def __init__(self, cfg: ObservationModelConfig, obs_shape: tuple[int, ...], kind: str) -> None:
        super().__init__()
        self.cfg, self.obs_shape, self.kind = cfg, tuple(obs_shape), kind
        self.z_dim = cfg.categoricals * cfg.classes
        if kind == "image":
            channels = 1 if len(obs_shape) == 2 else obs_shape[0]
            if tuple(obs_shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
                raise ConfigError(
                    f"twm: image observations must be {IMAGE_SIZE}x{IMAGE_SIZE}, got {obs_shape}"
                )
            self.image_shape = (channels, IMAGE_SIZE, IMAGE_SIZE)
            self.encoder = _image_encoder(channels, cfg.channels, cfg.hidden, self.z_dim)
            self.decoder = _image_decoder(self.z_dim, cfg.channels, channels)
        else:
            (dim,) = obs_shape
            self.encoder = _mlp(dim, cfg.hidden, self.z_dim)
            self.decoder = _mlp(self.z_dim, tuple(reversed(cfg.hidden)), dim)

    def target(self, obs: Tensor) -> Tensor:
        """Observations as the decoder predicts them: floats, images on the [0, 1] scale."""
        if self.kind == "image" and obs.dtype == torch.uint8:
            return obs.float() / 255.0
        return obs.float()

    def logits(self, obs: Tensor) -> Tensor:
        """(..., *obs_shape) -> normalised log-probabilities (..., categoricals, classes)."""
        lead = obs.shape[: obs.ndim - len(self.obs_shape)]
        x = self.target(obs)
        if self.kind == "image":
            x = x.reshape(-1, *self.image_shape)
        out = self.encoder(x).view(*lead, self.cfg.categoricals, self.cfg.classes)
        return self.normalise(out)

    def normalise(self, logits: Tensor) -> Tensor:
        """Log-softmax, mixed with ``unimix`` of the uniform distribution when configured."""
        logp = logits.log_softmax(-1)
        if self.cfg.unimix > 0:
            probs = (1 - self.cfg.unimix) * logp.exp() + self.cfg.unimix / self.cfg.classes
            logp = probs.log()
        return logp

    def sample(self, logp: Tensor, mode: bool = False) -> Tensor:
        """One-hot latents (..., categoricals * classes) with straight-through gradients.

        ``mode`` takes the most likely class of each categorical instead of sampling.
        """
        probs = logp.exp()
        if mode:
            index = logp.argmax(-1)
        else:
            index = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).view(probs.shape[:-1])
        onehot = F.one_hot(index, self.cfg.classes).to(probs.dtype)
        z = onehot + (probs - probs.detach())  # the value is exactly one-hot
        return z.flatten(-2)

    def decode(self, z: Tensor) -> Tensor:
        """(..., z_dim) -> reconstructed observations (..., *obs_shape), floats."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, self.z_dim))
        return out.reshape(*lead, *self.obs_shape)


# ---------------------------------------------------------------------------------------------
# The world model


@dataclass
class TWMState:
    """Where B imagined rollouts stand: the KV cache, z_t, and the tokens not yet in the cache.

    With ``policy_input="z"`` the tokens ``r_{t-1}, z_t`` of an imagined step wait in
    ``pending`` and enter the transformer together with the next action token: one transformer
    call per imagined step instead of two (the outputs are the same; only ``z_h`` features need
    the output at ``z_t`` before acting).
    """

    cache: KVCache
    z: Tensor  # (B, z_dim) one-hot latent of the current step
    mode: bool  # whether latents are the most likely class instead of samples
    pending: Tensor | None = None  # (B, k, width) embeddings of tokens not yet fed

    def select(self, index: Tensor) -> TWMState:
        """Rows ``index`` (long (B',), may repeat), e.g. several rollouts per context."""
        pending = None if self.pending is None else self.pending.index_select(0, index)
        return TWMState(self.cache.select(index), self.z.index_select(0, index), self.mode, pending)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


class TWM(nn.Module):
    """The TWM world model: ``loss(batch)``, ``imagine_start``/``imagine_step``, plus the
    evaluation hooks ``reconstruct`` and ``predict`` (see ``world_models/evaluation.py``)."""

    def __init__(
        self, cfg: TWMConfig, obs_shape: tuple[int, ...], num_actions: int, kind: str
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_actions = num_actions
        self.obs_model = ObservationModel(cfg.obs, obs_shape, kind)
        z_dim, width = self.obs_model.z_dim, cfg.dynamics.backbone.width
        self.embed_z = nn.Linear(z_dim, width)
        self.embed_a = nn.Embedding(num_actions, width)
        self.embed_r = nn.Linear(1, width)
        self.transformer = Transformer(cfg.dynamics.backbone)
        self.z_head = _mlp(width, cfg.dynamics.z_head, z_dim)
        self.reward_head = _mlp(width, cfg.dynamics.reward_head, 1)
        self.discount_head = _mlp(width, cfg.dynamics.discount_head, 1, final_bias=0.99)
        # (stack, H, W) images are stacked grayscale frames: checks compare the newest one
        self.stacked_frames = kind == "image" and len(obs_shape) == 3 and obs_shape[0] > 1
        self.feature_shape: tuple[int, ...] = (
            (z_dim,) if cfg.policy_input == "z" else (z_dim + width,)
        )

    def components(self) -> dict[str, nn.Module]:
        """Trainable parts by name: TWM trains as one module."""
        return {"world_model": self}

    # -- dynamics ------------------------------------------------------------------------------

    def _reward_input(self, rewards: Tensor) -> Tensor:
        r = rewards.float()
        return torch.tanh(r) if self.cfg.dynamics.reward_transform == "tanh" else r

    def _tokens(self, z: Tensor, actions: Tensor, rewards: Tensor) -> Tensor:
        """(B, T, z_dim), (B, T), (B, T) -> interleaved embeddings (B, 3T, width)."""
        parts = (self.embed_z(z), self.embed_a(actions.long()), self.embed_r(rewards[..., None]))
        return torch.stack(parts, dim=2).flatten(1, 2)

    def dynamics(
        self, z: Tensor, actions: Tensor, rewards: Tensor, mask: Tensor, burn_in: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Transformer outputs at the z and a tokens of steps ``burn_in:``: two (B, T', width).

        ``rewards`` are already transformed. The first ``burn_in`` steps become a detached KV
        cache computed without gradients (Transformer-XL memory). Padding steps (``mask`` False)
        are invisible to every other token.
        """
        b, t = mask.shape
        token_mask = mask.repeat_interleave(3, dim=1)  # (B, 3T)
        tokens = self._tokens(z, actions, rewards)
        cache = None
        if burn_in > 0:
            cache = self.transformer.new_cache(b)
            with torch.no_grad():
                self.transformer(
                    tokens[:, : 3 * burn_in], padding_mask=token_mask[:, : 3 * burn_in], cache=cache
                )
            cache.detach_()
        rest_mask = token_mask[:, 3 * burn_in :]
        y = self.transformer(
            tokens[:, 3 * burn_in :],
            padding_mask=None if cache is None and bool(rest_mask.all()) else rest_mask,
            cache=cache,
        )
        y = y.view(b, t - burn_in, 3, -1)
        return y[:, :, 0], y[:, :, 1]

    def _z_logits(self, h: Tensor) -> Tensor:
        cfg = self.cfg.obs
        return self.obs_model.normalise(
            self.z_head(h).unflatten(-1, (cfg.categoricals, cfg.classes))
        )

    # -- training ------------------------------------------------------------------------------

    def training_spec(self, name: str) -> TrainingSpec:
        """Batches and optimizer of the component ``name`` (TWM has one: ``world_model``)."""
        cfg = self.cfg
        return TrainingSpec(
            batch_size=cfg.batch_size,
            seq_len=cfg.sequence_length,
            burn_in=cfg.burn_in,
            lr=cfg.optim.lr,
            eps=cfg.optim.eps,
            weight_decay=cfg.optim.weight_decay,
            clip_norm=cfg.optim.clip_norm or None,
        )

    def pretrain_loss(self, batch: TrajectoryBatch) -> LossOutput:
        """The observation model alone (decoder and entropy terms): the paper pretrains it on
        the random prefill before the dynamics, without the consistency term."""
        return self._loss(batch, observation_only=True)

    def loss(self, batch: TrajectoryBatch) -> LossOutput:
        """Observation-model and dynamics losses on a batch of (burn-in +) trained steps."""
        return self._loss(batch, observation_only=False)

    def _loss(self, batch: TrajectoryBatch, observation_only: bool) -> LossOutput:
        ocfg, dcfg = self.cfg.obs, self.cfg.dynamics
        obs, mask, terminals = batch.observations, batch.mask.bool(), batch.terminals.bool()
        n = _burn_in_steps(batch)
        rewards = self._reward_input(batch.rewards)
        with torch.no_grad():  # burn-in latents: context only
            logp_ctx = self.obs_model.logits(obs[:, :n])
            z_ctx = self.obs_model.sample(logp_ctx) if n > 0 else logp_ctx.flatten(-2)

        # observation model on the trained steps
        logp = self.obs_model.logits(obs[:, n:])  # (B, T', K, C)
        z = self.obs_model.sample(logp)
        valid = mask[:, n:]  # (B, T')
        recon = self.obs_model.decode(z)
        target = self.obs_model.target(obs[:, n:])
        sq = (recon - target).pow(2).flatten(2).sum(-1)  # (B, T')
        decoder_loss = _masked_mean(0.5 * sq, valid)
        max_entropy = ocfg.categoricals * math.log(ocfg.classes)
        entropy = -(logp.exp() * logp).sum((-1, -2)) / max_entropy  # (B, T') normalised
        norm_entropy = _masked_mean(entropy, valid)
        entropy_loss = F.relu(ocfg.entropy_threshold - norm_entropy)

        if observation_only:
            obs_loss = ocfg.decoder_coef * decoder_loss + ocfg.entropy_coef * entropy_loss
            return LossOutput(
                obs_loss,
                {"decoder_loss": decoder_loss.detach(), "z_entropy": norm_entropy.detach()},
            )

        # dynamics on detached latents: h_t (at a_t) predicts r_t, continue_t and z_{t+1}
        z_all = torch.cat((z_ctx, z.detach()), dim=1)
        _, h = self.dynamics(z_all, batch.actions, rewards, mask, burn_in=n)
        pred_logp = self._z_logits(h)  # (B, T', K, C)
        target_probs = torch.cat((logp_ctx, logp), dim=1)[:, n + 1 :].detach().exp()
        z_valid = valid[:, :-1] & mask[:, n + 1 :] & ~terminals[:, n:-1]  # (B, T'-1)
        z_ce = -(target_probs * pred_logp[:, :-1]).sum((-1, -2))
        z_loss = _masked_mean(z_ce, z_valid)
        # the encoder moves toward the dynamics' prediction (which gets no gradient from this)
        consistency = -(pred_logp[:, :-1].detach().exp() * logp[:, 1:]).sum((-1, -2))
        consistency_loss = _masked_mean(consistency, z_valid)

        pred_r = self.reward_head(h).squeeze(-1)
        reward_loss = _masked_mean(0.5 * (pred_r - rewards[:, n:]).pow(2), valid)
        cont_logit = self.discount_head(h).squeeze(-1)
        cont_target = (~terminals[:, n:]).float()
        cont_loss = _masked_mean(
            F.binary_cross_entropy_with_logits(cont_logit, cont_target, reduction="none"), valid
        )

        obs_loss = (
            ocfg.decoder_coef * decoder_loss
            + ocfg.entropy_coef * entropy_loss
            + ocfg.consistency_coef * consistency_loss
        )
        dyn_loss = (
            dcfg.z_coef * z_loss + dcfg.reward_coef * reward_loss + dcfg.discount_coef * cont_loss
        )
        total = obs_loss + dyn_loss
        with torch.no_grad():
            recon_mae = _masked_mean((recon - target).abs().flatten(2).mean(-1), valid)
        metrics: dict[str, Any] = {
            "obs_loss": obs_loss.detach(),
            "dyn_loss": dyn_loss.detach(),
            "decoder_loss": decoder_loss.detach(),
            "z_entropy": norm_entropy.detach(),
            "consistency_ce": consistency_loss.detach(),
            "z_ce": z_loss.detach(),
            "reward_loss": reward_loss.detach(),
            "continue_loss": cont_loss.detach(),
            "recon_mae": recon_mae,
        }
        return LossOutput(total, metrics)

    # -- imagination ---------------------------------------------------------------------------

    def _features(self, z: Tensor, h_z: Tensor) -> Tensor:
        return z if self.cfg.policy_input == "z" else torch.cat((z, h_z), dim=-1)

    def imagine_start(self, context: TrajectoryBatch) -> tuple[TWMState, Tensor]:
        """Burn in on real context (B, T): returns the state and features (B, T, *feature_shape).

        Uses observations[:, :T] and actions/rewards[:, :T-1]; the state waits for the action of
        the last step.
        """
        return self._start(context, mode=self.cfg.latents == "mode")

    def _start(self, context: TrajectoryBatch, mode: bool) -> tuple[TWMState, Tensor]:
        obs, mask = context.observations, context.mask.bool()
        b, t = mask.shape
        z = self.obs_model.sample(self.obs_model.logits(obs), mode=mode)  # (B, T, z_dim)
        rewards = self._reward_input(context.rewards[:, : t - 1])
        tokens = torch.cat(
            (
                self._tokens(z[:, :-1], context.actions[:, : t - 1], rewards),
                self.embed_z(z[:, -1:]),
            ),
            dim=1,
        )  # (B, 3T - 2, width)
        token_mask = mask.repeat_interleave(3, dim=1)[:, : 3 * t - 2]
        cache = self.transformer.new_cache(b, keep=3 * self.cfg.dynamics.memory)
        y = self.transformer(
            tokens, padding_mask=None if bool(token_mask.all()) else token_mask, cache=cache
        )
        h_z = y[:, 0::3]  # (B, T, width): outputs at every z token
        return TWMState(cache, z[:, -1], mode), self._features(z, h_z)

    def imagine_step(self, state: TWMState, actions: Tensor) -> tuple[TWMState, ImaginedStep]:
        """Feed actions (B,), predict reward, continue probability and the next latent.

        Rewards are on the transformed scale (tanh by default); continues are probabilities.
        """
        tokens = self.embed_a(actions.long())[:, None]
        if state.pending is not None:
            tokens = torch.cat((state.pending, tokens), dim=1)
        h = self.transformer(tokens, cache=state.cache)[:, -1]  # output at a_t
        reward = self.reward_head(h).squeeze(-1)
        cont = torch.sigmoid(self.discount_head(h).squeeze(-1))
        z_next = self.obs_model.sample(self._z_logits(h), mode=state.mode)
        pending: Tensor | None = torch.stack(
            (self.embed_r(reward[:, None]), self.embed_z(z_next)), dim=1
        )
        if self.cfg.policy_input == "z":
            features = z_next
        else:  # the policy needs the output at z_{t+1}: feed r_t, z_{t+1} now
            assert pending is not None
            features = self._features(z_next, self.transformer(pending, cache=state.cache)[:, 1])
            pending = None
        next_state = TWMState(state.cache, z_next, state.mode, pending)
        return next_state, ImaginedStep(features, reward, cont)

    # -- evaluation hooks ----------------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(self, observations: Tensor) -> Tensor:
        """Observations (..., *obs_shape) through the most likely latent and back (floats,
        images on the [0, 1] scale)."""
        z = self.obs_model.sample(self.obs_model.logits(observations), mode=True)
        return self.obs_model.decode(z)

    @torch.no_grad()
    def predict(
        self, context: TrajectoryBatch, actions: Tensor, horizon: int, *, samples: int = 0
    ) -> Tensor:
        """Open-loop prediction (B, horizon, *obs_shape) of the observations after the context.

        ``actions`` (B, horizon): ``actions[:, 0]`` is taken at the context's last step, each
        later one at the imagined step before. ``samples = 0``: the most likely latents;
        ``samples = N``: the mean of the decoded frames of N rollouts with sampled latents (the
        model's predictive mean, the prediction with the lowest expected squared error).
        """

        def rollout(mode: bool) -> Tensor:
            state, _ = self._start(context, mode=mode)
            frames = []
            for k in range(horizon):
                state, _ = self.imagine_step(state, actions[:, k])
                frames.append(self.obs_model.decode(state.z))
            return torch.stack(frames, dim=1)

        return predictive_mean(rollout, samples)


def _burn_in_steps(batch: TrajectoryBatch) -> int:
    """Number of leading burn-in slots (the same in every row), from ``extras["burn_in"]``."""
    burn = batch.extras.get("burn_in")
    if burn is None:
        return 0
    burn = burn.bool()
    n = int(burn[0].sum())
    if not bool((burn == burn[:1]).all()) or bool(burn[:, n:].any()):
        raise ValueError("twm: extras['burn_in'] must mark the same leading slots in every row")
    if n >= batch.seq_len:
        raise ValueError(f"twm: burn_in {n} leaves no trained steps of {batch.seq_len}")
    return n


def observation_kind(cfg: ObservationModelConfig, observation_space: gym.Space) -> str:
    """``image`` or ``vector``: the config's choice, or from the space's rank when ``auto``."""
    shape = observation_space.shape
    if shape is None:
        raise ConfigError(f"twm: observation space {observation_space} has no shape")
    kind = cfg.kind
    if kind == "auto":
        kind = "vector" if len(shape) == 1 else "image"
    if kind == "vector" and len(shape) != 1:
        raise ConfigError(f"twm: vector observations must be 1-D, got shape {shape}")
    if kind == "image" and len(shape) not in (2, 3):
        raise ConfigError(f"twm: image observations must be (H, W) or (C, H, W), got {shape}")
    return kind


def build_world_model(cfg: TWMConfig, observation_space: gym.Space, action_space: gym.Space) -> TWM:
    """A TWM for these spaces (discrete actions; images (C, 64, 64) / (64, 64), or vectors)."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(f"twm: needs a discrete action space, got {action_space}")
    kind = observation_kind(cfg.obs, observation_space)
    assert observation_space.shape is not None
    return TWM(cfg, tuple(observation_space.shape), int(action_space.n), kind)
