"""IRIS's discrete autoencoder: 64x64 frames <-> a grid of tokens from a learned codebook.

Micheli, Alonso, Fleuret 2023, *Transformers are Sample-Efficient World Models*,
`arXiv 2209.00588 <https://arxiv.org/abs/2209.00588>`_ (code: eloialonso/iris,
``src/models/tokenizer/``; the network is taming-transformers' VQGAN encoder and decoder).

- **Encoder**: a ResNet (GroupNorm, swish) with one level per entry of ``channel_mult``; every level
  but the last halves the resolution (5 levels: 64 -> 4, a 4x4 grid of 16 tokens), self-attention
  at the resolutions ``attn_resolutions``, then a middle block (res, attention, res).
  ``encoder_scope = patch`` (not in the paper, off by default) encodes each token's patch alone
  instead of the whole frame, so an unchanged patch keeps its token (the ``iris-minatar``
  preset's choice: with whole frames, 64% of MinAtar's unchanged patches changed token).
- **Quantiser**: 1x1 convolution to ``embed_dim``, nearest codebook vector of ``vocab_size`` codes
  (plain nearest neighbour, no EMA), 1x1 convolution back; straight-through gradients. Optional
  (not in the paper, off by default): ``restart_dead_codes = N`` resets a code that no frame of
  the last N training batches used to an encoder output of the current batch (dead-code restarts,
  as in Jukebox, Dhariwal et al. 2020), against codebook collapse.
- **Decoder**: the mirror image, ``res_blocks + 1`` residual blocks per level, nearest upsampling.
- **Loss** (``Tokenizer.loss``): L1 reconstruction on the [-1, 1] scale (``reconstruction=mse``:
  squared error instead, not in the paper; the ``iris-minatar`` preset's choice) + codebook
  ``|sg(z) - e|^2`` + ``beta * |z - sg(e)|^2`` (commitment, beta 1.0) + optionally the perceptual
  loss (LPIPS on VGG16, weight 1). The perceptual network's pretrained weights cannot be
  downloaded here: it is off by default (an ablation of the paper's setting, see ``docs/iris.md``)
  and switched on with ``perceptual=lpips`` and a weights file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from seqrl.backbone.encoders import cpu_channels_last
from seqrl.errors import ConfigError
from seqrl.types import LossOutput, TrajectoryBatch
from torch import Tensor, nn

Perceptual = Literal["off", "lpips", "lpips_random"]
Reconstruction = Literal["l1", "mse"]
EncoderScope = Literal["frame", "patch"]

IMAGE_SIZE = 64

PERCEPTUAL_NOTE = (
    "iris: tokenizer trains without the perceptual (LPIPS) loss: an ablation of the paper's "
    "setting (switch it on with --world_model.tokenizer.perceptual=lpips "
    "--world_model.tokenizer.perceptual_weights=FILE)"
)
"""The one-line note a run without the perceptual loss logs."""


@dataclass
class TokenizerConfig:
    """The VQ autoencoder, its losses and its training batches (IRIS ``config/tokenizer``)."""

    vocab_size: int = field(default=512, metadata={"help": "codebook size (token vocabulary)"})
    embed_dim: int = field(default=512, metadata={"help": "dimension of each codebook vector"})
    channels: int = field(default=64, metadata={"help": "base channels ch of encoder and decoder"})
    channel_mult: tuple[int, ...] = field(
        default=(1, 1, 1, 1, 1),
        metadata={"help": "channels ch * m per level; every level but the last halves the size"},
    )
    res_blocks: int = field(
        default=2, metadata={"help": "residual blocks per encoder level (decoder: one more)"}
    )
    attn_resolutions: tuple[int, ...] = field(
        default=(8, 16), metadata={"help": "resolutions with a self-attention block after each res"}
    )
    z_channels: int = field(default=512, metadata={"help": "channels of the encoder's output"})
    dropout: float = field(default=0.0, metadata={"help": "dropout in the residual blocks"})
    norm_groups: int = field(default=32, metadata={"help": "GroupNorm groups (at most channels)"})
    commitment_beta: float = field(
        default=1.0, metadata={"help": "beta of the commitment term |z - sg(e)|^2"}
    )
    restart_dead_codes: int = field(
        default=0,
        metadata={
            "help": "reset a code unused for this many training batches to a random encoder "
            "output of the current batch (0: never, as the paper)"
        },
    )
    reconstruction: Reconstruction = field(
        default="l1",
        metadata={
            "help": "pixel loss on the [-1, 1] scale: l1 (the paper) or mse. L1's optimum is the "
            "per-pixel median, which is the background for small objects that a coarse code "
            "does not yet pin down (MinAtar's ball and paddle): mse draws them in"
        },
    )
    encoder_scope: EncoderScope = field(
        default="frame",
        metadata={
            "help": "frame (the paper): the encoder sees the whole frame, so a token depends on "
            "its neighbours' pixels too; patch: each token's (64 / grid)-pixel patch is encoded "
            "alone, so a patch whose pixels do not change keeps its token (the decoder still "
            "sees every token)"
        },
    )
    perceptual: Perceptual = field(
        default="off",
        metadata={
            "help": "off (no download possible: an ablation of the paper); lpips: LPIPS-VGG16 "
            "with the weights file perceptual_weights; lpips_random: random weights (tests)"
        },
    )
    perceptual_weights: str = field(
        default="",
        metadata={
            "help": "lpips: a torch file with torchvision VGG16 'features.*' and the lpips "
            "package's 'lin{0..4}.model.1.weight' tensors"
        },
    )
    perceptual_coef: float = field(default=1.0, metadata={"help": "weight of the perceptual loss"})
    batch_size: int = field(default=256, metadata={"help": "frames per tokenizer update"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    clip_norm: float = field(default=10.0, metadata={"help": "gradient norm clip (0: none)"})
    cache_tokens: bool = field(
        default=False,
        metadata={
            "help": "keep each observation's tokens (keyed by a digest of its bytes) while the "
            "encoding weights stay the same, so the GPT's batches encode only new frames: for "
            "CPU runs that freeze the tokenizer (tokenizer_train.stop); the digests need the "
            "observations on the host"
        },
    )

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.embed_dim < 1 or self.channels < 1 or self.z_channels < 1:
            raise ConfigError("iris: tokenizer sizes must be positive (vocab_size >= 2)")
        if not self.channel_mult or self.res_blocks < 1:
            raise ConfigError("iris: tokenizer needs channel_mult and res_blocks >= 1")
        if self.restart_dead_codes < 0:
            raise ConfigError("iris: tokenizer.restart_dead_codes must be >= 0 (0: never)")


class _TokenMemo:
    """Tokens of the observations encoded so far, keyed by a 16-byte BLAKE2 digest of each
    observation's bytes, valid while the encoding weights equal the copy taken when it was
    (re)started: :meth:`check` compares them exactly at every call and empties the memo when any
    changed (an optimizer step, a code restart, a loaded checkpoint)."""

    LIMIT = 1 << 20  # observations kept before the memo starts over (16 tokens each: 128 MiB)

    def __init__(self, tokens_per_frame: int) -> None:
        self.k = tokens_per_frame
        self.weights: list[Tensor] = []
        self.rows: dict[bytes, int] = {}
        self.store = torch.empty(0, tokens_per_frame, dtype=torch.long)

    def check(self, weights: list[Tensor]) -> None:
        """Start over unless ``weights`` equal the copy the memo was filled under."""
        same = len(weights) == len(self.weights) and all(
            a.shape == b.shape and torch.equal(a, b)
            for a, b in zip(weights, self.weights, strict=True)
        )
        if not same or len(self.rows) >= self.LIMIT:
            self.weights = [w.detach().clone() for w in weights]
            self.rows.clear()
            self.store = torch.empty(0, self.k, dtype=torch.long)

    def lookup(self, observations: Tensor, encode: Callable[[Tensor], Tensor]) -> Tensor:
        """Tokens (N, K) of ``observations`` (N, ...): encodes (with ``encode``) only those
        not seen yet, once each, and returns all on the observations' device."""
        host = observations.detach().cpu().contiguous()
        raw = host.view(torch.uint8) if host.dtype != torch.uint8 else host
        keys = [blake2b(row.numpy().data, digest_size=16).digest() for row in raw.flatten(1)]
        new: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self.rows and key not in new:
                new[key] = i
        if new:
            tokens = encode(observations[torch.tensor(list(new.values()))]).cpu()
            start = len(self.store)
            self.store = torch.cat((self.store, tokens))
            self.rows.update({key: start + j for j, key in enumerate(new)})
        index = torch.tensor([self.rows[key] for key in keys], dtype=torch.long)
        return self.store[index].to(observations.device)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=1e-6)


