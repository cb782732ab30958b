"""Env configs: presets, validation and the JSON round trip through seqrl.config."""

from __future__ import annotations

import pytest
from seqrl.config import from_dict, to_dict
from seqrl.envs import ATARI_PRESETS, AtariConfig, EnvConfig, atari_preset, make_env
from seqrl.errors import ConfigError, SeqrlError, UsageError


@pytest.mark.parametrize("name", sorted(ATARI_PRESETS))
def test_presets_round_trip(name: str) -> None:
    cfg = EnvConfig(id="ALE/Pong-v5", num_envs=4, atari=atari_preset(name))
    assert from_dict(EnvConfig, to_dict(cfg)) == cfg


def test_presets_follow_the_papers() -> None:
    # shared/reference/PAPERS.md: IRIS 64x64 RGB, 20k-frame training cap, 1 test no-op;
    # TWM 64x64 gray x4, FIRE, no eval no-ops; DQN-style data 84x84 gray x4
    iris, twm, dqn = atari_preset("iris"), atari_preset("twm"), atari_preset("dqn")
    assert (iris.screen_size, iris.color, iris.frame_stack, iris.noop_max_eval) == (64, "rgb", 1, 1)
    assert (iris.max_frames_train, iris.max_frames_eval) == (20_000, 108_000)
    assert (twm.screen_size, twm.color, twm.frame_stack, twm.noop_max_eval) == (64, "gray", 4, 0)
    assert twm.fire == "on_reset_and_life_loss"
    assert (dqn.screen_size, dqn.color, dqn.frame_stack) == (84, "gray", 4)
    for cfg in (iris, twm, dqn):
        assert cfg.frame_skip == 4 and cfg.noop_max_train == 30
        assert cfg.life_loss == "terminal_in_training"


def test_validation() -> None:
    with pytest.raises(ConfigError, match="unknown Atari preset 'nope'"):
        atari_preset("nope")
    with pytest.raises(ConfigError, match="num_envs must be >= 1"):
        EnvConfig(num_envs=0)
    with pytest.raises(ConfigError, match="atari.frame_skip"):
        AtariConfig(frame_skip=0)
    with pytest.raises(ConfigError, match="noop_max_eval"):
        AtariConfig(noop_max_eval=-1)
    with pytest.raises(UsageError, match="unknown environment id 'Nope-v9'"):
        make_env(EnvConfig(id="Nope-v9"))
    assert issubclass(UsageError, SeqrlError)


def test_mujoco_warnings_go_through_python_warnings(tmp_path, monkeypatch) -> None:
    """A MuJoCo env installs seqrl's warning handler: MuJoCo's messages become RuntimeWarnings
    (shown once per message) instead of prints plus a MUJOCO_LOG.TXT in the working directory."""
    mujoco = pytest.importorskip("mujoco")
    from seqrl.envs import factory

    monkeypatch.chdir(tmp_path)
    previous = mujoco.get_mju_user_warning()
    try:
        mujoco.set_mju_user_warning(None)
        env = make_env(EnvConfig(id="HalfCheetah-v5"))
        env.reset(seed=0)
        env.close()
        assert mujoco.get_mju_user_warning() is factory._mujoco_warning
        assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
        with pytest.warns(RuntimeWarning, match="MuJoCo: a message"):
            mujoco.get_mju_user_warning()("a message")
    finally:
        mujoco.set_mju_user_warning(previous)
