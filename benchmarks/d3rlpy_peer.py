"""d3rlpy 2.8.1's DecisionTransformer at the DT paper's gym configuration, defined once.

Imported by the d3rlpy side of ``benchmarks/dt.py`` and ``examples/dt_vs_d3rlpy.py``, which run in
d3rlpy's own environment (``make peers``): it needs only d3rlpy, which the caller passes in.
"""

from __future__ import annotations

from typing import Any


def paper_gym_dt(d3rlpy: Any, *, warmup_steps: int, observation_scaler: Any) -> Any:
    """The config as d3rlpy's ``reproductions/offline/decision_transformer.py`` builds the paper's
    gym model: context 20, embed 128, 3 layers, 1 head, ReLU, dropout 0.1, batch 64, AdamW lr 1e-4
    weight decay 1e-4, clip 0.25, linear warm-up, returns x 0.001, max timestep 1000."""
    return d3rlpy.algos.DecisionTransformerConfig(
        batch_size=64,
        learning_rate=1e-4,
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=1e-4,
            clip_grad_norm=0.25,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(
                warmup_steps=max(warmup_steps, 1)
            ),
        ),
        encoder_factory=d3rlpy.models.VectorEncoderFactory([128], exclude_last_activation=True),
        observation_scaler=observation_scaler,
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(0.001),
        position_encoding_type=d3rlpy.PositionEncodingType.SIMPLE,
        context_size=20,
        num_heads=1,
        num_layers=3,
        max_timestep=1000,
        activation_type="relu",
        attn_dropout=0.1,
        resid_dropout=0.1,
        embed_dropout=0.1,
    )
