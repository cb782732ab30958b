"""Environment configs: which gymnasium env to build, how many copies, and the Atari protocol.

Each paper's Atari settings are one named preset in :data:`ATARI_PRESETS`, read from the official
code (see ``shared/reference/PAPERS.md``):

========  ======  =====  =====  ==============  ==================  =============================
preset    size    color  stack  no-ops (train /  frame cap (train /  other
                                eval)            eval)
========  ======  =====  =====  ==============  ==================  =============================
``dqn``   84      gray   4      30 / 30         108k / 108k         Nature-DQN / DQN-Replay data
``iris``  64      rgb    1      30 / 1          20k / 108k          eloialonso/iris config/env
``twm``   64      gray   4      30 / 0          108k / 108k         FIRE on reset and life loss
========  ======  =====  =====  ==============  ==================  =============================

Every preset uses ALE with ``frameskip=1`` and ``repeat_action_probability=0`` underneath, a frame
skip of 4 with max-pooling over the last two frames, and (in training only) a lost life signalled
as terminal without resetting the game.

MinAtar ids (``MinAtar/Breakout-v1`` ...) take their settings from :class:`MinAtarConfig`
(:mod:`seqrl.envs.minatar`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from seqrl.errors import ConfigError


@dataclass
class AtariConfig:
    """The Atari 100k evaluation protocol, applied to ALE ids only (ignored for other envs)."""

    screen_size: int = field(default=84, metadata={"help": "square observation size in pixels"})
    color: Literal["gray", "rgb"] = field(
        default="gray", metadata={"help": "gray: (H, W) uint8; rgb: (H, W, 3) uint8"}
    )
    frame_stack: int = field(
        default=4, metadata={"help": "frames stacked on a new leading axis (1: no stacking)"}
    )
    frame_skip: int = field(
        default=4, metadata={"help": "frames per agent step; the last two are max-pooled"}
    )
    noop_max_train: int = field(
        default=30,
        metadata={"help": "random no-op frames (1..n) after a reset in training; 0: none"},
    )
    noop_max_eval: int = field(
        default=30, metadata={"help": "random no-op frames (1..n) after a reset in evaluation"}
    )
    life_loss: Literal["terminal_in_training", "ignore"] = field(
        default="terminal_in_training",
        metadata={"help": "terminal_in_training: a lost life ends the episode (game continues)"},
    )
    fire: Literal["none", "on_reset_and_life_loss"] = field(
        default="none",
        metadata={"help": "press FIRE after a reset and a lost life, on games that have FIRE"},
    )
    max_frames_train: int = field(
        default=108_000,
        metadata={"help": "episode cap in emulator frames (no-ops included), training"},
    )
    max_frames_eval: int = field(
        default=108_000, metadata={"help": "episode cap in emulator frames, evaluation"}
    )
    full_action_space: bool = field(
        default=False, metadata={"help": "all 18 actions instead of the game's minimal set"}
    )

    def __post_init__(self) -> None:
        for name in (
            "screen_size",
            "frame_stack",
            "frame_skip",
            "max_frames_train",
            "max_frames_eval",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"atari.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("noop_max_train", "noop_max_eval"):
            if getattr(self, name) < 0:
                raise ConfigError(f"atari.{name} must be >= 0, got {getattr(self, name)}")


def dqn_atari() -> AtariConfig:
    """84x84 grayscale x4, 30 no-ops, 108k frames: Nature DQN and the DQN-Replay data DT trains on."""
    return AtariConfig()


def iris_atari() -> AtariConfig:
    """IRIS (eloialonso/iris ``config/env/default.yaml``): 64x64 RGB, one frame, 1 test no-op."""
    return AtariConfig(
        screen_size=64,
        color="rgb",
        frame_stack=1,
        noop_max_train=30,
        noop_max_eval=1,
        max_frames_train=20_000,
        max_frames_eval=108_000,
    )


def twm_atari() -> AtariConfig:
    """TWM (jrobine/twm ``create_atari_env``): 64x64 grayscale x4, FIRE games pressed, no eval no-ops."""
    return AtariConfig(
        screen_size=64,
        color="gray",
        frame_stack=4,
        noop_max_train=30,
        noop_max_eval=0,
        fire="on_reset_and_life_loss",
        max_frames_train=108_000,
        max_frames_eval=108_000,
    )


ATARI_PRESETS: dict[str, Callable[[], AtariConfig]] = {
    "dqn": dqn_atari,
    "iris": iris_atari,
    "twm": twm_atari,
}
"""Preset name -> Atari protocol of that paper."""


MINATAR_PALETTES = ("minatar", "bright")
"""Colour palettes of MinAtar's rgb frames (:mod:`seqrl.envs.minatar`)."""


