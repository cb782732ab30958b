"""The actor-critic that learns inside any world model, on imagined rollouts only.

One module covers the two papers' agents:

- TWM, Robine et al. 2023, "Transformer-based World Models Are Happy With 100k Interactions",
  https://arxiv.org/abs/2303.07109 (code: https://github.com/jrobine/twm, ``twm/actor_critic.py``):
  separate actor and critic MLPs on the latent state, REINFORCE on lambda-returns, losses weighted by
  the cumulative product of predicted discounts, a thresholded entropy regulariser and a
  unit-variance Gaussian NLL critic.
- IRIS, Micheli et al. 2023, "Transformers are Sample-Efficient World Models",
  https://arxiv.org/abs/2209.00588 (code: https://github.com/eloialonso/iris,
  ``src/models/actor_critic.py``): a CNN + LSTMCell over imagined frames with burn-in on real
  frames, linear actor and critic heads, REINFORCE on lambda-returns with a plain entropy bonus and an
  MSE critic.

The world model is never differentiated (REINFORCE): :func:`seqrl.world_models.imagination.imagine`
runs everything under ``no_grad`` and :meth:`ActorCritic.loss` recomputes logits and values from the
rollout's stored features and initial policy state. See ``docs/actor_critic.md`` for the equations.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from seqrl.backbone.encoders import cpu_channels_last
from seqrl.errors import ConfigError
from seqrl.types import LossOutput
from torch import nn

if TYPE_CHECKING:
    from seqrl.world_models.imagination import ImaginedRollout

Encoder = Literal["mlp", "iris_cnn"]
Activation = Literal["silu", "relu", "elu", "tanh"]
LossWeights = Literal["none", "discounts"]
EntropyMode = Literal["bonus", "threshold"]
ReturnNorm = Literal["none", "advantage", "percentile"]
CriticLoss = Literal["mse", "nll"]
CriticTarget = Literal["none", "ema"]

PolicyState = tuple[torch.Tensor, torch.Tensor] | None
"""``(h, c)``, each ``(B, lstm_dim)``, for the recurrent policy; ``None`` for feed-forward ones."""

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass
class ActorCriticConfig:
    """Every option of the actor-critic; :func:`ac_twm` and :func:`ac_iris` hold the papers' values."""

    encoder: Encoder = field(
        default="mlp",
        metadata={
            "help": "mlp: separate actor and critic MLPs on flat features (TWM); "
            "iris_cnn: shared CNN + LSTMCell over (C, H, W) frames in [0, 1], linear heads (IRIS)"
        },
    )
    hidden_dims: tuple[int, ...] = field(
        default=(512, 512, 512, 512), metadata={"help": "mlp: hidden widths of actor and critic"}
    )
    activation: Activation = field(default="silu", metadata={"help": "mlp: hidden activation"})
    cnn_channels: tuple[int, ...] = field(
        default=(32, 32, 64, 64),
        metadata={"help": "iris_cnn: channels of the [conv3x3, maxpool 2, ReLU] blocks"},
    )
    lstm_dim: int = field(default=512, metadata={"help": "iris_cnn: LSTMCell hidden size"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    lam: float = field(default=0.95, metadata={"help": "lambda of the lambda-returns"})
    loss_weights: LossWeights = field(
        default="discounts",
        metadata={
            "help": "discounts: weight step t by prod_{k<t} gamma * continue_k (TWM); none: 1 (IRIS)"
        },
    )
    cut_threshold: float = field(
        default=0.1,
        metadata={
            "help": "stop a rollout once the cumulative discount drops below this (TWM 0.1; 0: never)"
        },
    )
    entropy_mode: EntropyMode = field(
        default="threshold",
        metadata={
            "help": "bonus: -w * H (IRIS); threshold: w * relu(threshold - H / log|A|) (TWM)"
        },
    )
    entropy_weight: float = field(default=0.01, metadata={"help": "entropy coefficient w"})
    entropy_threshold: float = field(
        default=0.1, metadata={"help": "threshold mode: normalised entropy kept above this"}
    )
    return_norm: ReturnNorm = field(
        default="none",
        metadata={
            "help": "none (both papers); advantage: standardise advantages per batch; "
            "percentile: divide by max(1, EMA of P95 - P5 of returns) (DreamerV3)"
        },
    )
    return_norm_decay: float = field(
        default=0.99, metadata={"help": "percentile: EMA decay of the return range"}
    )
    critic_loss: CriticLoss = field(
        default="nll", metadata={"help": "nll: unit-variance Gaussian NLL (TWM); mse (IRIS)"}
    )
    critic_target: CriticTarget = field(
        default="none",
        metadata={"help": "none (both papers) or ema: slow critic for the targets (mlp only)"},
    )
    critic_target_rate: float = field(
        default=0.02, metadata={"help": "ema: fraction of the online critic mixed in per update"}
    )
    actor_lr: float = field(default=1e-4, metadata={"help": "Adam lr of the actor (and trunk)"})
    critic_lr: float = field(default=1e-5, metadata={"help": "Adam lr of the critic"})
    adam_eps: float = field(default=1e-5, metadata={"help": "Adam epsilon"})
    weight_decay: float = field(default=1e-6, metadata={"help": "Adam weight decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient norm clip (0: none)"})
    horizon: int = field(default=15, metadata={"help": "imagined steps per rollout"})
    batch_size: int = field(default=400, metadata={"help": "imagined rollouts per update"})
    burn_in: int = field(
        default=15,
        metadata={
            "help": "real context steps before the start step (the loop samples burn_in + 1 steps)"
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ConfigError("actor_critic: gamma and lam must be in [0, 1]")
        if self.horizon < 1 or self.batch_size < 1 or self.burn_in < 0:
            raise ConfigError("actor_critic: horizon and batch_size must be >= 1, burn_in >= 0")
        if not 0.0 < self.critic_target_rate <= 1.0:
            raise ConfigError("actor_critic: critic_target_rate must be in (0, 1]")
        if self.critic_target == "ema" and self.encoder != "mlp":
            raise ConfigError("actor_critic: critic_target=ema needs encoder=mlp")
        if self.encoder == "iris_cnn" and len(self.cnn_channels) < 1:
            raise ConfigError("actor_critic: cnn_channels must not be empty")


def ac_twm() -> ActorCriticConfig:
    """TWM's actor-critic (paper appendix and ``twm/config.py``); rollouts start after one real
    context step, as ``twm/trainer.py`` builds its starts (``windows(z, 2)``)."""
    return ActorCriticConfig(burn_in=1)


def ac_iris() -> ActorCriticConfig:
    """IRIS's actor-critic (``config/trainer.yaml`` and ``src/models/actor_critic.py``)."""
    return ActorCriticConfig(
        encoder="iris_cnn",
        cnn_channels=(32, 32, 64, 64),
        lstm_dim=512,
        gamma=0.995,
        lam=0.95,
        loss_weights="none",
        cut_threshold=0.0,
        entropy_mode="bonus",
        entropy_weight=0.001,
        critic_loss="mse",
        actor_lr=1e-4,
        critic_lr=1e-4,
        adam_eps=1e-8,
        weight_decay=0.0,
        grad_clip=10.0,
        horizon=20,
        batch_size=64,
        burn_in=20,
    )


def ac_small() -> ActorCriticConfig:
    """A tiny MLP actor-critic with fast learning rates, for CPU tests and toy problems."""
    return ActorCriticConfig(
        hidden_dims=(64, 64),
        actor_lr=3e-3,
        critic_lr=3e-3,
        adam_eps=1e-8,
        weight_decay=0.0,
        grad_clip=10.0,
        horizon=8,
        batch_size=64,
        burn_in=4,
    )


PRESETS = {"twm": ac_twm, "iris": ac_iris, "small": ac_small}
"""Preset name -> actor-critic config."""

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    """Linear-activation stack with orthogonal weights and zero biases (as TWM's ``nets.MLP``)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), _ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class IrisCNN(nn.Module):
    """IRIS's frame encoder: ``[conv3x3, maxpool 2, ReLU]`` blocks on frames in [0, 1] -> flat."""

    def __init__(self, frame_shape: tuple[int, ...], channels: tuple[int, ...]) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_ch = frame_shape[0]
        for ch in channels:
            blocks += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.MaxPool2d(2), nn.ReLU()]
            in_ch = ch
        self.net = nn.Sequential(*blocks, nn.Flatten())
        with torch.no_grad():
            self.out_dim = int(self.net(torch.zeros(1, *frame_shape)).shape[1])

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` in [0, 1] -> ``(N, out_dim)`` (rescaled to [-1, 1] first, as IRIS)."""
        return self.net(cpu_channels_last(frames.float() * 2.0 - 1.0))


def alive_weights(continues: torch.Tensor) -> torch.Tensor:
    """``(H, B)`` weight of each imagined step: the product of the continues before it (1 until
    a rollout's first end, 0 after it with sampled 0/1 continues; the chance of still being
    alive with probabilities). Steps after an end are what the world model never saw in its data."""
    continues = continues.float()
    return torch.cumprod(torch.cat([torch.ones_like(continues[:1]), continues[:-1]]), dim=0)


def _alive_mean(rewards: torch.Tensor, continues: torch.Tensor) -> float:
    """Mean reward ``(H, B)`` over imagined steps taken before any imagined end."""
    alive = alive_weights(continues)
    return float((alive * rewards.float()).sum() / alive.sum().clamp(min=1e-8))


def lambda_returns(
    rewards: torch.Tensor, values: torch.Tensor, discounts: torch.Tensor, lam: float
) -> torch.Tensor:
    """TD(lambda) returns, time-major.

    ``R_t = r_t + d_t * ((1 - lam) * v_{t+1} + lam * R_{t+1})`` with ``R_H = v_H``.

    Args:
        rewards: ``(H, B)`` reward after the action at step t.
        values: ``(H + 1, B)`` value estimates of each state (the last one bootstraps).
        discounts: ``(H, B)`` ``gamma * continue_t`` (0 where the episode ends after step t).
        lam: the lambda in [0, 1].

    Returns:
        ``(H, B)`` the returns of steps ``0 .. H-1``.
    """
    horizon = rewards.shape[0]
    returns = torch.empty_like(rewards)
    last = values[-1]
    for t in range(horizon - 1, -1, -1):
        last = rewards[t] + discounts[t] * ((1.0 - lam) * values[t + 1] + lam * last)
        returns[t] = last
    return returns


@dataclass
class RolloutTargets:
    """What the actor and critic losses regress to (no gradients), time-major ``(H, B)``."""

    returns: torch.Tensor
    advantages: torch.Tensor
    weights: torch.Tensor


class ActorCritic(nn.Module):
    """A discrete-action actor-critic over world-model features (see the module docstring).

    Args:
        feature_shape: shape of one step's features: ``(D,)`` or any shape (flattened) for
            ``mlp``; ``(C, H, W)`` frames in [0, 1] for ``iris_cnn``.
        num_actions: size of the discrete action space (at least 2).
        cfg: the options.
    """

    return_range: torch.Tensor
    return_range_ready: torch.Tensor

    def __init__(
        self, feature_shape: tuple[int, ...], num_actions: int, cfg: ActorCriticConfig
    ) -> None:
        super().__init__()
        if num_actions < 2:
            raise ConfigError(f"actor_critic: needs at least 2 actions, got {num_actions}")
        self.cfg = cfg
        self.feature_shape = tuple(feature_shape)
        self.num_actions = num_actions
        self.recurrent = cfg.encoder == "iris_cnn"
        self.trunk: IrisCNN | None = None
        self.lstm: nn.LSTMCell | None = None
        self.actor: nn.Module
        self.critic: nn.Module
        if cfg.encoder == "mlp":
            in_dim = math.prod(self.feature_shape)
            self.actor = _mlp(in_dim, cfg.hidden_dims, num_actions, cfg.activation)
            self.critic = _mlp(in_dim, cfg.hidden_dims, 1, cfg.activation)
        else:
            if len(self.feature_shape) != 3:
                raise ConfigError(
                    f"actor_critic: iris_cnn needs (C, H, W) features, got {self.feature_shape}"
                )
            self.trunk = IrisCNN(self.feature_shape, cfg.cnn_channels)
            self.lstm = nn.LSTMCell(self.trunk.out_dim, cfg.lstm_dim)
            self.actor = nn.Linear(cfg.lstm_dim, num_actions)
            self.critic = nn.Linear(cfg.lstm_dim, 1)
        self.target_critic: nn.Module | None = None
        if cfg.critic_target == "ema":
            self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # percentile return normalisation: EMA of the P95 - P5 range of the returns
        self.register_buffer("return_range", torch.zeros(()))
        self.register_buffer("return_range_ready", torch.zeros((), dtype=torch.bool))

    # ----------------------------------------------------------------- acting
    def initial_state(self, batch_size: int) -> PolicyState:
        """Zero ``(h, c)`` of shape ``(batch_size, lstm_dim)`` (recurrent) or ``None``."""
        if not self.recurrent:
            return None
        device = next(self.parameters()).device
        zeros = torch.zeros(batch_size, self.cfg.lstm_dim, device=device)
        return zeros, zeros.clone()

    def _embed(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, *F)`` -> ``(N, D)`` input of the core (flat features or CNN output)."""
        if self.trunk is None:
            return features.float().flatten(1)
        return self.trunk(features)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, D)`` -> logits ``(N, A)``, values ``(N,)``."""
        return self.actor(x), self.critic(x).squeeze(-1)

    def step(
        self, features: torch.Tensor, policy_state: PolicyState
    ) -> tuple[torch.Tensor, torch.Tensor, PolicyState]:
        """One step: ``(B, *F)`` features -> logits ``(B, A)``, value ``(B,)``, next state."""
        x = self._embed(features)
        if self.lstm is not None:
            if policy_state is None:
                policy_state = self.initial_state(x.shape[0])
            policy_state = self.lstm(x, policy_state)
            x = policy_state[0]
        logits, value = self._heads(x)
        return logits, value, policy_state

    @torch.no_grad()
    def burn_in(self, features: torch.Tensor, mask: torch.Tensor) -> PolicyState:
        """Run the recurrent core over real context ``(B, T, *F)``; rows advance where ``mask``.

        Padding slots (``mask`` False) leave the state unchanged, as IRIS does. Feed-forward
        policies return :meth:`initial_state` (``None``). No gradients flow through burn-in.
        """
        batch, steps = mask.shape
        state = self.initial_state(batch)
        if self.lstm is None or steps == 0:
            return state
        assert state is not None
        x = self._embed(features.flatten(0, 1)).unflatten(0, (batch, steps))  # (B, T, D)
        h, c = state
        for t in range(steps):
            h_new, c_new = self.lstm(x[:, t], (h, c))
            keep = mask[:, t].unsqueeze(-1)
            h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
        return h, c

    def reset_rows(self, policy_state: PolicyState, rows: torch.Tensor) -> PolicyState:
        """Zero the recurrent state of the rows where ``rows`` ``(B,)`` is True (ended episodes)."""
        if policy_state is None:
            return None
        keep = (~rows.to(torch.bool)).unsqueeze(-1).to(policy_state[0].dtype)
        return policy_state[0] * keep, policy_state[1] * keep

    def unroll(
        self, features: torch.Tensor, policy_state: PolicyState
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(T, B, A)`` and values ``(T, B)`` along time-major features ``(T, B, *F)``.

        The encoder runs on all ``T * B`` inputs at once; only the LSTM steps through time.
        """
        steps, batch = features.shape[:2]
        x = self._embed(features.flatten(0, 1)).unflatten(0, (steps, batch))  # (T, B, D)
        if self.lstm is not None:
            state = policy_state if policy_state is not None else self.initial_state(batch)
            hs = []
            for t in range(steps):
                state = self.lstm(x[t], state)
                hs.append(state[0])
            x = torch.stack(hs)  # (T, B, lstm_dim)
        logits, values = self._heads(x.flatten(0, 1))
        return logits.unflatten(0, (steps, batch)), values.unflatten(0, (steps, batch))

    # --------------------------------------------------------------- learning
    @torch.no_grad()
    def targets(self, rollout: ImaginedRollout, values: torch.Tensor) -> RolloutTargets:
        """Lambda-returns, advantages and loss weights of a rollout, given values ``(H + 1, B)``.

        Discounts are ``gamma * continues``. With ``cut_threshold > 0`` a rollout stops once the
        cumulative discount falls below it: no bootstrapping past that step, and later steps get
        weight 0 (TWM restarts such rows from a fresh start state instead).
        """
        cfg = self.cfg
        if self.target_critic is not None:
            values = self.target_critic(rollout.features.float().flatten(2)).squeeze(-1)
        discounts = cfg.gamma * rollout.continues.float()  # (H, B)
        cumulative = torch.cumprod(discounts, dim=0)  # prod_{k<=t}
        if cfg.cut_threshold > 0:
            cut = cumulative < cfg.cut_threshold
            discounts = discounts * (~cut).float()
            # step t is alive if no cut happened at any step before it
            cut_before = torch.cumsum(cut.float(), dim=0) - cut.float()
            alive = (cut_before == 0).float()
        else:
            alive = torch.ones_like(discounts)
        if cfg.loss_weights == "discounts":
            ones = torch.ones_like(cumulative[:1])
            weights = torch.cat([ones, cumulative[:-1]]) * alive  # prod_{k<t} discount_k
        else:
            weights = alive
        returns = lambda_returns(rollout.rewards.float(), values, discounts, cfg.lam)
        advantages = returns - values[:-1]
        if cfg.return_norm == "advantage":
            advantages = (advantages - advantages.mean()) / (advantages.std(unbiased=False) + 1e-8)
        elif cfg.return_norm == "percentile":
            if self.training:
                flat = returns.flatten()
                spread = torch.quantile(flat, 0.95) - torch.quantile(flat, 0.05)
                if bool(self.return_range_ready):
                    decay = cfg.return_norm_decay
                    self.return_range.mul_(decay).add_((1.0 - decay) * spread)
                else:
                    self.return_range.copy_(spread)
                    self.return_range_ready.fill_(True)
            advantages = advantages / torch.clamp(self.return_range, min=1.0)
        return RolloutTargets(returns=returns, advantages=advantages, weights=weights)

    def loss(self, rollout: ImaginedRollout) -> LossOutput:
        """Actor (REINFORCE + entropy term) and critic losses on one imagined rollout.

        Logits and values are recomputed with gradients from ``rollout.features`` and
        ``rollout.policy_state``; the world model is not differentiated.
        """
        cfg = self.cfg
        logits_all, values_all = self.unroll(rollout.features, rollout.policy_state)
        t = self.targets(rollout, values_all.detach())
        logits, values = logits_all[:-1], values_all[:-1]  # (H, B, A), (H, B)
        log_probs = F.log_softmax(logits.float(), dim=-1)
        chosen = log_probs.gather(-1, rollout.actions.long().unsqueeze(-1)).squeeze(-1)
        reinforce = -(t.weights * chosen * t.advantages).mean()
        entropy = -(log_probs.exp() * log_probs).sum(-1)  # (H, B)
        mean_entropy = (t.weights * entropy).mean()
        norm_entropy = mean_entropy / math.log(self.num_actions)
        if cfg.entropy_mode == "bonus":
            entropy_loss = -cfg.entropy_weight * mean_entropy
        else:
            entropy_loss = cfg.entropy_weight * torch.relu(cfg.entropy_threshold - norm_entropy)
        error = values.float() - t.returns
        if cfg.critic_loss == "mse":
            critic_loss = (t.weights * error.pow(2)).mean()
        else:
            critic_loss = (t.weights * (0.5 * error.pow(2) + _HALF_LOG_2PI)).mean()
        actor_loss = reinforce + entropy_loss
        total = actor_loss + critic_loss
        metrics = {
            "actor_loss": float(actor_loss.detach()),
            "reinforce": float(reinforce.detach()),
            "entropy_loss": float(entropy_loss.detach()),
            "critic_loss": float(critic_loss.detach()),
            "entropy": float(entropy.detach().mean()),
            "norm_entropy": float(norm_entropy.detach()),
            "return_mean": float(t.returns.mean()),
            "value_mean": float(values.detach().mean()),
            "advantage_mean": float(t.advantages.mean()),
            "weight_mean": float(t.weights.mean()),
            "imagined_reward_mean": float(rollout.rewards.float().mean()),
            "imagined_reward_alive": _alive_mean(rollout.rewards, rollout.continues),
            "imagined_continue_mean": float(rollout.continues.float().mean()),
        }
        if cfg.return_norm == "percentile":
            metrics["return_range"] = float(self.return_range)
        return LossOutput(total=total, metrics=metrics)

    @torch.no_grad()
    def after_update(self) -> None:
        """Move the slow critic toward the online critic (``critic_target=ema``); else no-op."""
        if self.target_critic is None:
            return
        rate = self.cfg.critic_target_rate
        for slow, fast in zip(
            self.target_critic.parameters(), self.critic.parameters(), strict=True
        ):
            slow.lerp_(fast, rate)

    def param_groups(self) -> list[dict]:
        """Optimizer groups: ``actor`` (actor head + shared trunk, ``actor_lr``), ``critic``.

        Each dict has ``name``, ``params``, ``lr``, ``eps`` and ``weight_decay``; pass the list to
        ``torch.optim.Adam``. The slow critic is not trained by the optimizer.
        """
        cfg = self.cfg
        actor = list(self.actor.parameters())
        for part in (self.trunk, self.lstm):
            if part is not None:
                actor += list(part.parameters())
        common = {"eps": cfg.adam_eps, "weight_decay": cfg.weight_decay}
        return [
            {"name": "actor", "params": actor, "lr": cfg.actor_lr, **common},
            {
                "name": "critic",
                "params": list(self.critic.parameters()),
                "lr": cfg.critic_lr,
                **common,
            },
        ]
