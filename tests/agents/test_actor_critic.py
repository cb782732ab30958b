"""Unit tests of the shared actor-critic: returns, weights, entropy term, recurrent state, presets."""

from __future__ import annotations

import math

import pytest
import torch
from seqrl.agents.actor_critic import (
    ActorCritic,
    ActorCriticConfig,
    ac_iris,
    ac_small,
    ac_twm,
    lambda_returns,
)
from seqrl.config import from_dict, to_dict
from seqrl.errors import ConfigError
from seqrl.world_models.imagination import ImaginedRollout


def _rollout(features: torch.Tensor, continues: torch.Tensor, rewards=None, state=None):
    horizon, batch = continues.shape
    return ImaginedRollout(
        features=features,
        actions=torch.zeros(horizon, batch, dtype=torch.long),
        log_probs=torch.zeros(horizon, batch),
        rewards=torch.zeros(horizon, batch) if rewards is None else rewards,
        continues=continues,
        policy_state=state,
    )


def _tiny_cnn(**kw) -> ActorCriticConfig:
    return ActorCriticConfig(
        encoder="iris_cnn", cnn_channels=(4, 4), lstm_dim=8, loss_weights="none", **kw
    )


def test_lambda_returns_hand_computed() -> None:
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [2.0], [4.0]])
    discounts = torch.tensor([[0.9], [0.9], [0.0]])
    # R_2 = 2 (episode ends: no bootstrap); R_1 = 0.9 * (0.5 * 2 + 0.5 * 2); R_0 = 1 + 0.9 * 1.4
    got = lambda_returns(rewards, values, discounts, lam=0.5)
    assert torch.allclose(got.squeeze(1), torch.tensor([2.26, 1.8, 2.0]))
    # lam = 1: Monte Carlo; lam = 0: one-step TD
    assert torch.allclose(
        lambda_returns(rewards, values, discounts, 1.0).squeeze(1), torch.tensor([2.62, 1.8, 2.0])
    )
    assert torch.allclose(
        lambda_returns(rewards, values, discounts, 0.0).squeeze(1), torch.tensor([1.9, 1.8, 2.0])
    )
    # without an ending, the last value bootstraps
    no_end = lambda_returns(rewards, values, torch.full((3, 1), 0.5), 1.0).squeeze(1)
    assert torch.allclose(no_end[-1], torch.tensor(2.0 + 0.5 * 4.0))


def test_discount_weights_and_cut() -> None:
    continues = torch.tensor([[1.0], [0.5], [1.0], [0.0]])
    features = torch.zeros(5, 1, 3)
    values = torch.zeros(5, 1)
    base = dict(gamma=0.9, hidden_dims=(8,))
    ac = ActorCritic(
        (3,), 2, ActorCriticConfig(loss_weights="discounts", cut_threshold=0.1, **base)
    )
    t = ac.targets(_rollout(features, continues), values)
    # weight_t = prod_{k<t} 0.9 * c_k
    assert torch.allclose(t.weights.squeeze(1), torch.tensor([1.0, 0.9, 0.405, 0.3645]))
    # a cut at 0.5: the cumulative discount is 0.405 after step 1 -> steps 2, 3 dropped
    ac = ActorCritic(
        (3,), 2, ActorCriticConfig(loss_weights="discounts", cut_threshold=0.5, **base)
    )
    rewards = torch.tensor([[0.0], [1.0], [5.0], [5.0]])
    t = ac.targets(_rollout(features, continues, rewards), values)
    assert torch.allclose(t.weights.squeeze(1), torch.tensor([1.0, 0.9, 0.0, 0.0]))
    assert torch.allclose(t.returns[1], torch.tensor([1.0]))  # no bootstrap past the cut
    # IRIS: no weighting, no cut
    ac = ActorCritic((3,), 2, ActorCriticConfig(loss_weights="none", cut_threshold=0.0, **base))
    t = ac.targets(_rollout(features, continues), values)
    assert torch.equal(t.weights, torch.ones(4, 1))


def test_continues_discount_the_returns() -> None:
    ac = ActorCritic((3,), 2, ActorCriticConfig(gamma=0.5, lam=1.0, hidden_dims=(8,)))
    rewards = torch.ones(2, 2)
    continues = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = ac.targets(_rollout(torch.zeros(3, 2, 3), continues, rewards), torch.zeros(3, 2))
    assert torch.allclose(t.returns[0], torch.tensor([1.5, 1.0]))


