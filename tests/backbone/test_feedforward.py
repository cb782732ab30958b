"""Feed-forward variants: shapes, gating, and GLU parameter counts matching the MLP's (Shazeer 2020)."""

import pytest
import torch
from seqrl.backbone import FeedForward, hidden_size

GATED = ["glu", "bilinear", "reglu", "geglu", "swiglu"]


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kind", GATED)
@pytest.mark.parametrize("width", [64, 128, 512])
def test_gated_variants_match_the_mlp_parameter_count(kind, width):
    mlp = _params(FeedForward(width, "mlp"))
    gated = _params(FeedForward(width, kind))
    assert hidden_size(kind, width, 4.0) % 8 == 0
    assert abs(gated - mlp) / mlp < 0.02


@pytest.mark.parametrize("kind", ["mlp", *GATED])
def test_shapes(kind):
    ff = FeedForward(16, kind, mult=2.0)
    assert ff(torch.randn(3, 5, 16)).shape == (3, 5, 16)


def test_swiglu_is_silu_gate_times_value():
    ff = FeedForward(8, "swiglu")
    x = torch.randn(4, 8)
    gate, value = ff.inp(x).chunk(2, dim=-1)
    expected = ff.out(torch.nn.functional.silu(gate) * value)
    torch.testing.assert_close(ff(x), expected)


def test_mlp_activation_choice():
    relu = FeedForward(8, "mlp", activation="relu")
    x = torch.randn(4, 8)
    torch.testing.assert_close(relu(x), relu.out(torch.relu(relu.inp(x))))
    silu = FeedForward(8, "mlp", activation="silu")
    torch.testing.assert_close(silu(x), silu.out(torch.nn.functional.silu(silu.inp(x))))
    with pytest.raises(ValueError):
        FeedForward(8, "mlp", activation="tanh")
