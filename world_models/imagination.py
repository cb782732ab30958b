"""Imagination: batched rollouts of the policy inside a world model, from real context.

As in TWM (https://arxiv.org/abs/2303.07109) and IRIS (https://arxiv.org/abs/2209.00588): the
world model burns in on real sequences, then the policy acts for ``H`` steps on the world model's
own predictions. Everything here runs under ``no_grad`` (the actor-critic is trained with
REINFORCE and never differentiates the world model). The rollout keeps the features the policy saw
and the policy state it started from, so :meth:`ActorCritic.loss` re-runs the policy with
gradients: for the MLP that is one batched forward; for the recurrent IRIS policy the CNN runs on
all ``(H + 1) * B`` frames at once and only the LSTM steps through time. Nothing of the rollout's
graph is held while the world model decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from seqrl.types import TrajectoryBatch
from torch import nn

if TYPE_CHECKING:
    from seqrl.agents.actor_critic import ActorCritic, PolicyState
    from seqrl.protocols import WorldModel


@dataclass
class ImaginedRollout:
    """``B`` imagined rollouts of ``H`` steps, time-major, without gradients.

    Attributes:
        features: ``(H + 1, B, *F)`` what the policy saw: index 0 is the last real context step,
            index ``H`` only bootstraps the value.
        actions: ``(H, B)`` long, the sampled actions.
        log_probs: ``(H, B)`` log-probability of each action under the sampling distribution
            (temperature applied).
        rewards: ``(H, B)`` predicted reward after each action.
        continues: ``(H, B)`` predicted probability (or sample) that the episode goes on after
            each action.
        policy_state: the actor-critic's state before ``features[0]`` (after burn-in on the
            context); ``None`` for feed-forward policies.
    """

    features: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    continues: torch.Tensor
    policy_state: PolicyState

    @property
    def horizon(self) -> int:
        """``H``."""
        return int(self.actions.shape[0])

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.actions.shape[1])


def sample_actions(logits: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions ``(B,)`` from logits ``(B, A)`` at ``temperature`` (0: greedy) and their log-probs."""
    if temperature == 0:
        actions = logits.argmax(-1)
        return actions, torch.zeros_like(actions, dtype=torch.float32)
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    actions = torch.multinomial(log_probs.exp(), 1).squeeze(-1)
    return actions, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def imagine(
    world_model: WorldModel | Any,
    actor_critic: ActorCritic,
    context: TrajectoryBatch,
    horizon: int,
    *,
    temperature: float = 1.0,
) -> ImaginedRollout:
    """Roll the policy out for ``horizon`` steps inside ``world_model`` from real ``context``.

    The world model burns in on ``context`` (``imagine_start``); the recurrent policy burns in on
    the context's features except the last step (``features[:, :-1]`` under ``mask[:, :-1]``), and
    the last real step's features are the rollout's first input, as in IRIS. The world model is
    switched to eval mode for the rollout (dropout off) and restored afterwards.

    Args:
        world_model: anything with ``imagine_start`` / ``imagine_step`` (the WorldModel protocol).
        actor_critic: the policy.
        context: ``(B, T, ...)`` real sequences whose last slot is real (``mask[:, -1]`` True).
        horizon: ``H``, imagined steps.
        temperature: sampling temperature of the policy (0: greedy).

    Returns:
        The time-major :class:`ImaginedRollout`.
    """
    if horizon < 1:
        raise ValueError(f"imagine: horizon must be >= 1, got {horizon}")
    was_training = isinstance(world_model, nn.Module) and world_model.training
    if isinstance(world_model, nn.Module):
        world_model.eval()
    try:
        wm_state, context_features = world_model.imagine_start(context)
        policy_state = actor_critic.burn_in(context_features[:, :-1], context.mask[:, :-1])
        start_state = policy_state
        feature = context_features[:, -1]
        features, actions, log_probs, rewards, continues = [feature], [], [], [], []
        for _ in range(horizon):
            logits, _, policy_state = actor_critic.step(feature, policy_state)
            action, log_prob = sample_actions(logits, temperature)
            wm_state, out = world_model.imagine_step(wm_state, action)
            feature = out.features
            features.append(feature)
            actions.append(action)
            log_probs.append(log_prob)
            rewards.append(out.rewards.float())
            continues.append(out.continues.float())
    finally:
        if was_training:
            world_model.train()
    return ImaginedRollout(
        features=torch.stack(features),
        actions=torch.stack(actions),
        log_probs=torch.stack(log_probs),
        rewards=torch.stack(rewards),
        continues=torch.stack(continues),
        policy_state=start_state,
    )
