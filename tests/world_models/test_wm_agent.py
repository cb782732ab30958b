"""Acting with a world model: the real context handed to ``imagine_start`` and the policy state."""

from __future__ import annotations

import numpy as np
import torch
from seqrl.protocols import Agent
from seqrl.world_models.agent import WorldModelAgent


class EchoWorldModel:
    """Features of a step = its observation (flattened); remembers the contexts it was given."""

    num_actions = 3

    def __init__(self) -> None:
        self.contexts = []

    def imagine_start(self, context):
        self.contexts.append(context)
        b, t = context.mask.shape
        return None, context.observations.reshape(b, t, -1).float()


class CountingPolicy:
    """Recurrent stand-in: the state counts steps per row; logits prefer action (obs sum) % 3."""

    def initial_state(self, batch_size):
        return torch.zeros(batch_size)

    def step(self, features, state):
        favourite = features.sum(-1).long() % 3
        logits = torch.full((len(features), 3), -1e9)
        logits[torch.arange(len(features)), favourite] = 0.0
        return logits, torch.zeros(len(features)), state + 1

    def reset_rows(self, state, rows):
        return torch.where(rows, torch.zeros_like(state), state)


def test_context_is_left_padded_with_previous_actions_and_rewards() -> None:
    wm, policy = EchoWorldModel(), CountingPolicy()
    agent = WorldModelAgent(wm, policy, context_len=3)
    assert isinstance(agent, Agent)
    agent.reset(2)
    obs = lambda t: np.array([[t], [10 + t]], dtype=np.float32)  # noqa: E731
    a0 = agent.act(obs(0))
    agent.observe(np.array([1.0, 2.0]), np.array([False, True]))  # env 1's episode ends
    a1 = agent.act(obs(1))
    agent.observe(np.array([3.0, 4.0]), np.array([False, False]))
    agent.act(obs(2))
    first, second, third = wm.contexts
    assert first.mask.tolist() == [[False, False, True]] * 2
    np.testing.assert_array_equal(a0, [0, 1])  # greedy through the -1e9 logits: obs % 3
    assert second.mask.tolist() == [[False, True, True], [False, False, True]]
    assert second.observations[0, 1:, 0].tolist() == [0.0, 1.0]
    assert second.actions[0, 1].item() == a0[0] and second.rewards[0, 1].item() == 1.0
    assert second.timesteps[0].tolist() == [0, 0, 1]
    # env 1 restarted: its context holds only the new episode
    assert third.mask[1].tolist() == [False, True, True]
    assert third.observations[1, 1:, 0].tolist() == [11.0, 12.0]
    assert third.actions[1, 1].item() == a1[1] and third.rewards[1, 1].item() == 4.0
    assert third.observations[0, :, 0].tolist() == [0.0, 1.0, 2.0]
    # policy state: env 0 stepped 3 times, env 1 was reset after its first step
    assert agent._policy_state.tolist() == [3.0, 2.0]


def test_frame_stack_repeats_the_first_frame_like_the_sampler() -> None:
    wm = EchoWorldModel()
    agent = WorldModelAgent(wm, CountingPolicy(), context_len=2, frame_stack=3)
    agent.reset(1)
    for t in range(4):
        agent.act(np.full((1, 2, 2), t, dtype=np.uint8))
        agent.observe(np.zeros(1), np.zeros(1, dtype=bool))
    stacks = [c.observations[0, :, :, 0, 0].tolist() for c in wm.contexts]
    assert stacks[0][1] == [0, 0, 0]
    assert stacks[1] == [[0, 0, 0], [0, 0, 1]]
    assert stacks[3] == [[0, 1, 2], [1, 2, 3]]


def test_epsilon_and_temperature() -> None:
    wm = EchoWorldModel()
    greedy = WorldModelAgent(wm, CountingPolicy(), temperature=0.0)
    greedy.reset(64)
    assert (greedy.act(np.zeros((64, 1), np.float32)) == 0).all()
    explore = WorldModelAgent(wm, CountingPolicy(), epsilon=1.0, seed=0)
    explore.reset(64)
    assert len(set(explore.act(np.zeros((64, 1), np.float32)).tolist())) == 3
