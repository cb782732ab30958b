"""Decision Transformer: offline RL as return-conditioned sequence modelling.

Chen et al. 2021, "Decision Transformer: Reinforcement Learning via Sequence Modeling",
https://arxiv.org/abs/2106.01345 (reference code: kzl/decision-transformer).

Each step t of a trajectory becomes three tokens, (return-to-go R_t, observation s_t, action a_t),
each embedded, plus a learned embedding of the timestep t shared by the three; a LayerNorm over the
embeddings; the shared causal backbone; and the action predicted from the output at the state
token s_t (so it sees R_0..R_t, s_0..s_t and a_0..a_{t-1}).

Evaluation (:class:`DTAgent`) acts in N environments at once, each with its own target return,
in one of two modes:

- ``window`` (the paper's): every step re-runs the last K steps, left-padded, batched over envs.
- ``cached``: the model attends within a band (``banded`` or ``dilated`` attention), so decoding
  with the backbone's KV cache is exact: each step feeds only the new tokens, and the cost per step
  does not grow with K. Each step feeds the block ``[a_{t-1}, R_t, s_t]``; at an episode start the
  action slot is padding, which no token attends to.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from gymnasium import spaces
from seqrl.backbone import KVCache, NatureCNN, Transformer, TransformerConfig
from seqrl.checkpoint import Checkpoint, load_state
from seqrl.config import from_dict
from seqrl.errors import CheckpointError, SeqrlError, UsageError
from seqrl.trainer import precision_dtype
from seqrl.types import LossOutput, TrajectoryBatch
from torch import Tensor, nn

ALGO = "dt"

ActionHead = Literal["tanh", "tanh_gaussian", "categorical"]
Encoder = Literal["linear", "nature_cnn"]
InferenceMode = Literal["window", "cached"]


def paper_gym_backbone() -> TransformerConfig:
    """GPT-2 as the DT gym code configures it: 128 wide, 3 layers, 1 head, ReLU MLP, dropout 0.1."""
    return TransformerConfig(
        width=128,
        depth=3,
        heads=1,
        ff="mlp",
        activation="relu",
        ff_mult=4.0,
        attention="dense",
        positions="none",
        dropout=0.1,
        attn_dropout=0.1,
        norm="layernorm",
        bias=True,
    )


@dataclass
class DTConfig:
    """The Decision Transformer model (the backbone's options live in ``backbone``)."""

    backbone: TransformerConfig = field(default_factory=paper_gym_backbone)
    context: int = field(default=20, metadata={"help": "K: steps the model sees per prediction"})
    max_timestep: int = field(
        default=1000, metadata={"help": "size of the timestep embedding table"}
    )
    return_scale: float = field(
        default=1000.0, metadata={"help": "returns-to-go are divided by this"}
    )
    action_head: ActionHead = field(
        default="tanh", metadata={"help": "tanh (paper, MSE), tanh_gaussian (NLL) or categorical"}
    )
    encoder: Encoder = field(
        default="linear", metadata={"help": "observation embedding: linear or nature_cnn"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (0: greedy)"})
    timestep_init: Literal["torch", "gpt2", "zeros"] = field(
        default="torch",
        metadata={
            "help": "timestep embedding init: torch N(0, 1) (DT gym code), gpt2 N(0, 0.02) (d3rlpy), zeros (minGPT Atari)"
        },
    )
    action_loss: Literal["mean", "sum"] = field(
        default="mean",
        metadata={
            "help": "tanh head's squared error: mean over action dimensions (the paper's code) or "
            "summed over them (d3rlpy)"
        },
    )
    conditioning: Literal["return", "none"] = field(
        default="return",
        metadata={
            "help": "return: the paper's return-to-go tokens; none: behaviour cloning (the return input is zeroed)"
        },
    )

    def __post_init__(self) -> None:
        if self.context < 1:
            raise ValueError("context must be >= 1")
        if self.max_timestep < 1:
            raise ValueError("max_timestep must be >= 1")
        if self.return_scale <= 0:
            raise ValueError("return_scale must be > 0")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")


@dataclass
class SpaceInfo:
    """What the model needs to know about the data's spaces (saved in checkpoints)."""

    obs_shape: tuple[int, ...]
    discrete: bool
    action_dim: int  # number of actions (discrete) or action vector size (continuous)

    @classmethod
    def of(cls, observation_space: spaces.Space, action_space: spaces.Space) -> SpaceInfo:
        """From gymnasium spaces (Box observations; Box or Discrete actions)."""
        if not isinstance(observation_space, spaces.Box):
            raise UsageError(
                f"Decision Transformer needs Box observations, got {observation_space}"
            )
        if isinstance(action_space, spaces.Discrete):
            return cls(tuple(observation_space.shape), True, int(action_space.n))
        if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            return cls(tuple(observation_space.shape), False, int(action_space.shape[0]))
        raise UsageError(
            f"Decision Transformer needs Discrete or 1-D Box actions, got {action_space}"
        )


class DecisionTransformer(nn.Module):
    """(R, s, a) tokens -> backbone -> action distribution at each state token.

    Buffers hold the observation statistics and action bounds, so a checkpoint carries them.
    """

    obs_mean: Tensor
    obs_std: Tensor
    action_low: Tensor
    action_high: Tensor

    def __init__(self, cfg: DTConfig, info: SpaceInfo) -> None:
        super().__init__()
        self.cfg, self.info = cfg, info
        width = cfg.backbone.width
        image = len(info.obs_shape) == 3
        # (H, W, C) frames (RGB or gray, e.g. the IRIS protocol's 64x64x3) go to the CNN as
        # (C, H, W); stacked frames (4, 84, 84) are channels first already
        self.channels_last = image and info.obs_shape[-1] in (1, 3) and info.obs_shape[0] > 4
        if cfg.encoder == "nature_cnn":
            if not image:
                raise UsageError(
                    f"--model.encoder nature_cnn needs image observations, got shape {info.obs_shape}"
                )
            shape = info.obs_shape
            chw = (shape[2], shape[0], shape[1]) if self.channels_last else shape
            self.embed_obs: nn.Module = NatureCNN(chw, out_dim=width)  # type: ignore[arg-type]
        else:
            if image:
                raise UsageError("image observations need --model.encoder nature_cnn")
            self.embed_obs = nn.Linear(int(np.prod(info.obs_shape)), width)
        if info.discrete != (cfg.action_head == "categorical"):
            kind = "discrete" if info.discrete else "continuous"
            fits = "categorical" if info.discrete else "tanh or tanh_gaussian"
            raise UsageError(
                f"--model.action_head {cfg.action_head} does not fit {kind} actions "
                f"(use --model.action_head {fits})"
            )
        self.embed_action: nn.Module = (
            nn.Embedding(info.action_dim, width)
            if info.discrete
            else nn.Linear(info.action_dim, width)
        )
        self.embed_return = nn.Linear(1, width)
        self.embed_time = nn.Embedding(cfg.max_timestep, width)
        if cfg.timestep_init == "gpt2":
            nn.init.normal_(self.embed_time.weight, std=0.02)
        elif cfg.timestep_init == "zeros":
            nn.init.zeros_(self.embed_time.weight)
        self.embed_norm = nn.LayerNorm(width)
        self.backbone = Transformer(cfg.backbone)
        out = {
            "tanh": info.action_dim,
            "tanh_gaussian": 2 * info.action_dim,
            "categorical": info.action_dim,
        }
        self.head = nn.Linear(width, out[cfg.action_head])
        self.register_buffer("obs_mean", torch.zeros(info.obs_shape))
        self.register_buffer("obs_std", torch.ones(info.obs_shape))
        self.register_buffer("action_low", -torch.ones(1 if info.discrete else info.action_dim))
        self.register_buffer("action_high", torch.ones(1 if info.discrete else info.action_dim))

    # --- tokens -------------------------------------------------------------------------------

    def set_normalization(
        self, mean: np.ndarray | None, std: np.ndarray | None, low: Any = None, high: Any = None
    ) -> None:
        """Observation mean/std (vector observations) and action bounds (continuous actions)."""
        if mean is not None and std is not None:
            self.obs_mean.copy_(
                torch.as_tensor(mean, dtype=torch.float32).reshape(self.obs_mean.shape)
            )
            self.obs_std.copy_(
                torch.as_tensor(std, dtype=torch.float32).reshape(self.obs_std.shape)
            )
        if low is not None and high is not None and not self.info.discrete:
            self.action_low.copy_(torch.as_tensor(low, dtype=torch.float32))
            self.action_high.copy_(torch.as_tensor(high, dtype=torch.float32))

    def to_unit(self, actions: Tensor) -> Tensor:
        """Continuous actions in the env's bounds -> [-1, 1]."""
        return 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0

    def from_unit(self, unit: Tensor) -> Tensor:
        """[-1, 1] -> the env's action bounds."""
        return self.action_low + (unit + 1.0) * 0.5 * (self.action_high - self.action_low)

    def _obs_tokens(self, obs: Tensor) -> Tensor:
        if self.cfg.encoder == "nature_cnn":  # uint8 frames are scaled on the device
            return self.embed_obs(obs.movedim(-1, -3) if self.channels_last else obs)
        x = (obs.float() - self.obs_mean) / self.obs_std
        return self.embed_obs(x.flatten(start_dim=2))

    def _action_tokens(self, actions: Tensor) -> Tensor:
        if self.info.discrete:
            return self.embed_action(actions.long().clamp(min=0))  # padding (-10) -> any valid id
        return self.embed_action(self.to_unit(actions.float()))

    def time_embedding(self, timesteps: Tensor) -> Tensor:
        """``(B, T)`` long -> ``(B, T, width)``; timesteps past the table reuse its last entry."""
        return self.embed_time(timesteps.long().clamp(0, self.cfg.max_timestep - 1))

    def return_tokens(self, returns_to_go: Tensor, time: Tensor) -> Tensor:
        """``(B, T)`` scaled returns-to-go -> ``(B, T, width)`` (zeroed input for behaviour cloning)."""
        rtg = returns_to_go.float().unsqueeze(-1)
        if self.cfg.conditioning == "none":
            rtg = torch.zeros_like(rtg)
        return self.embed_return(rtg) + time

    def obs_tokens(self, obs: Tensor, time: Tensor) -> Tensor:
        """``(B, T, *obs_shape)`` -> ``(B, T, width)``."""
        return self._obs_tokens(obs) + time

    def action_tokens(self, actions: Tensor, time: Tensor) -> Tensor:
        """``(B, T, act_dim)`` or ``(B, T)`` ids -> ``(B, T, width)``."""
        return self._action_tokens(actions) + time

    def step_tokens(
        self, returns_to_go: Tensor, obs: Tensor, actions: Tensor, timesteps: Tensor
    ) -> Tensor:
        """Per-step token embeddings ``(B, T, 3, width)``: (R_t, s_t, a_t), each + timestep."""
        time = self.time_embedding(timesteps)
        r = self.return_tokens(returns_to_go, time)
        s = self.obs_tokens(obs, time)
        a = self.action_tokens(actions, time)
        return torch.stack((r, s, a), dim=2)

    def forward(
        self,
        returns_to_go: Tensor,
        obs: Tensor,
        actions: Tensor,
        timesteps: Tensor,
        mask: Tensor | None = None,
        *,
        last_only: bool = False,
    ) -> Tensor:
        """Head outputs at every state token, ``(B, T, out)``.

        Args:
            returns_to_go: ``(B, T)`` already divided by ``return_scale``.
            obs: ``(B, T, *obs_shape)`` raw observations (normalised here).
            actions: ``(B, T, act_dim)`` float or ``(B, T)`` long.
            timesteps: ``(B, T)`` long.
            mask: ``(B, T)`` bool, False on padding.
            last_only: acting from a window: only the last state token's output ``(B, 1, out)``.
                Either way, with dense and banded attention, the final block computes the
                queries and feed-forward of the wanted state tokens alone (dilated attention
                runs the full pass): the same numbers with less work.
        """
        tokens = rearrange(
            self.step_tokens(returns_to_go, obs, actions, timesteps), "b t k d -> b (t k) d"
        )
        padding = None if mask is None else mask.bool().repeat_interleave(3, dim=1)
        if self.cfg.backbone.attention == "dilated":
            h = self.backbone(self.embed_norm(tokens), padding_mask=padding)
            return self.head(h[:, -2:-1] if last_only else h[:, 1::3])
        # Only the state tokens' outputs are used (the last one's alone when acting): the last
        # action token, which no state token sees, is dropped, and the final block computes the
        # query and feed-forward of the selected tokens only (the same numbers, less work).
        select = slice(-1, None) if last_only else slice(1, None, 3)
        h = self.backbone(
            self.embed_norm(tokens[:, :-1]),
            padding_mask=None if padding is None else padding[:, :-1],
            select=select,
        )
        return self.head(h)

    # --- losses and actions -------------------------------------------------------------------

    def loss(self, batch: TrajectoryBatch) -> LossOutput:
        """The paper's masked action loss (MSE for tanh; NLL for the other heads)."""
        out = self(
            batch.returns_to_go, batch.observations, batch.actions, batch.timesteps, batch.mask
        )
        m = batch.mask.bool()
        if self.cfg.action_head == "tanh":
            pred, target = torch.tanh(out[m]), self.to_unit(batch.actions[m].float())
            mse = F.mse_loss(pred, target)
            total = mse if self.cfg.action_loss == "mean" else mse * pred.shape[-1]
            return LossOutput(total, {"action_mse": float(mse.detach())})
        if self.cfg.action_head == "tanh_gaussian":
            target = self.to_unit(batch.actions[m].float())
            total = -self._tanh_gaussian_log_prob(out[m], target).mean()
            return LossOutput(total, {"action_nll": float(total.detach())})
        logits, target = out[m], batch.actions[m].long()
        total = F.cross_entropy(logits, target)
        acc = (logits.argmax(-1) == target).float().mean()
        return LossOutput(
            total, {"action_ce": float(total.detach()), "action_accuracy": float(acc)}
        )

    @staticmethod
    def _tanh_gaussian_log_prob(out: Tensor, unit_action: Tensor) -> Tensor:
        mean, log_std = out.chunk(2, dim=-1)
        log_std = log_std.clamp(-5.0, 2.0)
        a = unit_action.clamp(-0.999, 0.999)
        u = torch.atanh(a)
        normal = torch.distributions.Normal(mean, log_std.exp())
        return (normal.log_prob(u) - torch.log1p(-a.pow(2) + 1e-6)).sum(-1)

    def select_action(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Head outputs ``(N, out)`` -> actions ``(N, act_dim)`` in env bounds, or ``(N,)`` ids.

        Continuous heads act deterministically (tanh of the mean); the categorical head samples at
        ``cfg.temperature`` (0: greedy), as the DT Atari code does.
        """
        if self.cfg.action_head == "categorical":
            if self.cfg.temperature == 0:
                return out.argmax(-1)
            probs = torch.softmax(out.float() / self.cfg.temperature, dim=-1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        mean = out if self.cfg.action_head == "tanh" else out.chunk(2, dim=-1)[0]
        return self.from_unit(torch.tanh(mean))


class DTAgent:
    """A Decision Transformer acting in N environments at once, each toward its own target return.

    Args:
        model: a trained :class:`DecisionTransformer`.
        targets: target returns in env units; env ``i`` gets ``targets[i % len(targets)]``.
        mode: ``window`` (re-run the last K steps) or ``cached`` (KV-cached incremental decoding;
            needs banded or dilated attention).
        device: where the model runs.
        seed: seeds action sampling (discrete heads).
        amp_dtype: autocast the forward passes to this dtype (``torch.bfloat16``), or None. The
            agent then acts with a copy of the model whose linear layers are cast once, ahead
            (the casts autocast would repeat at every step; the same numbers).
        compile: ``window`` mode only: act through ``torch.compile`` (inductor, static shapes,
            its ``freezing`` option: on the CPU oneDNN linear layers with bias and ReLU fused in
            bfloat16, MKL's in float32). The agent then acts with a snapshot of the model's
            weights taken here; its first ``act`` for a number of envs compiles (seconds, and a
            C++ compiler on the CPU).
    """

    def __init__(
        self,
        model: DecisionTransformer,
        targets: Sequence[float],
        mode: InferenceMode = "window",
        device: str | torch.device = "cpu",
        seed: int | None = None,
        amp_dtype: torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        if not targets:
            raise UsageError("DTAgent: at least one target return is needed")
        if mode == "cached" and model.cfg.backbone.attention == "dense":
            raise UsageError(
                "--eval.mode cached needs banded or dilated attention (--model.backbone.attention); "
                "with dense attention only the window mode is exact"
            )
        if mode == "cached" and model.cfg.backbone.positions == "learned":
            raise UsageError("--eval.mode cached needs --model.backbone.positions none or rotary")
        if compile and mode != "window":
            raise UsageError(
                "--eval.compile applies to --eval.mode window only (cached decoding writes its "
                "KV cache in place, which the compiled code does not follow)"
            )
        self.model = model.to(device).eval()
        self.net = self.model if amp_dtype is None else _linears_cast(self.model, amp_dtype)
        self.compile = compile
        if compile:
            snapshot = copy.deepcopy(self.net) if self.net is self.model else self.net
            self.net = torch.compile(snapshot, dynamic=False, options={"freezing": True})
        self.targets = [float(t) for t in targets]
        self.mode = mode
        self.device = torch.device(device)
        self.amp_dtype = amp_dtype
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else seed)
        self.num_envs = 0

    def reset(self, num_envs: int) -> None:
        """Empty contexts for ``num_envs`` envs; every env starts at its target return."""
        n, k, dev, info = num_envs, self.model.cfg.context, self.device, self.model.info
        self.num_envs = n
        scale = self.model.cfg.return_scale
        self.target = torch.tensor(
            [self.targets[i % len(self.targets)] / scale for i in range(n)], device=dev
        )
        self.rtg_now = self.target.clone()  # (N,) scaled return-to-go of the current step
        self.t_now = torch.zeros(n, dtype=torch.long, device=dev)
        act_shape = (n,) if info.discrete else (n, info.action_dim)
        act_dtype = torch.long if info.discrete else torch.float32
        if self.mode == "window":
            self.obs = torch.zeros(n, k, *info.obs_shape, device=dev)
            self.actions = torch.zeros(n, k, *act_shape[1:], dtype=act_dtype, device=dev)
            self.rtg = torch.zeros(n, k, device=dev)
            self.timesteps = torch.zeros(n, k, dtype=torch.long, device=dev)
            self.mask = torch.zeros(n, k, dtype=torch.bool, device=dev)
        else:
            self.cache: KVCache = self.model.backbone.new_cache(n, device=dev)
            self.prev_action = torch.zeros(act_shape, dtype=act_dtype, device=dev)
            self.prev_t = torch.zeros(n, dtype=torch.long, device=dev)
            self.has_prev = torch.zeros(n, dtype=torch.bool, device=dev)

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        """``(N, *obs_shape)`` observations -> actions for every env."""
        obs = torch.as_tensor(np.asarray(observations), device=self.device)
        if obs.dtype == torch.float64:
            obs = obs.float()
        with torch.autocast(
            self.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            try:
                out = self._act_window(obs) if self.mode == "window" else self._act_cached(obs)
            except torch._dynamo.exc.BackendCompilerFailed as exc:  # e.g. no C++ compiler
                first = str(exc.inner_exception).strip().splitlines()[0][:200]
                raise SeqrlError(
                    f"--eval.compile: torch.compile failed ({first}); evaluate without it"
                ) from None
        action = self.model.select_action(out.float(), self.generator)
        if self.mode == "window":
            self.actions[:, -1] = action.to(self.actions.dtype)
        else:
            self.prev_action = action.to(self.prev_action.dtype)
            self.prev_t = self.t_now.clone()
            self.has_prev[:] = True
        return action.cpu().numpy()

    def _act_window(self, obs: Tensor) -> Tensor:
        # shift the window left by one step and write the new step at the end
        for name in ("obs", "actions", "rtg", "timesteps", "mask"):
            buf = getattr(self, name)
            buf[:, :-1] = buf[:, 1:].clone()
        self.obs[:, -1] = obs.to(self.obs.dtype)
        self.actions[:, -1] = 0
        self.rtg[:, -1] = self.rtg_now
        self.timesteps[:, -1] = self.t_now
        self.mask[:, -1] = True
        # once every context is full, no token is padding: plain causal attention, no mask (5-10%
        # of an eager step; compiled, the mask stays, so that one graph serves every step)
        mask = None if not self.compile and bool(self.mask.all()) else self.mask
        out = self.net(self.rtg, self.obs, self.actions, self.timesteps, mask, last_only=True)
        return out[:, -1]

    def _act_cached(self, obs: Tensor) -> Tensor:
        m = self.net
        # block [a_{t-1}, R_t, s_t]; a_{t-1} carries the previous step's timestep
        now = m.time_embedding(self.t_now[:, None])
        tokens = torch.cat(
            (
                m.action_tokens(self.prev_action[:, None], m.time_embedding(self.prev_t[:, None])),
                m.return_tokens(self.rtg_now[:, None], now),
                m.obs_tokens(obs[:, None], now),
            ),
            dim=1,
        )  # (N, 3, width)
        padding = torch.stack(
            (self.has_prev, torch.ones_like(self.has_prev), torch.ones_like(self.has_prev)), dim=1
        )
        h = m.backbone(m.embed_norm(tokens), padding_mask=padding, cache=self.cache)
        return m.head(h[:, 2])

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Subtract the rewards from the returns-to-go; restart the contexts of finished envs."""
        r = torch.as_tensor(np.asarray(rewards, dtype=np.float32), device=self.device)
        self.rtg_now = self.rtg_now - r / self.model.cfg.return_scale
        self.t_now = self.t_now + 1
        done = torch.as_tensor(np.asarray(dones, dtype=bool), device=self.device)
        if not bool(done.any()):
            return
        self.rtg_now = torch.where(done, self.target, self.rtg_now)
        self.t_now = torch.where(done, torch.zeros_like(self.t_now), self.t_now)
        if self.mode == "window":
            self.mask[done] = False
        else:
            self.cache.reset(done)
            self.has_prev[done] = False


def _linears_cast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` weights and biases are ``dtype``: under autocast
    to ``dtype`` it computes what ``model`` does, without casting the weights at every call."""
    cast = copy.deepcopy(model)
    for module in cast.modules():
        if isinstance(module, nn.Linear):
            module.to(dtype)
    return cast


def build_model(
    cfg: DTConfig, observation_space: spaces.Space, action_space: spaces.Space
) -> DecisionTransformer:
    """A fresh model for these spaces, with action bounds from ``action_space``."""
    model = DecisionTransformer(cfg, SpaceInfo.of(observation_space, action_space))
    if isinstance(action_space, spaces.Box):
        model.set_normalization(None, None, action_space.low, action_space.high)
    return model


def model_from_checkpoint(
    checkpoint: Checkpoint, device: str | torch.device = "cpu"
) -> DecisionTransformer:
    """Rebuild the model of a ``dt`` checkpoint (config and spaces from the checkpoint)."""
    model_cfg = checkpoint.config.get("model")
    info = checkpoint.extra.get("space_info")
    if model_cfg is None or info is None:
        raise CheckpointError(
            f"{checkpoint.path}: not a Decision Transformer checkpoint (no model config)"
        )
    cfg = from_dict(DTConfig, model_cfg, where=f"{checkpoint.path}: model")
    model = DecisionTransformer(
        cfg, SpaceInfo(tuple(info["obs_shape"]), bool(info["discrete"]), int(info["action_dim"]))
    )
    load_state(
        model, checkpoint.state["model"], what="Decision Transformer weights", path=checkpoint.path
    )
    return model.to(device).eval()


def agent_from_checkpoint(
    checkpoint: Checkpoint, env: Any, device: str = "cpu", arg: str | None = None
) -> DTAgent:
    """The policy loader for ``dt`` checkpoints: the first evaluation target, the configured
    inference mode (and ``eval.compile``) and the training run's precision.

    ``arg`` is the target of a policy spec ``PATH@TARGET`` (e.g. ``run/checkpoints/last.pt@3600``).
    """
    model = model_from_checkpoint(checkpoint, device)
    if arg is not None:
        try:
            target = float(arg)
        except ValueError:
            raise UsageError(
                f"policy '{checkpoint.path}@{arg}': target return '{arg}' is not a number"
            ) from None
        if not np.isfinite(target):
            raise UsageError(f"policy '{checkpoint.path}@{arg}': target return must be finite")
        targets = [target]
    else:
        targets = list(
            checkpoint.extra.get("targets")
            or checkpoint.config.get("eval", {}).get("targets")
            or []
        )
        if not targets:
            raise CheckpointError(f"{checkpoint.path}: no target return stored; pass PATH@TARGET")
    evaluation = checkpoint.config.get("eval", {})
    mode = evaluation.get("mode", "window")
    amp = precision_dtype(checkpoint.config.get("loop", {}).get("precision", "fp32"))
    return DTAgent(
        model,
        targets[:1],
        mode=mode,
        device=device,
        amp_dtype=amp,
        compile=bool(evaluation.get("compile", False)) and mode == "window",
    )