@dataclass
class MinAtarConfig:
    """How MinAtar ids are built (ignored for other envs); see :mod:`seqrl.envs.minatar`."""

    render: Literal["gray", "rgb", "state"] = field(
        default="gray",
        metadata={
            "help": "gray: (size, size) uint8; rgb: (size, size, 3) uint8; "
            "state: MinAtar's (10, 10, C) bool state"
        },
    )
    size: int = field(
        default=64, metadata={"help": "square image size in pixels (nearest-neighbour, >= 10)"}
    )
    sticky_action_prob: float = field(
        default=0.1, metadata={"help": "chance the previous action repeats (MinAtar's default)"}
    )
    difficulty_ramping: bool = field(
        default=True, metadata={"help": "games speed up over time (MinAtar's default)"}
    )
    palette: Literal["minatar", "bright"] = field(
        default="minatar",
        metadata={
            "help": "colours of rgb images and videos: minatar (its display's cubehelix, "
            "objects from near black to near white) or bright (evenly spaced hues at full "
            "saturation, every object far from the black background)"
        },
    )

    def __post_init__(self) -> None:
        if self.size < 10:
            raise ConfigError(f"minatar.size must be >= 10 (the 10x10 grid), got {self.size}")
        if not 0.0 <= self.sticky_action_prob <= 1.0:
            raise ConfigError(
                f"minatar.sticky_action_prob must be in [0, 1], got {self.sticky_action_prob}"
            )
        check_palette(self.palette)


def check_palette(palette: str) -> None:
    """ConfigError (one line, naming ``minatar.palette``) unless ``palette`` is a known one."""
    if palette not in MINATAR_PALETTES:
        choices = " or ".join(MINATAR_PALETTES)
        raise ConfigError(f"minatar.palette must be {choices}, got {palette!r}")


@dataclass
class EnvConfig:
    """Which environment to build and how (see :func:`seqrl.envs.make_vec_env`)."""

    id: str = field(
        default="CartPole-v1",
        metadata={
            "help": "gymnasium id, e.g. Hopper-v5, ALE/Pong-v5, PongNoFrameskip-v4 "
            "or MinAtar/Breakout-v1"
        },
    )
    num_envs: int = field(default=1, metadata={"help": "environments stepped together"})
    seed: int = field(
        default=0, metadata={"help": "env i is seeded with seed + i at the first reset"}
    )
    vectorization: Literal["sync", "async"] = field(
        default="sync", metadata={"help": "sync: one process; async: one subprocess per env"}
    )
    max_episode_steps: int | None = field(
        default=None, metadata={"help": "override the env's time limit (non-Atari envs)"}
    )
    backend: Literal["gymnasium", "envpool"] = field(
        default="gymnasium",
        metadata={"help": "envpool: C++ vector env, same Atari observations (pip install envpool)"},
    )
    atari: AtariConfig = field(default_factory=AtariConfig)
    minatar: MinAtarConfig = field(default_factory=MinAtarConfig)

    def __post_init__(self) -> None:
        if self.num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ConfigError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")


def atari_preset(name: str) -> AtariConfig:
    """The Atari protocol preset ``name`` (one of :data:`ATARI_PRESETS`); ConfigError otherwise."""
    if name not in ATARI_PRESETS:
        raise ConfigError(f"unknown Atari preset '{name}' (choose from {', '.join(ATARI_PRESETS)})")
    return ATARI_PRESETS[name]()


def atari_preset_name(cfg: AtariConfig) -> str | None:
    """The name of the preset whose protocol ``cfg`` is (:data:`ATARI_PRESETS`), else None."""
    return next((name for name in sorted(ATARI_PRESETS) if ATARI_PRESETS[name]() == cfg), None)
