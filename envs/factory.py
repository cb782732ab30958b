"""Build gymnasium environments from an :class:`~seqrl.envs.config.EnvConfig`.

Vector envs use gymnasium's ``SAME_STEP`` autoreset: the step that ends an episode returns the
next episode's first observation, and the final observation of the ended one in
``infos["final_obs"]``. Every ``step`` call is then a real transition for every env, so an agent
never has to act on a final observation (gymnasium 1.x's default, ``NEXT_STEP``, spends one call
per finished episode on the reset and ignores the action given). :func:`seqrl.envs.rollout`
accepts both modes.
"""

from __future__ import annotations

import os
import sys
import textwrap
import warnings
from collections.abc import Callable
from functools import partial

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from seqrl.envs.atari import is_atari, make_atari_env, register_ale
from seqrl.envs.config import EnvConfig
from seqrl.envs.envpool_backend import make_envpool_vec_env
from seqrl.envs.minatar import is_minatar, make_minatar_env, register_minatar
from seqrl.errors import SeqrlError, UsageError

EnvWrapper = Callable[[gym.Env, int], gym.Env]
"""``(env, index) -> env``: applied to each env of a vector env (e.g. to record frames of env 0)."""


def check_env_id(env_id: str) -> None:
    """UsageError (one line) when ``env_id`` is not a registered gymnasium id.

    ALE and MinAtar ids are registered first (SeqrlError when minatar is not installed).
    """
    if "NoFrameskip" in env_id or env_id.startswith("ALE/"):
        register_ale()
    if is_minatar(env_id):
        register_minatar(env_id)
    try:
        gym.spec(env_id)
    except gym.error.Error as exc:
        raise UsageError(
            f"unknown environment id '{env_id}' ({str(exc).splitlines()[0][:120]})"
        ) from None


def route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings through Python's ``warnings`` (``RuntimeWarning``, so each shows
    once per message by default and filters apply) instead of MuJoCo's default, which prints
    every one and appends it to ``MUJOCO_LOG.TXT`` in the working directory: mujoco 4 warns at
    every model compile that gymnasium's HalfCheetah XML uses the deprecated ``settotalmass``.
    Safe to call repeatedly; a no-op without mujoco."""
    try:
        import mujoco
    except ImportError:
        return
    except Exception as exc:  # noqa: BLE001 - mujoco sets up MUJOCO_GL's OpenGL at import
        gl = os.environ.get("MUJOCO_GL")
        reason = textwrap.shorten(f"{type(exc).__name__}: {exc}", 120)
        if gl is None:
            raise SeqrlError(f"cannot import mujoco ({reason})") from None
        raise SeqrlError(
            f"cannot import mujoco with MUJOCO_GL={gl} ({reason}): that OpenGL library is missing; "
            "set MUJOCO_GL to another of egl, osmesa, glfw"
        ) from None
    mujoco.set_mju_user_warning(_mujoco_warning)


def headless_mujoco_gl() -> None:
    """Render MuJoCo without a display: on Linux, when neither ``DISPLAY`` nor ``WAYLAND_DISPLAY``
    is set and the user chose no ``MUJOCO_GL``, choose EGL (``MUJOCO_GL=egl``; a GPU's or Mesa's
    software EGL). gymnasium's own fallback tries GLFW first, which fails without a display, so
    a headless ``render()`` failed unless the user knew to set the variable. Must run before
    mujoco is imported; a choice the user made is never changed.
    """
    if sys.platform != "linux" or "MUJOCO_GL" in os.environ:
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    os.environ["MUJOCO_GL"] = "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def _mujoco_warning(message: str) -> None:
    warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def make_env(cfg: EnvConfig, train: bool = False, render_mode: str | None = None) -> gym.Env:
    """One environment: the Atari protocol for ALE ids, images of the state for MinAtar ids
    (:mod:`seqrl.envs.minatar`), ``gym.make`` for everything else.

    Args:
        cfg: which env; ``cfg.atari`` applies to ALE ids only, ``cfg.minatar`` to MinAtar ids.
        train: training settings (Atari: life loss terminal, training no-ops and frame cap).
        render_mode: passed to ``gym.make`` (``"rgb_array"`` to record videos).

    One env is always gymnasium's: ``cfg.backend`` applies to :func:`make_vec_env` only.
    """
    check_env_id(cfg.id)
    try:
        if is_atari(cfg.id):
            env = make_atari_env(cfg.id, cfg.atari, train=train, render_mode=render_mode)
            if cfg.max_episode_steps is not None:  # agent steps, on top of the frame cap
                env = gym.wrappers.TimeLimit(env, max_episode_steps=cfg.max_episode_steps)
            return env
        if is_minatar(cfg.id):
            return make_minatar_env(
                cfg.id,
                cfg.minatar,
                max_episode_steps=cfg.max_episode_steps,
                render_mode=render_mode,
            )
        kwargs = (
            {} if cfg.max_episode_steps is None else {"max_episode_steps": cfg.max_episode_steps}
        )
        if "mujoco" in str(gym.spec(cfg.id).entry_point):
            if render_mode is not None:
                headless_mujoco_gl()
            route_mujoco_warnings()
        return gym.make(cfg.id, render_mode=render_mode, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise SeqrlError(f"environment '{cfg.id}': {str(exc).splitlines()[0]}") from None


def _make_one(
    cfg: EnvConfig, train: bool, render_mode: str | None, wrap: EnvWrapper | None, index: int
) -> gym.Env:
    env = make_env(cfg, train=train, render_mode=render_mode)
    return wrap(env, index) if wrap is not None else env


def make_vec_env(
    cfg: EnvConfig,
    train: bool = False,
    *,
    num_envs: int | None = None,
    render_mode: str | None = None,
    wrap: EnvWrapper | None = None,
) -> VectorEnv:
    """``num_envs`` (default ``cfg.num_envs``) copies of :func:`make_env` as one vector env.

    The vector env uses ``SAME_STEP`` autoreset (module docstring). Seeding happens at the first
    ``reset(seed=s)``, which gymnasium turns into seed ``s + i`` for env ``i``; :func:`rollout`
    and :func:`evaluate` pass ``cfg.seed`` or their own ``seed``.

    ``cfg.backend == "envpool"`` builds an envpool pool instead
    (:mod:`seqrl.envs.envpool_backend`: ``NEXT_STEP`` autoreset, no ``render_mode`` or ``wrap``).
    """
    n = cfg.num_envs if num_envs is None else num_envs
    if n < 1:
        raise UsageError(f"num_envs must be >= 1, got {n}")
    check_env_id(cfg.id)
    if cfg.backend == "envpool":
        if render_mode is not None or wrap is not None:
            raise UsageError("backend=envpool does not render or wrap envs; use backend=gymnasium")
        return make_envpool_vec_env(cfg, train, n)
    fns = [partial(_make_one, cfg, train, render_mode, wrap, i) for i in range(n)]
    if cfg.vectorization == "async":
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
