"""The one rollout loop of seqrl: any :class:`~seqrl.protocols.Agent` in a gymnasium vector env.

Evaluation, data collection and video recording all go through :func:`run_episodes`.

Two stopping rules:

- ``episodes=E``: exactly ``E`` complete episodes. A vector env finishes short episodes first, so
  "the first E episodes to end" over-represents short (often bad) ones. Instead each env gets a
  quota decided up front (env ``i`` of ``N`` plays ``(E + i) // N`` episodes, as SB3's
  ``evaluate_policy`` does); episodes an env plays beyond its quota are discarded.
- ``steps=S``: exactly ``S`` transitions over all envs (for data collection). Episodes still
  running at the end are returned too, flagged ``truncated`` with ``finished=False``.

Each episode keeps the reward of its last step and its final observation (``T + 1``
observations). Both gymnasium autoreset modes are handled: ``SAME_STEP`` (what
:func:`seqrl.envs.make_vec_env` builds; the final observation comes from ``infos["final_obs"]``)
and ``NEXT_STEP`` (gymnasium's default; the call after an episode ends only resets that env, its
action is ignored and the agent is told ``done`` again so it drops what it saw of the final
observation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from seqrl.errors import SeqrlError, UsageError
from seqrl.protocols import Agent
from seqrl.types import Trajectory
from tqdm.auto import tqdm


@dataclass
class Episode:
    """One episode played by :func:`run_episodes`.

    Attributes:
        env_index: which env of the vector env played it.
        episode_return: undiscounted sum of rewards, the last step's included.
        length: number of agent steps.
        wall_time: seconds from the episode's first observation to its last step (envs step
            together, so episodes of different envs overlap in time).
        terminated: the env reached a terminal state.
        truncated: cut by a time limit, or by the end of a ``steps=`` collection.
        finished: False for an episode still running when a ``steps=`` collection stopped.
        trajectory: the recorded arrays (``record=True``), else None.
    """

    env_index: int
    episode_return: float
    length: int
    wall_time: float
    terminated: bool
    truncated: bool
    finished: bool = True
    trajectory: Trajectory | None = None


class _StepStore:
    """Time-major batched arrays of the steps that running episodes still need."""

    def __init__(self, first_obs: np.ndarray) -> None:
        self.offset = 0  # global index of self.obs[0]
        self.obs: list[np.ndarray] = [np.array(first_obs)]
        self.actions: list[np.ndarray] = []
        self.rewards: list[np.ndarray] = []

    def append(self, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray) -> None:
        self.actions.append(np.array(actions))
        self.rewards.append(np.asarray(rewards, dtype=np.float32))
        self.obs.append(np.array(next_obs))

    def trim(self, keep_from: int) -> None:
        """Drop steps before global index ``keep_from`` (no running episode needs them)."""
        drop = keep_from - self.offset
        if drop > 0:
            del self.obs[:drop], self.actions[:drop], self.rewards[:drop]
            self.offset = keep_from

    def episode(
        self, i: int, start: int, length: int, final_obs: np.ndarray | None
    ) -> tuple[np.ndarray, ...]:
        """Env ``i``'s arrays from global step ``start`` for ``length`` steps (+ final observation)."""
        s = start - self.offset
        obs = [self.obs[k][i] for k in range(s, s + length)]
        obs.append(self.obs[s + length][i] if final_obs is None else final_obs)
        actions = np.stack([self.actions[k][i] for k in range(s, s + length)])
        rewards = np.array([self.rewards[k][i] for k in range(s, s + length)], dtype=np.float32)
        return np.stack(obs), actions, rewards


def _same_step(vec_env: VectorEnv) -> bool:
    mode = vec_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    mode = AutoresetMode(mode) if isinstance(mode, str) else mode
    if mode == AutoresetMode.DISABLED:
        raise UsageError(
            "rollout: the vector env has autoreset disabled; use SAME_STEP or NEXT_STEP"
        )
    return mode == AutoresetMode.SAME_STEP


