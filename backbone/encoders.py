"""Observation encoders the agents share: vectors (MLP) and images (Nature-DQN CNN, small ResNet).

Every encoder maps (..., *obs_shape) to (..., out_dim), so a (B, T, C, H, W) batch of frames goes
through in one call. Image encoders take uint8 pixels (scaled to [0, 1] here, on the device) or
floats already in [0, 1].

- Nature-DQN CNN: Mnih et al. 2015, "Human-level control through deep reinforcement learning".
- ResNet-style CNN: the IMPALA encoder, Espeholt et al. 2018, arXiv 1802.01561 (conv, max-pool
  and two residual blocks per stage).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def cpu_channels_last(images: Tensor) -> Tensor:
    """(N, C, H, W) images in channels-last layout on the CPU, unchanged elsewhere.

    oneDNN, torch's CPU convolution backend, works in channels-last: given it, convolutions and
    what follows them (GroupNorm, pooling) keep that layout and skip the conversions; a 3x3
    convolution of 32 frames of 16 x 64 x 64 ran 2.8x faster (forward) on this repository's CPU.
    Values are unchanged: only the memory order differs. Under CPU autocast (bfloat16) it is the
    other way round: oneDNN's bfloat16 convolutions ran 2-3x slower in channels-last than in
    torch's default layout, so there images get the default layout (frames moved from (H, W, C)
    observations are channels-last in memory until then). ``benchmarks/cpu_layout.py --part
    precision`` measured a bf16 IRIS tokenizer update at 0.51x float32's rate before this
    switch and 1.43-1.57x after it.
    """
    if images.device.type != "cpu" or images.dim() != 4:
        return images
    if torch.is_autocast_enabled("cpu"):
        return images.contiguous()
    return images.contiguous(memory_format=torch.channels_last)


def _as_float_image(x: Tensor) -> Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class MLPEncoder(nn.Module):
    """Vector observations (..., in_dim) -> (..., out_dim) through ReLU hidden layers."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        layers.append(nn.Linear(last, out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dim) -> (..., out_dim); integer inputs are cast to float first."""
        return self.net(x.float())


class _ImageEncoder(nn.Module):
    """Runs ``self.features`` over (..., C, H, W) images and projects to ``out_dim``."""

    features: nn.Module

    def _finish(self, obs_shape: tuple[int, int, int], out_dim: int) -> None:
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *obs_shape)).flatten(1).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, out_dim), nn.ReLU())
        self.obs_shape, self.out_dim = tuple(obs_shape), out_dim

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        if tuple(x.shape[-3:]) != self.obs_shape:
            raise ValueError(
                f"{type(self).__name__}: images {tuple(x.shape[-3:])}, expected {self.obs_shape}"
            )
        h = self.features(_as_float_image(x).reshape(-1, *self.obs_shape))
        return self.head(h.flatten(1)).view(*lead, self.out_dim)


class NatureCNN(_ImageEncoder):
    """The Nature-DQN encoder: three convolutions (32 8x8/4, 64 4x4/2, 64 3x3/1) and a dense layer."""

    def __init__(self, obs_shape: tuple[int, int, int] = (4, 84, 84), out_dim: int = 512) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(obs_shape[0], 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
        )
        self._finish(obs_shape, out_dim)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class ResNetEncoder(_ImageEncoder):
    """IMPALA-style small ResNet: per stage a 3x3 conv, 3x3/2 max-pool and two residual blocks."""

    def __init__(
        self,
        obs_shape: tuple[int, int, int] = (4, 84, 84),
        out_dim: int = 256,
        channels: Sequence[int] = (16, 32, 32),
    ) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        last = obs_shape[0]
        for c in channels:
            stages += [
                nn.Conv2d(last, c, 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),
                _Residual(c),
                _Residual(c),
            ]
            last = c
        stages.append(nn.ReLU())
        self.features = nn.Sequential(*stages)
        self._finish(obs_shape, out_dim)
