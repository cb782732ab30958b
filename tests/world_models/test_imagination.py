"""Imagination rollouts in an analytic toy world model, and the actor-critic learning inside it.

The toy world model is a chain MDP with ``N`` states: the right action (1 in even states, 0 in odd
ones) moves right, the other moves left (bounded at 0). Reaching the last state pays 1, ends the
episode (continue 0) and restarts the chain at state 0. Its features are the one-hot state, or a
small RGB frame whose lit column encodes it. From state 0 the optimal policy always moves right and
collects one reward every ``N - 1`` steps; it must tell the states apart to do so.
"""

from __future__ import annotations

import pytest
import torch
from seqrl.agents.actor_critic import ActorCritic, ActorCriticConfig, ac_small
from seqrl.protocols import ImaginedStep
from seqrl.types import TrajectoryBatch
from seqrl.world_models.imagination import ImaginedRollout, imagine
from torch import nn


class ChainWorldModel(nn.Module):
    """A known chain MDP behind the WorldModel protocol (states are the context's observations)."""

    def __init__(self, num_states: int = 5, frame_size: int | None = None) -> None:
        super().__init__()
        self.num_states = num_states
        self.frame_size = frame_size
        self.num_actions = 2
        self.feature_shape = (num_states,) if frame_size is None else (3, frame_size, frame_size)
        # a trainable scale on the features: imagination must not give it gradients
        self.scale = nn.Parameter(torch.ones(()))

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """``(...)`` state ids -> ``(..., *feature_shape)``."""
        one_hot = nn.functional.one_hot(states, self.num_states).float()
        if self.frame_size is None:
            return one_hot * self.scale
        width = self.frame_size // self.num_states
        columns = one_hot.repeat_interleave(width, dim=-1)  # (..., num_states * width)
        columns = nn.functional.pad(columns, (0, self.frame_size - columns.shape[-1]))
        frame = columns.unsqueeze(-2).expand(*columns.shape[:-1], self.frame_size, self.frame_size)
        return frame.unsqueeze(-3).expand(*frame.shape[:-2], 3, *frame.shape[-2:]) * self.scale

    def loss(self, batch: TrajectoryBatch):  # pragma: no cover - not used here
        raise NotImplementedError

    def imagine_start(self, context: TrajectoryBatch) -> tuple[torch.Tensor, torch.Tensor]:
        states = context.observations.long()  # (B, T)
        return states[:, -1].clone(), self.features(states)

    def imagine_step(self, state: torch.Tensor, actions: torch.Tensor):
        right = actions == (state % 2 == 0).long()
        nxt = torch.where(right, state + 1, (state - 1).clamp(min=0))
        goal = nxt == self.num_states - 1
        nxt = torch.where(goal, torch.zeros_like(nxt), nxt)
        return nxt, ImaginedStep(self.features(nxt), goal.float(), (~goal).float())


def chain_context(states: torch.Tensor, steps: int) -> TrajectoryBatch:
    """Contexts of ``steps`` slots ending in ``states`` ``(B,)`` (earlier slots: state 0)."""
    batch = states.shape[0]
    obs = torch.zeros(batch, steps, dtype=torch.long)
    obs[:, -1] = states
    zeros = torch.zeros(batch, steps)
    return TrajectoryBatch(
        observations=obs,
        actions=torch.zeros(batch, steps, dtype=torch.long),
        rewards=zeros,
        returns_to_go=zeros,
        timesteps=torch.arange(steps).expand(batch, steps),
        mask=torch.ones(batch, steps, dtype=torch.bool),
        terminals=torch.zeros(batch, steps, dtype=torch.bool),
    )


def random_policy_return(wm: ChainWorldModel, horizon: int, episodes: int = 2000) -> float:
    """Mean undiscounted imagined reward of the uniform policy from state 0."""
    gen = torch.Generator().manual_seed(0)
    state = torch.zeros(episodes, dtype=torch.long)
    total = torch.zeros(episodes)
    with torch.no_grad():
        for _ in range(horizon):
            actions = torch.randint(0, 2, (episodes,), generator=gen)
            state, out = wm.imagine_step(state, actions)
            total += out.rewards
    return float(total.mean())


def train_in_imagination(wm: ChainWorldModel, ac: ActorCritic, updates: int) -> None:
    """The actor-critic's only training signal: ``imagine`` rollouts of the toy model."""
    cfg = ac.cfg
    opt = torch.optim.Adam(ac.param_groups())
    for _ in range(updates):
        starts = torch.randint(0, wm.num_states - 1, (cfg.batch_size,))
        rollout = imagine(wm, ac, chain_context(starts, cfg.burn_in + 1), cfg.horizon)
        out = ac.loss(rollout)
        opt.zero_grad(set_to_none=True)
        out.total.backward()
        nn.utils.clip_grad_norm_(ac.parameters(), cfg.grad_clip)
        opt.step()
        ac.after_update()


def greedy_return(wm: ChainWorldModel, ac: ActorCritic, horizon: int) -> float:
    """Mean undiscounted reward of the greedy policy over ``horizon`` imagined steps from state 0."""
    ctx = chain_context(torch.zeros(16, dtype=torch.long), ac.cfg.burn_in + 1)
    rollout = imagine(wm, ac, ctx, horizon, temperature=0.0)
    return float(rollout.rewards.sum(0).mean())


