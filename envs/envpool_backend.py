"""The optional envpool backend (``EnvConfig.backend = "envpool"``; ``pip install envpool``).

envpool (https://github.com/sail-sg/envpool) steps many environments in C++ threads. This module
builds an envpool pool and wraps it as a gymnasium :class:`~gymnasium.vector.VectorEnv`, so that
:func:`seqrl.envs.run_episodes` (the one rollout loop) runs it unchanged:

- spaces are gymnasium's: ``single_observation_space`` per env, ``observation_space`` batched;
- ``metadata["autoreset_mode"]`` is ``NEXT_STEP``, which is what envpool does (the call after an
  episode ends resets that env, ignores its action and returns reward 0);
- ``reset(seed=s)`` rebuilds the pool with envpool seed ``s`` (envpool fixes seeds when a pool is
  created; env ``i`` gets ``s + i``, as in gymnasium);
- rewards are float64 and RGB observations ``(H, W, 3)`` (``(k, H, W, 3)`` stacked), as the
  gymnasium backend gives them.

Atari ids are mapped onto envpool's own Atari pipeline, which is the same as seqrl's gymnasium
stack (:mod:`seqrl.envs.atari`): ALE with ``repeat_action_probability=0``, a frame skip with
max-pooling of the last two frames, ALE's grayscale palette or RGB, ``cv2.INTER_AREA`` resizing,
frame stacking filled with the first observation, 1..n random no-op frames after a reset. With
the same no-op count the observations, rewards and flags are pixel-exact equal
(``tests/envs/test_envpool.py``), except where noted:

- the frame cap: gymnasium's backend has ALE count frames, no-ops included, and stops inside the
  last frame skip; envpool counts agent steps (``max_frames // frame_skip``) after the no-ops and
  finishes the step. The episode ends on the same step when the no-ops take fewer than
  ``frame_skip`` frames; the last step's reward and final observation can differ;
- an episode that ends by game over inside a frame skip: the final observation can differ
  (gymnasium max-pools frames of the previous step there, envpool the frames it has). Rewards
  and flags agree;
- the random no-op counts come from envpool's generator, not numpy's: same distribution, not the
  same draws.

Settings envpool cannot reproduce are refused with a one-line :class:`~seqrl.errors.UsageError`:
a lost life as terminal in training (envpool then plays fresh random no-ops and keeps the frame
stack; seqrl's protocol takes one no-op step and restarts the stack), TWM's FIRE presses (envpool
presses FIRE once, instead of a no-op frame), zero no-ops (envpool always plays at least one no-op
frame), a frame skip of 1 and a frame cap that is not a multiple of the frame skip. Videos need
the gymnasium backend (envpool does not render).

Other ids (classic control, MuJoCo) are passed to envpool as they are, when envpool knows them:
those are envpool's own implementations of the same tasks, not checked here against gymnasium's.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from seqrl.envs.atari import game_name, is_atari
from seqrl.envs.config import AtariConfig, EnvConfig
from seqrl.errors import SeqrlError, UsageError


def envpool_available() -> bool:
    """Whether the ``envpool`` package can be imported."""
    try:
        import envpool  # noqa: F401
    except ImportError:
        return False
    return True


def envpool_atari_options(cfg: AtariConfig, train: bool) -> dict[str, Any]:
    """envpool's Atari options for seqrl's protocol ``cfg``; UsageError for what envpool cannot do."""
    noop_max = cfg.noop_max_train if train else cfg.noop_max_eval
    max_frames = cfg.max_frames_train if train else cfg.max_frames_eval
    if train and cfg.life_loss == "terminal_in_training":
        raise UsageError(
            "backend=envpool: a lost life as terminal in training is not seqrl's protocol there "
            "(envpool replays random no-ops and keeps the frame stack); set atari.life_loss=ignore "
            "or use backend=gymnasium"
        )
    if cfg.fire != "none":
        raise UsageError(
            f"backend=envpool cannot reproduce atari.fire={cfg.fire} (envpool presses FIRE once "
            "after a reset only); use backend=gymnasium"
        )
    if noop_max < 1:
        raise UsageError(
            "backend=envpool always plays at least one no-op frame after a reset; set "
            f"atari.noop_max_{'train' if train else 'eval'} >= 1 or use backend=gymnasium"
        )
    if cfg.frame_skip < 2:
        raise UsageError("backend=envpool needs atari.frame_skip >= 2 (it max-pools two frames)")
    if max_frames % cfg.frame_skip:
        raise UsageError(
            f"backend=envpool counts agent steps: atari.max_frames_{'train' if train else 'eval'}"
            f"={max_frames} must be a multiple of atari.frame_skip={cfg.frame_skip}"
        )
    return {
        "stack_num": cfg.frame_stack,
        "frame_skip": cfg.frame_skip,
        "noop_max": noop_max,
        "img_height": cfg.screen_size,
        "img_width": cfg.screen_size,
        "gray_scale": cfg.color == "gray",
        "episodic_life": False,
        "use_fire_reset": False,
        "reward_clip": False,
        "zero_discount_on_life_loss": False,
        "repeat_action_probability": 0.0,
        "full_action_space": cfg.full_action_space,
        "use_inter_area_resize": True,
        "max_episode_steps": max_frames // cfg.frame_skip,
    }


class EnvpoolVectorEnv(VectorEnv):
    """An envpool pool as a gymnasium vector env in ``NEXT_STEP`` autoreset mode.

    Args:
        task_id: envpool's id (``Pong-v5``, ``CartPole-v1``).
        num_envs: environments stepped together.
        seed: envpool seed until ``reset(seed=...)`` gives another (env ``i`` gets ``seed + i``).
        options: envpool options (see ``envpool.make_spec(task_id).config``).
        rgb_stack: Atari RGB frames stacked per observation; envpool's ``(3k, H, W)`` observations
            are returned as ``(k, H, W, 3)`` (``(H, W, 3)`` for ``k = 1``). None: as envpool has them.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        task_id: str,
        num_envs: int,
        seed: int,
        options: dict[str, Any],
        rgb_stack: int | None = None,
    ) -> None:
        self._task_id, self._options, self._rgb_stack = task_id, options, rgb_stack
        self.num_envs = num_envs
        self._seed = seed
        self._pool = self._make(seed)
        self._fresh = True  # nothing stepped since the pool was made
        with warnings.catch_warnings():
            # envpool builds float32 Boxes from float64 bounds, and gymnasium warns at each
            warnings.filterwarnings("ignore", message=".*precision lowered by casting")
            self.single_action_space = self._pool.single_action_space
            space = self._pool.single_observation_space
        if rgb_stack is not None:
            _, h, w = space.shape
            shape = (h, w, 3) if rgb_stack == 1 else (rgb_stack, h, w, 3)
            space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.single_observation_space = space
        self.observation_space = batch_space(space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def _make(self, seed: int) -> Any:
        import envpool

        return envpool.make_gymnasium(
            self._task_id, num_envs=self.num_envs, seed=seed, **self._options
        )

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        if self._rgb_stack is None:
            return obs
        n, _, h, w = obs.shape
        obs = obs.reshape(n, self._rgb_stack, 3, h, w).transpose(0, 1, 3, 4, 2)
        return np.ascontiguousarray(obs[:, 0] if self._rgb_stack == 1 else obs)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; ``seed=s`` rebuilds the pool seeded ``s`` (env ``i``: ``s + i``)."""
        if isinstance(seed, list):
            raise UsageError("backend=envpool: reset(seed=) takes one int (env i gets seed + i)")
        if seed is not None and not (self._fresh and seed == self._seed):
            self._pool.close()
            self._seed, self._pool = seed, self._make(seed)
        self._fresh = False
        obs, info = self._pool.reset()
        return self._obs(obs), info

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every env: gymnasium's ``(obs, rewards, terminated, truncated, infos)``."""
        self._fresh = False
        obs, rewards, terminated, truncated, info = self._pool.step(np.asarray(actions))
        return (
            self._obs(obs),
            rewards.astype(np.float64),
            np.asarray(terminated, dtype=bool),
            np.asarray(truncated, dtype=bool),
            info,
        )

    def close_extras(self, **kwargs: Any) -> None:
        """Close the pool."""
        self._pool.close()


def make_envpool_vec_env(cfg: EnvConfig, train: bool, num_envs: int) -> EnvpoolVectorEnv:
    """``num_envs`` envs of ``cfg`` through envpool (module docstring); UsageError if it cannot."""
    if not envpool_available():
        raise UsageError("backend=envpool needs the envpool package (pip install envpool)")
    import envpool

    known = set(envpool.list_all_envs())
    if is_atari(cfg.id):
        task_id = f"{game_name(cfg.id)}-v5"
        if task_id not in known:
            raise UsageError(f"backend=envpool has no Atari game '{game_name(cfg.id)}'")
        options = envpool_atari_options(cfg.atari, train)
        rgb_stack = None if cfg.atari.color == "gray" else cfg.atari.frame_stack
        return EnvpoolVectorEnv(task_id, num_envs, cfg.seed, options, rgb_stack)
    if cfg.id not in known:
        raise UsageError(f"backend=envpool does not know environment '{cfg.id}'")
    options = {} if cfg.max_episode_steps is None else {"max_episode_steps": cfg.max_episode_steps}
    try:
        return EnvpoolVectorEnv(cfg.id, num_envs, cfg.seed, options)
    except (RuntimeError, ValueError) as exc:
        raise SeqrlError(f"backend=envpool: '{cfg.id}': {str(exc).splitlines()[0]}") from None