class _ResBlock(nn.Module):
    """GroupNorm-swish-conv3x3 twice, plus a (1x1-projected) skip."""

    def __init__(self, cin: int, cout: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _AttnBlock(nn.Module):
    """Single-head self-attention over the h * w positions of a feature map, residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=-1)  # (B, hw, C)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


def _level(
    cin: int, cout: int, blocks: int, attn: bool, cfg: TokenizerConfig
) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for _ in range(blocks):
        layers.append(_ResBlock(cin, cout, cfg.norm_groups, cfg.dropout))
        cin = cout
        if attn:
            layers.append(_AttnBlock(cout, cfg.norm_groups))
    return layers, cin


def _middle(channels: int, cfg: TokenizerConfig) -> list[nn.Module]:
    return [
        _ResBlock(channels, channels, cfg.norm_groups, cfg.dropout),
        _AttnBlock(channels, cfg.norm_groups),
        _ResBlock(channels, channels, cfg.norm_groups, cfg.dropout),
    ]


class _Downsample(nn.Module):
    """3x3 stride-2 convolution with taming's asymmetric (0, 1, 0, 1) padding: (H, W) -> /2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class _Upsample(nn.Module):
    """Nearest x2 then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _encoder(in_ch: int, cfg: TokenizerConfig) -> nn.Sequential:
    """(N, in_ch, 64, 64) -> (N, z_channels, 64 / 2^(levels - 1), same)."""
    ch, res = cfg.channels, IMAGE_SIZE
    layers: list[nn.Module] = [nn.Conv2d(in_ch, ch, 3, padding=1)]
    cin = ch
    for i, mult in enumerate(cfg.channel_mult):
        level, cin = _level(cin, ch * mult, cfg.res_blocks, res in cfg.attn_resolutions, cfg)
        layers += level
        if i != len(cfg.channel_mult) - 1:
            layers.append(_Downsample(cin))
            res //= 2
    layers += _middle(cin, cfg)
    layers += [_norm(cin, cfg.norm_groups), nn.SiLU(), nn.Conv2d(cin, cfg.z_channels, 3, padding=1)]
    return nn.Sequential(*layers)


def _decoder(out_ch: int, cfg: TokenizerConfig) -> nn.Sequential:
    """(N, z_channels, g, g) -> (N, out_ch, 64, 64) on the [-1, 1] scale."""
    ch, levels = cfg.channels, len(cfg.channel_mult)
    res = IMAGE_SIZE // 2 ** (levels - 1)
    cin = ch * cfg.channel_mult[-1]
    layers: list[nn.Module] = [nn.Conv2d(cfg.z_channels, cin, 3, padding=1), *_middle(cin, cfg)]
    for i in reversed(range(levels)):
        level, cin = _level(
            cin, ch * cfg.channel_mult[i], cfg.res_blocks + 1, res in cfg.attn_resolutions, cfg
        )
        layers += level
        if i != 0:
            layers.append(_Upsample(cin))
            res *= 2
    layers += [_norm(cin, cfg.norm_groups), nn.SiLU(), nn.Conv2d(cin, out_ch, 3, padding=1)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# Perceptual loss

# torchvision's VGG16 ``features`` up to relu5_3 (index 29); LPIPS taps the relus after each block
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_LPIPS_TAPS = (3, 8, 15, 22, 29)
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)


class _NetLin(nn.Module):
    """The lpips package's ``NetLinLayer``: dropout then a 1x1 convolution to one channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS with a VGG16 trunk (Zhang et al. 2018, https://arxiv.org/abs/1801.03924), frozen.

    The state dict has torchvision's VGG16 ``features.*`` keys and the lpips package's
    ``lin{0..4}.model.1.weight`` keys, so the two published files merged load as they are.
    Built with random weights unless ``weights`` names such a file.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        self.register_buffer(
            "shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False
        )
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        for i, ch in enumerate(_LPIPS_CHANNELS):
            self.add_module(f"lin{i}", _NetLin(ch))
        if weights:
            path = Path(weights)
            if not path.is_file():
                raise ConfigError(f"iris: perceptual_weights file {path} does not exist")
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing, unexpected = self.load_state_dict(state, strict=False)
            if missing:
                raise ConfigError(f"iris: {path} lacks LPIPS weights, e.g. '{missing[0]}'")
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPS:
        """Always in eval mode (its dropout is for the lpips package's own training)."""
        return super().train(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Distances (N,) between images ``x`` and ``y`` (N, 3 or 1, H, W) on the [-1, 1] scale."""
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        h = (torch.cat((x, y)) - self.shift) / self.scale
        total = x.new_zeros(x.shape[0])
        tap = 0
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i == _LPIPS_TAPS[tap]:
                fx, fy = h.chunk(2)
                fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                lin = getattr(self, f"lin{tap}")
                total = total + lin.model((fx - fy).pow(2)).mean((1, 2, 3))
                tap += 1
                if tap == len(_LPIPS_TAPS):
                    break
        return total


# ---------------------------------------------------------------------------------------------
# The tokenizer


def codebook_usage(tokens: Tensor, vocab_size: int) -> tuple[float, float]:
    """Fraction of the ``vocab_size`` codes that occur in ``tokens`` (any shape, long), and the
    perplexity ``exp(H)`` of their empirical distribution (1: one code; vocab_size: uniform)."""
    counts = torch.bincount(tokens.flatten(), minlength=vocab_size).float()
    probs = counts / counts.sum().clamp(min=1.0)
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum()
    return float((counts > 0).float().mean()), float(entropy.exp())


def frame_layout(obs_shape: tuple[int, ...]) -> tuple[int, bool]:
    """(channels, channels_last) of image observations (64, 64), (64, 64, C) or (C, 64, 64)."""
    shape = tuple(obs_shape)
    if len(shape) == 2:
        channels, last, hw = 1, False, shape
    elif len(shape) == 3 and shape[-1] in (1, 3) and shape[0] not in (1, 3):
        channels, last, hw = shape[-1], True, shape[:2]
    elif len(shape) == 3:
        channels, last, hw = shape[0], False, shape[1:]
    else:
        raise ConfigError(f"iris: needs image observations (H, W[, C]) or (C, H, W), got {shape}")
    if hw != (IMAGE_SIZE, IMAGE_SIZE):
        raise ConfigError(f"iris: frames must be {IMAGE_SIZE}x{IMAGE_SIZE}, got shape {shape}")
    return channels, last


class Tokenizer(nn.Module):
    """Frames (N, C, 64, 64) floats in [0, 1] <-> tokens (N, K) long, K = grid^2 (16 by default).

    ``obs_shape`` is one observation's shape as the environment gives it ((64, 64, C) or
    (C, 64, 64), uint8 or floats in [0, 1]); :meth:`frames` converts observations to frames and
    ``loss(batch)`` takes raw observation batches.
    """

    def __init__(self, cfg: TokenizerConfig, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        self.channels, self.channels_last = frame_layout(self.obs_shape)
        channels = self.channels
        self.grid = IMAGE_SIZE // 2 ** (len(cfg.channel_mult) - 1)
        self.tokens_per_frame = self.grid * self.grid
        self.encoder = _encoder(channels, cfg)
        self.pre_quant = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.codebook = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / cfg.vocab_size, 1.0 / cfg.vocab_size)
        # training batches since each code was last used (for restart_dead_codes)
        self.register_buffer(
            "code_idle", torch.zeros(cfg.vocab_size, dtype=torch.long), persistent=False
        )
        self.post_quant = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = _decoder(channels, cfg)
        # torch.compile'd encoder and decoder (compile_networks), kept out of the module tree
        self._compiled: tuple[nn.Module, nn.Module] | None = None
        self._memo = _TokenMemo(self.tokens_per_frame) if cfg.cache_tokens else None
        self.lpips: LPIPS | None = None
        if cfg.perceptual == "lpips":
            if not cfg.perceptual_weights:
                raise ConfigError("iris: tokenizer.perceptual=lpips needs perceptual_weights=FILE")
            self.lpips = LPIPS(cfg.perceptual_weights)
        elif cfg.perceptual == "lpips_random":
            self.lpips = LPIPS()

    def compile_networks(self) -> None:
        """Run the encoder and decoder through ``torch.compile`` (inductor) from now on.

        Weights, state dict and checkpoints are unchanged; each new input shape (and grad or
        train mode) compiles on its first call, which takes seconds to a minute.
        """
        self._compiled = (torch.compile(self.encoder), torch.compile(self.decoder))

    def frames(self, observations: Tensor) -> Tensor:
        """Observations (..., *obs_shape) -> frames (..., C, 64, 64) float in [0, 1]."""
        x = observations.float() / 255.0 if observations.dtype == torch.uint8 else observations
        x = x.float()
        if len(self.obs_shape) == 2:
            return x.unsqueeze(-3)
        return x.movedim(-1, -3) if self.channels_last else x

    def observations(self, frames: Tensor) -> Tensor:
        """Frames (..., C, 64, 64) -> floats in the observations' layout (..., *obs_shape)."""
        if len(self.obs_shape) == 2:
            return frames.squeeze(-3)
        return frames.movedim(-3, -1) if self.channels_last else frames

    def _quantise(self, frames: Tensor, restart: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(N, C, 64, 64) in [0, 1] -> z (N, E, g, g), tokens (N, K), z_q (N, E, g, g).

        ``restart``: first reset the codes idle for ``restart_dead_codes`` batches (training)."""
        encoder = self.encoder if self._compiled is None else self._compiled[0]
        x = frames * 2.0 - 1.0
        n, g = x.shape[0], self.grid
        if self.cfg.encoder_scope == "patch":  # (N, C, g p, g p) -> (N g g, C, p, p)
            p = x.shape[-1] // g
            x = x.reshape(n, -1, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n * g * g, -1, p, p)
        z = self.pre_quant(encoder(cpu_channels_last(x)))
        if self.cfg.encoder_scope == "patch":  # (N g g, E, 1, 1) -> (N, E, g, g)
            z = z.reshape(n, g, g, -1).permute(0, 3, 1, 2)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N g g, E)
        if restart:
            self._restart_dead_codes(flat.detach())
        # nearest codes in float32 whatever the autocast: in bfloat16 the distances (|z|^2 of
        # tens) keep about 3 digits, and the argmin turned into noise among close codes
        with torch.autocast(flat.device.type, enabled=False):
            f, e = flat.detach().float(), self.codebook.weight.detach().float()
            dist = f.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2.0 * f @ e.t()
        tokens = dist.argmin(-1).view(z.shape[0], -1)  # (N, K), row-major over the grid
        return z, tokens, self.embed(tokens)

    @torch.no_grad()
    def _restart_dead_codes(self, vectors: Tensor) -> None:
        """Codes idle for ``restart_dead_codes`` batches become random rows of ``vectors``
        (encoder outputs, (M, E)); done before the codebook enters this batch's graph."""
        dead = (self.code_idle >= self.cfg.restart_dead_codes).nonzero().flatten()
        if dead.numel() == 0:
            return
        pick = torch.randint(len(vectors), (dead.numel(),), device=vectors.device)
        self.codebook.weight[dead] = vectors[pick].to(self.codebook.weight.dtype)
        self.code_idle[dead] = 0

    def embed(self, tokens: Tensor) -> Tensor:
        """Tokens (N, K) -> codebook vectors as a grid (N, E, g, g)."""
        e = self.codebook(tokens)  # (N, K, E)
        return e.transpose(1, 2).reshape(tokens.shape[0], -1, self.grid, self.grid)

    @torch.no_grad()
    def encode(self, frames: Tensor) -> Tensor:
        """Frames (..., C, 64, 64) in [0, 1] -> tokens (..., K) long (no gradients).

        Always in float32, autocast or not: the GPT's targets (encoded inside its bf16 update)
        must be the tokens that imagination and acting, in float32, encode."""
        lead = frames.shape[:-3]
        with torch.autocast(frames.device.type, enabled=False):
            _, tokens, _ = self._quantise(frames.reshape(-1, *frames.shape[-3:]).float())
        return tokens.view(*lead, self.tokens_per_frame)

    @torch.no_grad()
    def tokenize(self, observations: Tensor) -> Tensor:
        """Observations (..., *obs_shape) -> tokens (..., K): ``encode(frames(observations))``,
        through the token cache with ``cache_tokens`` (:class:`_TokenMemo`)."""
        if self._memo is None or (self.training and self.cfg.dropout > 0):
            return self.encode(self.frames(observations))
        lead = observations.shape[: observations.dim() - len(self.obs_shape)]
        flat = observations.reshape(-1, *self.obs_shape)
        self._memo.check(self._encoding_weights())
        tokens = self._memo.lookup(flat, lambda new: self.encode(self.frames(new)))
        return tokens.view(*lead, self.tokens_per_frame)

    def _encoding_weights(self) -> list[Tensor]:
        """The tensors that ``encode`` reads: encoder, pre-quantisation conv and codebook."""
        parts = (self.encoder, self.pre_quant, self.codebook)
        return [t for part in parts for t in (*part.parameters(), *part.buffers())]

    def decode(self, tokens: Tensor) -> Tensor:
        """Tokens (..., K) -> frames (..., C, 64, 64) clamped to [0, 1]."""
        lead = tokens.shape[:-1]
        out = self._decode_grid(self.embed(tokens.reshape(-1, self.tokens_per_frame)))
        return ((out + 1.0) / 2.0).clamp(0.0, 1.0).view(*lead, *out.shape[1:])

    def _decode_grid(self, z_q: Tensor) -> Tensor:
        """(N, E, g, g) -> (N, C, 64, 64) on the [-1, 1] scale (not clamped)."""
        decoder = self.decoder if self._compiled is None else self._compiled[1]
        return decoder(self.post_quant(cpu_channels_last(z_q)))

    def loss(self, batch: TrajectoryBatch) -> LossOutput:
        """L1 (or MSE) + codebook + commitment (+ perceptual) on the real frames of ``batch``.

        The metric ``l1`` is the L1 reconstruction error whichever loss trains."""
        cfg = self.cfg
        frames = self.frames(batch.observations.flatten(0, 1))  # (B T, C, 64, 64) in [0, 1]
        real = batch.mask.flatten().bool()
        if not bool(real.all()):
            frames = frames[real]
        restart = self.training and cfg.restart_dead_codes > 0
        z, tokens, z_q = self._quantise(frames, restart=restart)
        if restart:
            used_now = torch.bincount(tokens.flatten(), minlength=cfg.vocab_size) > 0
            self.code_idle.add_(1).masked_fill_(used_now, 0)
        codebook_loss = (z.detach() - z_q).pow(2).mean()
        commitment_loss = (z - z_q.detach()).pow(2).mean()
        recon = self._decode_grid(z + (z_q - z).detach())  # straight-through
        target = frames * 2.0 - 1.0
        error = recon - target
        if cfg.reconstruction == "mse":
            recon_loss, l1 = error.pow(2).mean(), error.detach().abs().mean()  # l1: metric only
        else:
            recon_loss = l1 = error.abs().mean()
        total = recon_loss + codebook_loss + cfg.commitment_beta * commitment_loss
        metrics: dict[str, float] = {}
        if self.lpips is not None:
            perceptual = self.lpips(target, recon).mean()
            total = total + cfg.perceptual_coef * perceptual
            metrics["perceptual_loss"] = float(perceptual.detach())
        used, perplexity = codebook_usage(tokens, cfg.vocab_size)
        metrics.update(
            {
                "reconstruction_loss": float(recon_loss.detach()),
                "l1": float(l1.detach()),
                "codebook_loss": float(codebook_loss.detach()),
                "commitment_loss": float(commitment_loss.detach()),
                "codebook_used": used,
                "codebook_perplexity": perplexity,
            }
        )
        return LossOutput(total, metrics)