@pytest.mark.parametrize("frames", [False, True], ids=["mlp", "iris_cnn"])
def test_imagine_shapes_and_no_world_model_gradients(frames: bool) -> None:
    torch.manual_seed(0)
    wm = ChainWorldModel(frame_size=16 if frames else None)
    if frames:
        cfg = ActorCriticConfig(encoder="iris_cnn", cnn_channels=(4, 4), lstm_dim=8)
    else:
        cfg = ac_small()
    ac = ActorCritic(wm.feature_shape, wm.num_actions, cfg)
    wm.train()
    rollout = imagine(wm, ac, chain_context(torch.tensor([0, 1, 2]), 4), horizon=5)
    assert isinstance(rollout, ImaginedRollout)
    assert rollout.features.shape == (6, 3, *wm.feature_shape)
    assert rollout.actions.shape == (5, 3) and rollout.actions.dtype == torch.long
    for name in ("log_probs", "rewards", "continues"):
        assert getattr(rollout, name).shape == (5, 3)
    assert (rollout.horizon, rollout.batch_size) == (5, 3)
    assert wm.training  # restored after the rollout (eval inside)
    # the first input is the last real context step
    assert torch.equal(rollout.features[0], wm.features(torch.tensor([0, 1, 2])).detach())
    assert not any(t.requires_grad for t in (rollout.features, rollout.rewards, rollout.log_probs))
    out = ac.loss(rollout)
    out.total.backward()
    assert wm.scale.grad is None  # REINFORCE: the world model is never differentiated
    assert all(p.grad is not None for p in ac.parameters())
    if frames:
        # the start state is the burn-in over the context without its last step
        h, _ = rollout.policy_state
        feats = wm.features(chain_context(torch.tensor([0, 1, 2]), 4).observations)
        h_ref, _ = ac.burn_in(feats[:, :-1], torch.ones(3, 3, dtype=torch.bool))
        assert torch.allclose(h, h_ref) and h.abs().sum() > 0
    else:
        assert rollout.policy_state is None


@pytest.mark.parametrize("frames", [False, True], ids=["mlp", "iris_cnn"])
def test_loss_recomputes_the_sampling_policy(frames: bool) -> None:
    torch.manual_seed(1)
    wm = ChainWorldModel(frame_size=16 if frames else None)
    cfg = (
        ActorCriticConfig(encoder="iris_cnn", cnn_channels=(4, 4), lstm_dim=8)
        if frames
        else ac_small()
    )
    ac = ActorCritic(wm.feature_shape, wm.num_actions, cfg)
    rollout = imagine(wm, ac, chain_context(torch.tensor([0, 3, 1, 2]), 3), horizon=6)
    logits, _ = ac.unroll(rollout.features, rollout.policy_state)
    log_probs = torch.log_softmax(logits[:-1], -1).gather(-1, rollout.actions.unsqueeze(-1))
    assert torch.allclose(log_probs.squeeze(-1), rollout.log_probs, atol=1e-5)


def test_imagined_rewards_and_continues_follow_the_model() -> None:
    wm = ChainWorldModel(num_states=4)
    ac = ActorCritic(wm.feature_shape, 2, ac_small())
    with torch.no_grad():  # a policy that always takes action 1
        ac.actor[-1].weight.zero_()
        ac.actor[-1].bias.copy_(torch.tensor([-20.0, 20.0]))
    rollout = imagine(wm, ac, chain_context(torch.tensor([0]), 2), horizon=4)
    assert rollout.actions.squeeze(1).tolist() == [1, 1, 1, 1]
    # 0 -> 1 (right), 1 -> 0 (action 1 is wrong in odd states), ...
    assert rollout.rewards.squeeze(1).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert rollout.features[:, 0].argmax(-1).tolist() == [0, 1, 0, 1, 0]
    rollout = imagine(wm, ac, chain_context(torch.tensor([2]), 2), horizon=2)
    assert rollout.rewards.squeeze(1).tolist() == [1.0, 0.0]  # 2 -> goal, restart at 0
    assert rollout.continues.squeeze(1).tolist() == [0.0, 1.0]


def test_mlp_actor_critic_learns_the_chain_in_imagination() -> None:
    torch.manual_seed(0)
    wm = ChainWorldModel(num_states=5)
    ac = ActorCritic(wm.feature_shape, wm.num_actions, ac_small())
    horizon = 8
    optimal, random = 2.0, random_policy_return(wm, horizon)
    before = greedy_return(wm, ac, horizon)
    train_in_imagination(wm, ac, updates=60)
    after = greedy_return(wm, ac, horizon)
    assert random < 0.5 and after >= 0.95 * optimal, (before, after, random)


def test_recurrent_iris_cnn_learns_the_chain_from_frames() -> None:
    torch.manual_seed(0)
    wm = ChainWorldModel(num_states=4, frame_size=16)
    cfg = ActorCriticConfig(
        encoder="iris_cnn",
        cnn_channels=(8, 8, 16, 16),
        lstm_dim=32,
        loss_weights="none",
        cut_threshold=0.0,
        entropy_mode="bonus",
        entropy_weight=0.001,
        critic_loss="mse",
        gamma=0.95,
        actor_lr=3e-3,
        critic_lr=3e-3,
        adam_eps=1e-8,
        weight_decay=0.0,
        grad_clip=10.0,
        horizon=6,
        batch_size=32,
        burn_in=2,
    )
    ac = ActorCritic(wm.feature_shape, wm.num_actions, cfg)
    horizon = 6
    optimal, random = 2.0, random_policy_return(wm, horizon)
    train_in_imagination(wm, ac, updates=120)
    after = greedy_return(wm, ac, horizon)
    assert random < 0.6 and after >= 0.95 * optimal, (after, random)