def run_episodes(
    agent: Agent,
    vec_env: VectorEnv,
    *,
    episodes: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    record: bool = True,
    progress: bool = False,
    desc: str = "rollout",
) -> list[Episode]:
    """Play ``agent`` in ``vec_env`` until ``episodes`` complete episodes or ``steps`` transitions.

    Args:
        agent: anything with ``reset(N)`` / ``act(obs (N, ...)) -> (N, ...)`` / ``observe``.
        vec_env: a gymnasium vector env in ``SAME_STEP`` or ``NEXT_STEP`` autoreset mode.
        episodes: number of complete episodes (exactly one of ``episodes`` / ``steps``).
        steps: number of transitions over all envs.
        seed: passed to ``vec_env.reset(seed=...)`` (env ``i`` gets ``seed + i``); None: unseeded.
        record: keep each episode's arrays as a :class:`Trajectory`; False keeps statistics only.
        progress: show a progress bar.
        desc: the progress bar's label.

    Returns:
        The episodes ordered by env index, then by time.
    """
    if (episodes is None) == (steps is None):
        raise UsageError("rollout: give exactly one of episodes= or steps=")
    if episodes is not None and episodes < 1:
        raise UsageError(f"episodes must be >= 1, got {episodes}")
    if steps is not None and steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    same_step = _same_step(vec_env)
    n = vec_env.num_envs
    unlimited = int(np.iinfo(np.int64).max)
    quota = [(episodes + i) // n for i in range(n)] if episodes else [unlimited] * n
    quota_array = np.array(quota, dtype=np.int64)

    obs, _ = vec_env.reset(seed=seed)
    if isinstance(obs, dict):
        raise UsageError(
            "rollout: dict observations are not supported; use gymnasium's FlattenObservation"
        )
    agent.reset(n)
    store = _StepStore(obs) if record else None

    # Per-step work is kept to a few array operations (this loop's overhead is what
    # benchmarks/envs.py measures): on the path where every env's transition counts only ep_return
    # is updated, ep_len lags by ``pending`` steps for every env (the true length of env i is
    # ep_len[i] + pending), and per-env bookkeeping is done in Python only for envs that ended.
    step = 0  # global step index: store.obs[step - offset] is the current observation
    count = [0] * n  # finished episodes per env
    ep_return = np.zeros(n, dtype=np.float64)
    ep_len = np.zeros(n, dtype=np.int64)  # each running episode's length, minus ``pending``
    pending = 0  # steps taken by every env that ep_len does not count yet
    ep_start = [0] * n  # global step index of each running episode's first observation
    t_start = [time.perf_counter()] * n
    resetting = np.zeros(n, dtype=bool)  # NEXT_STEP: this call only resets these envs
    any_resetting = False  # resetting.any()
    done_steps = 0
    step_limit = unlimited if steps is None else steps
    fast_limit = step_limit - n  # every env's transition counts while done_steps <= fast_limit
    finished: list[tuple[int, int, Episode]] = []
    bar = tqdm(total=episodes or steps, desc=desc, disable=not progress, leave=False)

    active = np.array(count) < quota_array  # envs that still owe episodes
    fast = bool(active.all())  # no env is done with its quota
    any_active = bool(active.any())
    while any_active and done_steps < step_limit:
        actions = np.asarray(agent.act(obs))
        if len(actions) != n:
            raise SeqrlError(f"rollout: agent returned {len(actions)} actions for {n} envs")
        next_obs, rewards, terminated, truncated, infos = vec_env.step(actions)
        dones = np.logical_or(terminated, truncated)
        any_done = np.count_nonzero(dones) > 0
        if fast and not any_resetting and done_steps <= fast_limit:
            ep_return += rewards
            pending += 1
            n_taken = n
            ended, any_ended = dones, any_done
        else:
            if pending:
                ep_len += pending
                pending = 0
            taken = active & ~resetting  # envs whose transition counts this step
            if done_steps > fast_limit:
                taken &= np.cumsum(taken) <= step_limit - done_steps
            n_taken = int(np.count_nonzero(taken))
            np.add(ep_return, rewards, out=ep_return, where=taken)
            ep_len += taken
            ended = taken & dones
            any_ended = any_done and np.count_nonzero(ended) > 0
        done_steps += n_taken
        if store is not None:
            store.append(actions, rewards, next_obs)

        if any_resetting:  # NEXT_STEP: next_obs[i] starts a new episode
            now = time.perf_counter()
            for i in resetting.nonzero()[0].tolist():
                ep_start[i], t_start[i] = step + 1, now
        if any_ended:
            now = time.perf_counter()
            returns, lengths = ep_return.tolist(), ep_len.tolist()
            terms = np.asarray(terminated, dtype=bool).tolist()
            truncs = np.asarray(truncated, dtype=bool).tolist()
            final_obs = infos["final_obs"] if same_step else next_obs
            index = ended.nonzero()[0].tolist()
            for i in index:
                length = lengths[i] + pending
                trajectory = None
                if store is not None:
                    ep_obs, ep_act, ep_rew = store.episode(i, ep_start[i], length, final_obs[i])
                    trajectory = Trajectory(ep_obs, ep_act, ep_rew, terms[i], truncs[i])
                episode = Episode(
                    env_index=i,
                    episode_return=returns[i],
                    length=length,
                    wall_time=now - t_start[i],
                    terminated=terms[i],
                    truncated=truncs[i] and not terms[i],
                    trajectory=trajectory,
                )
                finished.append((i, count[i], episode))
                count[i] += 1
                if count[i] >= quota[i]:
                    fast = False
                ep_return[i], ep_len[i] = 0.0, -pending
                ep_start[i], t_start[i] = step + 1, now
            if not fast:
                active = np.array(count) < quota_array
                any_active = bool(active.any())
            if progress and episodes is not None:
                bar.update(len(index))
        if progress and steps is not None:
            bar.update(n_taken)

        if same_step:
            agent.observe(np.asarray(rewards), dones)
        else:
            agent.observe(np.asarray(rewards), dones | resetting if any_resetting else dones)
            resetting, any_resetting = dones, any_done
        obs = next_obs
        step += 1
        if store is not None and step % 256 == 0:
            running = [start for start, on in zip(ep_start, active.tolist(), strict=True) if on]
            store.trim(min(running) if running else step)

    bar.close()
    ep_len += pending
    if steps is not None:  # episodes still running when the budget was spent
        for i in np.flatnonzero(ep_len > 0).tolist():
            trajectory = None
            if store is not None:
                ep_obs, ep_act, ep_rew = store.episode(i, ep_start[i], int(ep_len[i]), None)
                trajectory = Trajectory(ep_obs, ep_act, ep_rew, terminated=False, truncated=True)
            episode = Episode(
                env_index=i,
                episode_return=float(ep_return[i]),
                length=int(ep_len[i]),
                wall_time=time.perf_counter() - t_start[i],
                terminated=False,
                truncated=True,
                finished=False,
                trajectory=trajectory,
            )
            finished.append((i, count[i], episode))
    finished.sort(key=lambda item: (item[0], item[1]))
    return [episode for _, _, episode in finished]


def rollout(
    agent: Agent,
    vec_env: VectorEnv,
    episodes: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    desc: str = "collect",
) -> list[Trajectory]:
    """The trajectories of :func:`run_episodes` (exactly one of ``episodes`` / ``steps``).

    Each trajectory has ``T + 1`` observations (the final one included), ``T`` actions and rewards.
    With ``steps=`` the episodes still running at the end come last per env, ``truncated=True``.
    """
    played = run_episodes(
        agent,
        vec_env,
        episodes=episodes,
        steps=steps,
        seed=seed,
        record=True,
        progress=progress,
        desc=desc,
    )
    return [episode.trajectory for episode in played if episode.trajectory is not None]


StepCallback = Callable[..., None]


class Collector:
    """The rollout loop for online agents: the vector env keeps running between calls.

    :func:`run_episodes` starts from a reset and plays to a stopping rule; an online agent instead
    alternates a few environment steps with training, so its episodes run across calls. Each
    transition goes to ``on_step(observations, actions, rewards, terminated, truncated,
    final_observations, active)``, the signature of :meth:`seqrl.data.ReplayBuffer.add`:
    ``final_observations`` are the observations after each env's last step (read where an
    episode ended) and ``active`` is False for the reset-only step a ``NEXT_STEP`` vector env takes
    after an episode ends.

    Args:
        vec_env: a gymnasium vector env (``SAME_STEP`` or ``NEXT_STEP`` autoreset); closed by
            :meth:`close`.
        seed: seed of the first reset (env ``i`` gets ``seed + i``).
    """

    def __init__(self, vec_env: VectorEnv, seed: int | None = None) -> None:
        self.vec_env = vec_env
        self.seed = seed
        self.num_envs = vec_env.num_envs
        self.steps = 0  # transitions collected (active env steps)
        self._same_step = _same_step(vec_env)
        self._obs: np.ndarray | None = None
        self._agent: Agent | None = None
        self._resetting = np.zeros(self.num_envs, dtype=bool)
        self._return = np.zeros(self.num_envs, dtype=np.float64)
        self._length = np.zeros(self.num_envs, dtype=np.int64)

    def collect(self, agent: Agent, steps: int, on_step: StepCallback) -> list[tuple[float, int]]:
        """Step every env until at least ``steps`` transitions were collected.

        A different ``agent`` than the previous call's is reset first (its episodes start
        fresh in its eyes; the envs keep running). Returns ``(return, length)`` of each episode
        that ended during the call.
        """
        if steps < 1:
            raise UsageError(f"collect: steps must be >= 1, got {steps}")
        if self._obs is None:
            self._obs, _ = self.vec_env.reset(seed=self.seed)
            if isinstance(self._obs, dict):
                raise UsageError(
                    "collect: dict observations are not supported; use FlattenObservation"
                )
        if agent is not self._agent:
            agent.reset(self.num_envs)
            self._agent = agent
        ended: list[tuple[float, int]] = []
        target = self.steps + steps
        while self.steps < target:
            obs = self._obs
            actions = np.asarray(agent.act(obs))
            next_obs, rewards, terminated, truncated, infos = self.vec_env.step(actions)
            terminated = np.asarray(terminated, dtype=bool)
            truncated = np.asarray(truncated, dtype=bool)
            dones = terminated | truncated
            active = ~self._resetting
            final = next_obs  # NEXT_STEP: an ended env's step returns its final observation
            if self._same_step and dones.any():
                final = np.stack(
                    [infos["final_obs"][i] if d else next_obs[i] for i, d in enumerate(dones)]
                )
            on_step(obs, actions, rewards, terminated, truncated, final, active)
            self.steps += int(active.sum())
            self._return += np.where(active, rewards, 0.0)
            self._length += active
            for i in np.flatnonzero(dones & active):
                ended.append((float(self._return[i]), int(self._length[i])))
                self._return[i], self._length[i] = 0.0, 0
            if self._same_step:
                agent.observe(np.asarray(rewards), dones)
            else:
                agent.observe(np.asarray(rewards), dones | self._resetting)
                self._resetting = dones & active
            self._obs = next_obs
        return ended

    def close(self) -> None:
        """Close the vector env."""
        self.vec_env.close()
