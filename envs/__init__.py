"""Environment construction, the rollout loop, evaluation and score normalization.

::

    from seqrl.envs import EnvConfig, atari_preset, make_vec_env, rollout, evaluate

    cfg = EnvConfig(id="ALE/Pong-v5", num_envs=8, atari=atari_preset("iris"))
    result = evaluate(agent, cfg, episodes=100, seed=0)   # EvalResult: mean, ci95, normalized_mean
    trajectories = rollout(agent, make_vec_env(cfg, train=True), steps=10_000)
"""

from seqrl.envs.aggregate import AggregateScores, Interval, aggregate_scores, score_matrix
from seqrl.envs.atari import FireOnReset, LifeLossTerminal, game_name, is_atari, make_atari_env
from seqrl.envs.config import ATARI_PRESETS, AtariConfig, EnvConfig, MinAtarConfig, atari_preset
from seqrl.envs.evaluate import EvalResult, evaluate, mean_ci
from seqrl.envs.factory import check_env_id, make_env, make_vec_env
from seqrl.envs.minatar import MinAtarImage, is_minatar, make_minatar_env
from seqrl.envs.rollout import Collector, Episode, rollout, run_episodes
from seqrl.envs.scores import (
    ATARI_100K_GAMES,
    ATARI_RANDOM_HUMAN,
    D4RL_REF_SCORES,
    RefScores,
    atari_ref_scores,
    d4rl_normalized_score,
    d4rl_ref_scores,
    human_normalized_score,
    minari_ref_scores,
    ref_scores_for,
)

__all__ = [
    "ATARI_100K_GAMES",
    "ATARI_PRESETS",
    "ATARI_RANDOM_HUMAN",
    "D4RL_REF_SCORES",
    "AggregateScores",
    "AtariConfig",
    "Collector",
    "EnvConfig",
    "Episode",
    "EvalResult",
    "FireOnReset",
    "Interval",
    "LifeLossTerminal",
    "MinAtarConfig",
    "MinAtarImage",
    "RefScores",
    "aggregate_scores",
    "atari_preset",
    "atari_ref_scores",
    "check_env_id",
    "d4rl_normalized_score",
    "d4rl_ref_scores",
    "evaluate",
    "game_name",
    "human_normalized_score",
    "is_atari",
    "is_minatar",
    "make_atari_env",
    "make_env",
    "make_minatar_env",
    "make_vec_env",
    "mean_ci",
    "minari_ref_scores",
    "ref_scores_for",
    "rollout",
    "run_episodes",
    "score_matrix",
]
