"""Score normalization with the standard constants: D4RL, Minari datasets and Atari (HNS).

- D4RL: ``100 * (return - ref_min) / (ref_max - ref_min)``; the constants are those of
  ``d4rl/infos.py`` (Fu et al. 2020, arXiv 2004.07219), the same for every dataset version of an
  env. Applied to gymnasium's MuJoCo v5 envs they are a convention (d3rlpy and CORL do the same):
  v5 differs slightly from the mujoco-py envs D4RL was recorded in.
- Minari: the dataset's own ``ref_min_score`` / ``ref_max_score`` metadata, on the same 0-100 scale
  (``minari.get_normalized_score`` returns the 0-1 fraction).
- Atari: human-normalized score ``(score - random) / (human - random)`` as a fraction (1.0 = human),
  with the random/human table used by SPR, IRIS, TWM and DIAMOND for the 26 Atari 100k games
  (copied from jrobine/twm ``twm/utils.py``, itself from mila-iqia/spr).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from seqrl.envs.atari import game_name
from seqrl.errors import DataError, UsageError

# d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE (shared/reference/d4rl_ref_scores.csv)
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
"""D4RL env name -> (ref_min, ref_max) returns."""

# shared/reference/atari100k_scores.csv, columns random and human
ATARI_RANDOM_HUMAN: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7),
    "UpNDown": (533.4, 11693.2),
}
"""Atari 100k game -> (random, human) score."""

ATARI_100K_GAMES: tuple[str, ...] = tuple(ATARI_RANDOM_HUMAN)
"""The 26 games of the Atari 100k benchmark."""

_ATARI_BY_LOWER = {name.lower(): name for name in ATARI_RANDOM_HUMAN}


@dataclass(frozen=True)
class RefScores:
    """Reference returns that map a raw return onto a normalized scale.

    ``normalize(r) = scale * (r - low) / (high - low)``: ``scale`` is 100 for D4RL and Minari, 1 for
    the Atari HNS.
    """

    low: float
    high: float
    scale: float
    kind: Literal["d4rl", "minari", "hns", "custom"]
    name: str

    def normalize(self, returns: np.ndarray | float) -> np.ndarray:
        """Normalized scores of raw episode returns (same shape as ``returns``)."""
        return (
            self.scale * (np.asarray(returns, dtype=np.float64) - self.low) / (self.high - self.low)
        )


def d4rl_ref_scores(name: str) -> RefScores | None:
    """D4RL constants for an env or dataset name (``Hopper-v5``, ``hopper-medium-v2``,
    ``mujoco/hopper/medium-v0``); None when the env is not in the table."""
    for token in re.split(r"[/\-_]", name.lower()):
        if token in D4RL_REF_SCORES:
            low, high = D4RL_REF_SCORES[token]
            return RefScores(low, high, 100.0, "d4rl", token)
    return None


def atari_ref_scores(env_id_or_game: str) -> RefScores | None:
    """Random/human scores of an Atari 100k game (``ALE/Pong-v5``, ``PongNoFrameskip-v4`` or
    ``Pong``); None for other games."""
    game = _ATARI_BY_LOWER.get(game_name(env_id_or_game).lower())
    if game is None:
        return None
    low, high = ATARI_RANDOM_HUMAN[game]
    return RefScores(low, high, 1.0, "hns", game)


def ref_scores_for(env_id: str) -> RefScores | None:
    """The standard normalization of ``env_id``: Atari HNS, else D4RL, else None (MinAtar)."""
    if env_id.startswith("MinAtar/"):  # MinAtar/Breakout is not Atari Breakout
        return None
    return atari_ref_scores(env_id) or d4rl_ref_scores(env_id)


def human_normalized_score(game: str, score: np.ndarray | float) -> np.ndarray:
    """HNS of raw Atari scores; UsageError for a game outside the Atari 100k table."""
    ref = atari_ref_scores(game)
    if ref is None:
        raise UsageError(f"no random/human scores for Atari game '{game}' (Atari 100k games only)")
    return ref.normalize(score)


def d4rl_normalized_score(name: str, returns: np.ndarray | float) -> np.ndarray:
    """D4RL normalized score (0 = random, 100 = expert); UsageError for an env outside the table."""
    ref = d4rl_ref_scores(name)
    if ref is None:
        raise UsageError(
            f"no D4RL reference scores for '{name}' (known: {', '.join(D4RL_REF_SCORES)})"
        )
    return ref.normalize(returns)


def minari_ref_scores(dataset_id: str) -> RefScores:
    """The reference scores stored in a locally available Minari dataset's metadata.

    Raises DataError (one line) when the dataset is not local or has no reference scores.
    """
    import minari

    try:
        dataset = minari.load_dataset(dataset_id, download=False)
    except Exception as exc:  # minari raises FileNotFoundError / ValueError with long texts
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DataError(f"Minari dataset '{dataset_id}': not available locally ({first})") from None
    metadata = dataset.storage.metadata
    low, high = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if low is None or high is None:
        raise DataError(
            f"Minari dataset '{dataset_id}': no ref_min_score / ref_max_score in its metadata"
        )
    return RefScores(float(low), float(high), 100.0, "minari", dataset_id)
