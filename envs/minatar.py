"""MinAtar games as gymnasium envs with image observations.

MinAtar (Young & Tian 2019, arXiv 1903.03176, ``pip install minatar``) re-implements five Atari
games on a 10x10 grid: Asterix, Breakout, Freeway, Seaquest and SpaceInvaders. Its state is a
``(10, 10, C)`` bool array, one channel per object type (C = 4 for Breakout, 10 for Seaquest).
World models built for 64x64 Atari frames train on it through :class:`MinAtarImage`, which draws
the state as an image:

* ``gray``: ``(size, size)`` uint8, channel ``c`` of ``C`` drawn at gray level
  ``round(255 * (c + 1) / C)``, background 0;
* ``rgb``: ``(size, size, 3)`` uint8, background black, objects in the ``palette``:
  ``minatar`` is MinAtar's own display palette (matplotlib's cubehelix, the colours of
  ``Environment.display_state``), whose first channel is nearly black (Breakout's paddle: RGB
  22, 61, 78); ``bright`` gives channel ``c`` the hue ``c / C`` at full saturation and value,
  so every object differs from the background by at least one full colour channel;
* ``state``: the raw ``(10, 10, C)`` bool state, unchanged.

Where objects of several channels share a cell the highest channel is drawn, as MinAtar's display
does. Cells are scaled up by nearest neighbour to fill the whole image (at 64 pixels each cell is
6 or 7 pixels wide).

Ids are ``MinAtar/<Game>-v0`` (all 6 actions) and ``MinAtar/<Game>-v1`` (the game's minimal action
set), registered with gymnasium on first use by :func:`register_minatar`. ``reset(seed=s)`` seeds
the game and its sticky actions, so an episode is a function of ``s`` and the actions.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from seqrl.envs.config import MinAtarConfig, check_palette
from seqrl.errors import SeqrlError, UsageError

MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
"""Games of MinAtar 1.0.15, as spelled in the gymnasium ids."""

_PREFIX = "MinAtar/"


def is_minatar(env_id: str) -> bool:
    """Whether ``env_id`` names a MinAtar game (``MinAtar/...``; the game itself is not checked)."""
    return env_id.startswith(_PREFIX)


def register_minatar(env_id: str) -> None:
    """Register MinAtar's gymnasium ids once, and check ``env_id`` names one of its games.

    Raises SeqrlError (one line) when minatar is not installed and UsageError (one line) for an
    unknown game or version.
    """
    if f"{_PREFIX}Breakout-v1" not in gym.registry:
        try:
            from minatar.gym import register_envs
        except ImportError:
            raise SeqrlError(
                f"environment '{env_id}' needs minatar (pip install 'minatar>=1.0.15')"
            ) from None
        register_envs()
    if env_id not in gym.registry:
        games = ", ".join(MINATAR_GAMES)
        raise UsageError(
            f"unknown MinAtar environment '{env_id}' (games: {games}; "
            "versions: v0 all 6 actions, v1 minimal action set)"
        )


def _palette(render: str, channels: int, palette: str = "minatar") -> np.ndarray:
    """``(C + 1, ...)`` uint8 colour of the background (row 0) and of each channel."""
    if render == "gray":
        levels = np.round(255 * np.arange(channels + 1) / channels)
        return levels.astype(np.uint8)  # (C + 1,)
    if palette == "bright":
        from matplotlib.colors import hsv_to_rgb  # matplotlib is a dependency of minatar

        hsv = np.stack([np.arange(channels) / channels, np.ones(channels), np.ones(channels)], 1)
        colours = hsv_to_rgb(hsv)
    else:
        from matplotlib import colormaps

        # seaborn's color_palette("cubehelix", C), which MinAtar's display uses, without seaborn
        colours = colormaps["cubehelix"](np.linspace(0, 1, channels + 2)[1:-1])[:, :3]
    rgb = np.round(255 * np.concatenate([np.zeros((1, 3)), colours]))
    return rgb.astype(np.uint8)  # (C + 1, 3)


def _game(env: gym.Env) -> Any:
    """MinAtar's ``Environment`` under the wrappers (typed loosely: gymnasium types it as ``Env``)."""
    return env.unwrapped.game  # type: ignore[attr-defined]


class MinAtarImage(gym.ObservationWrapper):
    """Draws MinAtar's ``(10, 10, C)`` bool state as a ``gray`` or ``rgb`` image (module docstring).

    ``render()`` (with ``render_mode="rgb_array"``) returns the RGB image at the same size, for
    videos. A reset starts from "no previous action" for the sticky actions, as ALE does, so
    ``reset(seed=s)`` fixes the episode whatever ran before.
    """

    def __init__(
        self,
        env: gym.Env,
        render: Literal["gray", "rgb", "state"] = "gray",
        size: int = 64,
        palette: Literal["minatar", "bright"] = "minatar",
    ) -> None:
        super().__init__(env)
        height, width, channels = env.observation_space.shape or (10, 10, 0)
        self.render_kind = render
        self.size = size
        # nearest-neighbour source cell of each output row / column
        self._rows = np.arange(size) * height // size  # (size,)
        self._cols = np.arange(size) * width // size  # (size,)
        self._channel_ids = np.arange(1, channels + 1, dtype=np.int64)  # (C,)
        check_palette(palette)
        self._rgb = _palette("rgb", channels, palette)
        if render == "state":
            self._colours = None
        else:
            self._colours = self._rgb if render == "rgb" else _palette("gray", channels)
            shape = (size, size, 3) if render == "rgb" else (size, size)
            self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)

    def _draw(self, state: np.ndarray, colours: np.ndarray) -> np.ndarray:
        cell = np.max(state * self._channel_ids, axis=-1)  # (10, 10): 0 background, else c + 1
        return colours[cell[np.ix_(self._rows, self._cols)]]  # (size, size[, 3])

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The state drawn as configured: ``(size, size)`` / ``(size, size, 3)`` uint8, or as is."""
        if self._colours is None:
            return observation
        return self._draw(observation, self._colours)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the game (seeded when ``seed`` is given) and forget the last action."""
        _game(self.env).last_action = 0
        return super().reset(**kwargs)

    def render(self) -> np.ndarray | None:
        """The current state as a ``(size, size, 3)`` uint8 RGB image (``rgb_array`` mode)."""
        if self.env.render_mode != "rgb_array":
            return None  # make_minatar_env allows None and rgb_array only
        return self._draw(_game(self.env).state(), self._rgb)


def make_minatar_env(
    env_id: str,
    cfg: MinAtarConfig,
    *,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
) -> gym.Env:
    """One MinAtar env drawn as ``cfg.render`` at ``cfg.size`` pixels (module docstring).

    Args:
        env_id: ``MinAtar/<Game>-v0`` or ``-v1``.
        cfg: rendering, sticky actions and difficulty ramping.
        max_episode_steps: truncate episodes after this many agent steps (None: the game's own
            end; Freeway stops after 2500 steps, the other games only when lost).
        render_mode: ``"rgb_array"`` makes ``render()`` return the RGB image (videos).
    """
    register_minatar(env_id)
    if render_mode not in (None, "rgb_array"):
        raise UsageError(
            f"environment '{env_id}': render_mode must be rgb_array, got {render_mode}"
        )
    env = gym.make(
        env_id,
        max_episode_steps=max_episode_steps,
        render_mode=render_mode,
        sticky_action_prob=cfg.sticky_action_prob,
        difficulty_ramping=cfg.difficulty_ramping,
    )
    return MinAtarImage(env, render=cfg.render, size=cfg.size, palette=cfg.palette)
