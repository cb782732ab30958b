"""Rotary position embeddings (Su et al. 2021, "RoFormer", arXiv 2104.09864).

Rotating queries and keys by an angle proportional to their position makes attention scores
depend only on relative positions, so keys can be cached once rotated, and a memory of earlier
segments (as Transformer-XL's relative positions allow) keeps its meaning as the window moves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Rotary(nn.Module):
    """Rotates (B, H, n, head_dim) by positions (B, n) (rotate-half pairing, as GPT-NeoX)."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"Rotary: head dimension {head_dim} is odd")
        self.head_dim, self.base = head_dim, base

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x`` (B, H, n, head_dim) rotated by the angles of ``positions`` (B, n)."""
        # angles in float64 (not a buffer, which .float() would cast) so large positions stay precise
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.float64, device=x.device)
        inv_freq = self.base ** (-exponent / self.head_dim)
        angles = positions.to(torch.float64)[:, None, :, None] * inv_freq  # (B, 1, n, head_dim / 2)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
