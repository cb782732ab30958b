"""The Atari 100k protocol on top of ALE (ale-py ships the ROMs).

The stack, innermost first::

    AtariEnv(frameskip=1, repeat_action_probability=0, max_num_frames_per_episode=cap)
    AtariPreprocessing     gymnasium: no-op starts, frame skip with max-pool of the last 2 frames,
                           resize (INTER_AREA), grayscale or RGB
    FireOnReset            (optional) FIRE after a reset and after a lost life, as TWM does
    LifeLossTerminal       (training only) a lost life ends the episode, the game does not reset
    FrameStackObservation  gymnasium: stack the last k observations on a new leading axis

Only the two middle wrappers are seqrl's: gymnasium's ``terminal_on_life_loss`` ends the whole game,
which is not the protocol (IRIS, TWM and SB3's ``EpisodicLifeEnv`` continue the game after a lost
life). The frame cap is ALE's own ``max_num_frames_per_episode`` (it reports ``truncated``), so it
counts emulator frames, no-ops included, across lost lives.

One difference from IRIS, kept on purpose: gymnasium max-pools the full 210x160 frames and then
resizes (as DQN and Dopamine do); IRIS resizes each frame with PIL bilinear before pooling.
"""

from __future__ import annotations

import re
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation
from seqrl.envs.config import AtariConfig

_ALE_ENTRY_POINT = "ale_py.env:AtariEnv"
_registered = False


def register_ale() -> None:
    """Register the ALE ids (``ALE/<Game>-v5``, ``<Game>NoFrameskip-v4``) with gymnasium, once."""
    global _registered
    if not _registered:
        import ale_py

        gym.register_envs(ale_py)
        _registered = True


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` names an ALE game (registering the ALE ids first)."""
    if "NoFrameskip" in env_id or env_id.startswith("ALE/"):
        register_ale()
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return False
    return spec.entry_point == _ALE_ENTRY_POINT


def game_name(env_id: str) -> str:
    """``ALE/MsPacman-v5`` or ``MsPacmanNoFrameskip-v4`` -> ``MsPacman`` (the score tables' key)."""
    name = env_id.split("/")[-1]
    name = re.sub(r"-v\d+$", "", name)
    return re.sub(r"(NoFrameskip|Deterministic)$", "", name)


def _ale_env(env: gym.Env) -> Any:
    """The ``AtariEnv`` under the wrappers (typed loosely: gymnasium types it as ``Env``)."""
    return env.unwrapped


def _ale(env: gym.Env) -> Any:
    """The ALE interface of an ALE env (lives, screens)."""
    return _ale_env(env).ale


class LifeLossTerminal(gym.Wrapper):
    """A lost life ends the episode (``terminated``) but the game goes on at the next ``reset``.

    After a lost life ``reset`` does not reset the emulator: it takes one no-op step (one agent
    step, so ``frame_skip`` frames) from where the game is, as SB3's ``EpisodicLifeEnv`` and IRIS
    do. Only a real game over (or the frame cap) resets the game. ``info["game_over"]`` tells the
    two apart on the last step of an episode.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._lives = 0
        self._life_lost = False  # the last step ended the episode by a lost life only

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """One agent step; ``terminated`` is also True when a life was lost."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        game_over = terminated or truncated
        lives = _ale(self.env).lives()
        # lives > 0: some games (Qbert) sit at 0 lives for a few frames before the real game over
        self._life_lost = 0 < lives < self._lives and not game_over
        self._lives = lives
        info["game_over"] = game_over
        return obs, reward, bool(terminated) or self._life_lost, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """After a lost life continue with one no-op step; otherwise reset the game."""
        if self._life_lost and seed is None:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:  # the no-op itself ended the game
                obs, info = self.env.reset(options=options)
        else:
            obs, info = self.env.reset(seed=seed, options=options)
        self._lives = _ale(self.env).lives()
        self._life_lost = False
        return obs, info


class FireOnReset(gym.Wrapper):
    """Press FIRE (then action 2) after a reset and FIRE after a lost life (TWM's protocol).

    Games such as Breakout wait for FIRE before play resumes; an untrained agent otherwise idles.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = _ale_env(env).get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireOnReset needs FIRE as action 1, got {meanings[:3]}")
        self._lives = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset, then FIRE and action 2 (resetting again if either ends the game)."""
        obs, info = self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        self._lives = _ale(self.env).lives()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """One agent step; after a lost life one more step with FIRE (its reward added)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = _ale(self.env).lives()
        if lives < self._lives and not (terminated or truncated):
            obs, extra, terminated, truncated, info = self.env.step(1)
            reward = float(reward) + float(extra)
        self._lives = lives
        return obs, reward, terminated, truncated, info


def make_atari_env(
    env_id: str, cfg: AtariConfig, *, train: bool, render_mode: str | None = None
) -> gym.Env:
    """One ALE game under the protocol of ``cfg`` (module docstring); ``train`` picks the settings.

    Observations are uint8: ``(H, W)`` gray or ``(H, W, 3)`` RGB, with a leading ``(k,)`` axis when
    ``frame_stack = k > 1``. Rewards are the game's raw score changes (never clipped here).
    """
    register_ale()
    env = gym.make(
        env_id,
        frameskip=1,
        repeat_action_probability=0.0,
        full_action_space=cfg.full_action_space,
        max_num_frames_per_episode=cfg.max_frames_train if train else cfg.max_frames_eval,
        render_mode=render_mode,
    )
    env = AtariPreprocessing(
        env,
        noop_max=cfg.noop_max_train if train else cfg.noop_max_eval,
        frame_skip=cfg.frame_skip,
        screen_size=cfg.screen_size,
        terminal_on_life_loss=False,
        grayscale_obs=cfg.color == "gray",
        scale_obs=False,
    )
    meanings = _ale_env(env).get_action_meanings()
    if cfg.fire == "on_reset_and_life_loss" and len(meanings) >= 3 and meanings[1] == "FIRE":
        env = FireOnReset(env)
    if train and cfg.life_loss == "terminal_in_training":
        env = LifeLossTerminal(env)
    if cfg.frame_stack > 1:
        env = FrameStackObservation(env, stack_size=cfg.frame_stack)
    return env
