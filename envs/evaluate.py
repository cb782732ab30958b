"""Evaluate an agent: returns, lengths, mean / std / 95% CI and normalized scores.

Every number comes from :func:`seqrl.envs.rollout.run_episodes` (the one rollout loop) with
``record=False``, so evaluation keeps only per-episode statistics, never the frames.

``std`` is the population standard deviation of the episode returns (as SB3 and the papers
report); the 95% confidence interval of the mean uses Student's t with the sample standard
deviation. Across games and seeds use :func:`seqrl.envs.aggregate_scores`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from gymnasium.vector import VectorEnv
from scipy import stats
from seqrl.envs.config import EnvConfig
from seqrl.envs.factory import make_vec_env
from seqrl.envs.rollout import run_episodes
from seqrl.envs.scores import RefScores, ref_scores_for
from seqrl.protocols import Agent


def vec_env_id(vec_env: VectorEnv) -> str:
    """The gymnasium id of the envs in ``vec_env`` ("unknown" when they have no spec)."""
    spec = getattr(vec_env, "spec", None)
    if spec is None:
        get_attr = getattr(vec_env, "get_attr", None)  # Sync/AsyncVectorEnv have it
        try:
            spec = get_attr("spec")[0] if get_attr is not None else None
        except Exception:  # a third-party vector env without env specs
            spec = None
    return getattr(spec, "id", None) or "unknown"


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval ``(low, high)`` of the mean of ``values`` (zero width for one value)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values))
    return mean - half, mean + half


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate`: one entry per episode, plus summaries.

    Attributes:
        env_id: the gymnasium id evaluated.
        seed: the seed of the vector env's first reset.
        returns: ``(E,)`` undiscounted episode returns (float64).
        lengths: ``(E,)`` agent steps per episode.
        wall_times: ``(E,)`` seconds per episode.
        steps_per_second: agent steps of the kept episodes per second of the whole evaluation.
        ref: the reference scores used to normalize, or None.
    """

    env_id: str
    seed: int | None
    returns: np.ndarray
    lengths: np.ndarray
    wall_times: np.ndarray
    steps_per_second: float
    ref: RefScores | None = None

    @property
    def episodes(self) -> int:
        """Number of episodes."""
        return len(self.returns)

    @property
    def mean(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        """Population standard deviation of the episode returns."""
        return float(np.std(self.returns))

    @property
    def ci95(self) -> tuple[float, float]:
        """95% confidence interval of the mean return."""
        return mean_ci(self.returns)

    @property
    def normalized(self) -> np.ndarray | None:
        """``(E,)`` normalized scores (D4RL / Minari 0-100, Atari HNS as a fraction), or None."""
        return None if self.ref is None else self.ref.normalize(self.returns)

    @property
    def normalized_mean(self) -> float | None:
        """Mean normalized score, or None."""
        norm = self.normalized
        return None if norm is None else float(np.mean(norm))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-episode lists."""
        low, high = self.ci95
        out: dict[str, Any] = {
            "env_id": self.env_id,
            "seed": self.seed,
            "episodes": self.episodes,
            "return_mean": self.mean,
            "return_std": self.std,
            "return_ci95": [low, high],
            "length_mean": float(np.mean(self.lengths)),
            "steps_per_second": self.steps_per_second,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
            "wall_times": [float(t) for t in self.wall_times],
        }
        norm = self.normalized
        if norm is not None and self.ref is not None:
            nlow, nhigh = mean_ci(norm)
            out["normalization"] = {
                "kind": self.ref.kind,
                "name": self.ref.name,
                "low": self.ref.low,
                "high": self.ref.high,
                "scale": self.ref.scale,
            }
            out["normalized_mean"] = float(np.mean(norm))
            out["normalized_std"] = float(np.std(norm))
            out["normalized_ci95"] = [nlow, nhigh]
            out["normalized"] = [float(x) for x in norm]
        return out

    def table(self) -> str:
        """A small plain-text table of the summary, for the terminal."""
        low, high = self.ci95
        rows = [
            ("env", self.env_id),
            ("episodes", str(self.episodes)),
            ("return", f"{self.mean:.2f} +- {self.std:.2f} (95% CI {low:.2f} .. {high:.2f})"),
            (
                "length",
                f"{np.mean(self.lengths):.1f} (min {np.min(self.lengths)}, max {np.max(self.lengths)})",
            ),
        ]
        norm = self.normalized
        if norm is not None and self.ref is not None:
            nlow, nhigh = mean_ci(norm)
            label = {"hns": "HNS", "d4rl": "D4RL score", "minari": "normalized"}.get(
                self.ref.kind, "normalized"
            )
            rows.append(
                (
                    label,
                    f"{np.mean(norm):.3f} +- {np.std(norm):.3f} (95% CI {nlow:.3f} .. {nhigh:.3f})",
                )
            )
        rows.append(("steps/s", f"{self.steps_per_second:.0f}"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def evaluate(
    agent: Agent,
    env: EnvConfig | VectorEnv | str,
    episodes: int,
    seed: int | None = None,
    *,
    num_envs: int | None = None,
    normalization: RefScores | Literal["auto"] | None = "auto",
    progress: bool = False,
) -> EvalResult:
    """Play ``episodes`` complete episodes (no bias toward short ones) and summarize them.

    Args:
        agent: any :class:`~seqrl.protocols.Agent`.
        env: an :class:`EnvConfig` (evaluation settings: ``train=False``), a gymnasium id, or a
            ready vector env (used as is and not closed).
        episodes: number of episodes (>= 1).
        seed: seed of the first reset (env ``i`` gets ``seed + i``); None: the config's ``seed``
            (a ready vector env is then reset unseeded).
        num_envs: envs to build from a config or id (default: the config's ``num_envs``).
        normalization: ``"auto"`` (Atari HNS or D4RL by env id), given reference scores (e.g.
            :func:`seqrl.envs.minari_ref_scores`), or None.
        progress: show a progress bar.
    """
    cfg = EnvConfig(id=env) if isinstance(env, str) else env
    own = isinstance(cfg, EnvConfig)
    vec_env = (
        make_vec_env(cfg, train=False, num_envs=num_envs) if isinstance(cfg, EnvConfig) else cfg
    )
    env_id = cfg.id if isinstance(cfg, EnvConfig) else vec_env_id(vec_env)
    if seed is None and isinstance(cfg, EnvConfig):
        seed = cfg.seed
    try:
        start = time.perf_counter()
        played = run_episodes(
            agent,
            vec_env,
            episodes=episodes,
            seed=seed,
            record=False,
            progress=progress,
            desc="eval",
        )
        elapsed = time.perf_counter() - start
    finally:
        if own:
            vec_env.close()
    ref = ref_scores_for(env_id) if normalization == "auto" else normalization
    return EvalResult(
        env_id=env_id,
        seed=seed,
        returns=np.array([e.episode_return for e in played], dtype=np.float64),
        lengths=np.array([e.length for e in played], dtype=np.int64),
        wall_times=np.array([e.wall_time for e in played], dtype=np.float64),
        steps_per_second=sum(e.length for e in played) / max(elapsed, 1e-9),
        ref=ref,
    )