def test_loss_logs_what_imagination_paid() -> None:
    ac = ActorCritic((3,), 2, ActorCriticConfig(hidden_dims=(8,)))
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # (H, B)
    continues = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    metrics = ac.loss(_rollout(torch.zeros(3, 2, 3), continues, rewards)).metrics
    assert metrics["imagined_reward_mean"] == 0.5
    assert metrics["imagined_continue_mean"] == 0.75
    # the second rollout ended at its first step: its second step's reward is not counted
    assert metrics["imagined_reward_alive"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("mode", ["bonus", "threshold"])
def test_entropy_term_raises_entropy(mode: str) -> None:
    torch.manual_seed(0)
    cfg = dict(hidden_dims=(16,), entropy_mode=mode, entropy_threshold=0.9, loss_weights="none")
    ac = ActorCritic((4,), 3, ActorCriticConfig(entropy_weight=1.0, **cfg))
    plain = ActorCritic((4,), 3, ActorCriticConfig(entropy_weight=0.0, **cfg))
    with torch.no_grad():  # a peaked policy: normalised entropy well below the threshold
        ac.actor[-1].bias.copy_(torch.tensor([4.0, 0.0, 0.0]))
    plain.load_state_dict(ac.state_dict())
    ro = _rollout(torch.randn(6, 8, 4), torch.ones(5, 8), torch.randn(5, 8))
    with_ent, without = ac.loss(ro), plain.loss(ro)
    term = with_ent.total - without.total  # the entropy term alone
    h = with_ent.metrics["entropy"]
    if mode == "bonus":
        assert math.isclose(float(term.detach()), -h, rel_tol=1e-4)
    else:
        assert math.isclose(float(term.detach()), 0.9 - h / math.log(3), rel_tol=1e-4)
    # descending the entropy term raises the policy's entropy
    grads = torch.autograd.grad(term, list(ac.actor.parameters()))
    with torch.no_grad():
        for p, g in zip(ac.actor.parameters(), grads, strict=True):
            p -= 0.5 * g
    assert ac.loss(ro).metrics["entropy"] > h


def test_threshold_entropy_inactive_above_threshold() -> None:
    cfg = ActorCriticConfig(
        hidden_dims=(16,), entropy_mode="threshold", entropy_threshold=0.1, loss_weights="none"
    )
    ac = ActorCritic((4,), 3, cfg)
    with torch.no_grad():
        ac.actor[-1].weight.zero_()  # uniform policy: normalised entropy 1 > 0.1
    out = ac.loss(_rollout(torch.randn(4, 2, 4), torch.ones(3, 2)))
    assert out.metrics["entropy_loss"] == 0.0
    assert math.isclose(out.metrics["norm_entropy"], 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("critic_loss", ["mse", "nll"])
def test_critic_loss_value(critic_loss: str) -> None:
    cfg = ActorCriticConfig(
        hidden_dims=(8,), critic_loss=critic_loss, loss_weights="none", entropy_weight=0.0
    )
    ac = ActorCritic((2,), 2, cfg)
    with torch.no_grad():
        ac.critic[-1].weight.zero_()
        ac.critic[-1].bias.fill_(1.0)  # v = 1 everywhere
    ro = _rollout(torch.zeros(2, 1, 2), torch.zeros(1, 1), torch.tensor([[3.0]]))
    out = ac.loss(ro)  # return = 3, error = -2
    expected = 4.0 if critic_loss == "mse" else 2.0 + 0.5 * math.log(2 * math.pi)
    assert math.isclose(out.metrics["critic_loss"], expected, rel_tol=1e-5)


def test_burn_in_and_reset_rows() -> None:
    torch.manual_seed(0)
    ac = ActorCritic((3, 16, 16), 4, _tiny_cnn())
    frames = torch.rand(3, 5, 3, 16, 16)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False  # row 1: all padding
    mask[2, :3] = False  # row 2: padding, then two real steps
    h, c = ac.burn_in(frames, mask)
    assert h.shape == (3, 8) and not h.requires_grad
    assert h[0].abs().sum() > 0 and c[0].abs().sum() > 0
    assert torch.equal(h[1], torch.zeros(8))  # padding leaves the state unchanged
    h2, _ = ac.burn_in(frames[2:, 3:], mask[2:, 3:])
    assert torch.allclose(h[2], h2[0], atol=1e-6)  # padding before the start is skipped
    # burn-in equals stepping one frame at a time
    state = ac.initial_state(1)
    for t in range(5):
        _, _, state = ac.step(frames[0:1, t], state)
    assert torch.allclose(state[0], h[0:1], atol=1e-6)
    rh, rc = ac.reset_rows((h, c), torch.tensor([True, False, False]))
    assert torch.equal(rh[0], torch.zeros(8)) and torch.equal(rc[0], torch.zeros(8))
    assert torch.equal(rh[2], h[2]) and torch.equal(rc[2], c[2])
    # the feed-forward policy has no state
    mlp = ActorCritic((4,), 2, ac_small())
    assert mlp.initial_state(3) is None
    assert mlp.burn_in(torch.zeros(3, 2, 4), torch.ones(3, 2, dtype=torch.bool)) is None
    assert mlp.reset_rows(None, torch.ones(3, dtype=torch.bool)) is None


def test_unroll_matches_steps() -> None:
    torch.manual_seed(0)
    ac = ActorCritic((3, 16, 16), 4, _tiny_cnn())
    frames = torch.rand(4, 2, 3, 16, 16)
    state0 = ac.burn_in(torch.rand(2, 3, 3, 16, 16), torch.ones(2, 3, dtype=torch.bool))
    logits, values = ac.unroll(frames, state0)
    state = state0
    for t in range(4):
        lt, vt, state = ac.step(frames[t], state)
        assert torch.allclose(lt, logits[t], atol=1e-5) and torch.allclose(vt, values[t], atol=1e-5)


def test_param_groups_carry_learning_rates() -> None:
    ac = ActorCritic((32,), 6, ac_twm())
    groups = {g["name"]: g for g in ac.param_groups()}
    assert groups["actor"]["lr"] == 1e-4 and groups["critic"]["lr"] == 1e-5
    opt = torch.optim.Adam(ac.param_groups())
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-5]
    assert opt.param_groups[0]["eps"] == 1e-5
    ids = [id(p) for g in ac.param_groups() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(ac.parameters()))
    cnn = ActorCritic((3, 16, 16), 4, _tiny_cnn(actor_lr=2e-4, critic_lr=3e-4))
    ids = [id(p) for g in cnn.param_groups() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(cnn.parameters()))
    assert [g["lr"] for g in cnn.param_groups()] == [2e-4, 3e-4]


def test_ema_slow_critic() -> None:
    cfg = ActorCriticConfig(hidden_dims=(8,), critic_target="ema", critic_target_rate=0.5)
    ac = ActorCritic((2,), 2, cfg)
    assert ac.target_critic is not None
    with torch.no_grad():
        ac.critic[-1].bias.fill_(2.0)
        ac.target_critic[-1].bias.fill_(0.0)
    ac.after_update()
    assert torch.allclose(ac.target_critic[-1].bias, torch.tensor([1.0]))
    # the slow critic gives the targets: v_slow = 1 -> return of the last step bootstraps from it
    with torch.no_grad():
        ac.target_critic[-1].weight.zero_()
    t = ac.targets(_rollout(torch.zeros(2, 1, 2), torch.ones(1, 1)), values=torch.full((2, 1), 7.0))
    assert torch.allclose(t.returns, torch.tensor([[ac.cfg.gamma * 1.0]]))
    assert all(p.grad is None for p in ac.target_critic.parameters())
    assert all(not p.requires_grad for p in ac.target_critic.parameters())


def test_return_normalisation() -> None:
    torch.manual_seed(0)
    cfg = ActorCriticConfig(hidden_dims=(8,), return_norm="percentile", loss_weights="none")
    ac = ActorCritic((2,), 2, cfg)
    rewards = torch.linspace(0, 100, 64).reshape(1, 64)
    ro = _rollout(torch.zeros(2, 64, 2), torch.zeros(1, 64), rewards)
    t = ac.targets(ro, torch.zeros(2, 64))
    spread = float(ac.return_range)
    assert 80 < spread < 100
    assert torch.allclose(t.advantages, t.returns / spread)
    cfg = ActorCriticConfig(hidden_dims=(8,), return_norm="advantage")
    t = ActorCritic((2,), 2, cfg).targets(ro, torch.zeros(2, 64))
    assert abs(float(t.advantages.mean())) < 1e-5
    assert math.isclose(float(t.advantages.std(unbiased=False)), 1.0, rel_tol=1e-4)


def test_presets_hold_the_papers_values() -> None:
    twm = ac_twm()
    assert (twm.encoder, twm.hidden_dims, twm.activation) == ("mlp", (512,) * 4, "silu")
    assert (twm.gamma, twm.lam, twm.horizon, twm.batch_size) == (0.99, 0.95, 15, 400)
    assert (twm.entropy_mode, twm.entropy_weight, twm.entropy_threshold) == ("threshold", 0.01, 0.1)
    assert (twm.critic_loss, twm.critic_target, twm.cut_threshold) == ("nll", "none", 0.1)
    assert (twm.actor_lr, twm.critic_lr, twm.grad_clip) == (1e-4, 1e-5, 1.0)
    iris = ac_iris()
    assert (iris.encoder, iris.cnn_channels, iris.lstm_dim) == ("iris_cnn", (32, 32, 64, 64), 512)
    assert (iris.gamma, iris.lam, iris.horizon, iris.burn_in, iris.batch_size) == (
        0.995,
        0.95,
        20,
        20,
        64,
    )
    assert (iris.entropy_mode, iris.entropy_weight, iris.critic_loss) == ("bonus", 0.001, "mse")
    assert (iris.actor_lr, iris.critic_lr, iris.grad_clip, iris.loss_weights) == (
        1e-4,
        1e-4,
        10.0,
        "none",
    )
    # IRIS's network on 64x64 RGB frames: 4 poolings -> 64 x 4 x 4 = 1024 LSTM inputs
    ac = ActorCritic((3, 64, 64), 9, iris)
    assert ac.lstm is not None and ac.lstm.input_size == 1024 and ac.lstm.hidden_size == 512
    for make in (ac_twm, ac_iris, ac_small):
        assert from_dict(ActorCriticConfig, to_dict(make())) == make()


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="ema"):
        ActorCriticConfig(encoder="iris_cnn", critic_target="ema")
    with pytest.raises(ConfigError, match="gamma"):
        ActorCriticConfig(gamma=1.5)
    with pytest.raises(ConfigError, match="C, H, W"):
        ActorCritic((10,), 2, _tiny_cnn())
    with pytest.raises(ConfigError, match="2 actions"):
        ActorCritic((10,), 1, ac_small())
