"""The fast CPU dropout: its distribution, scaling, gradients, seeding, and attention through it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from seqrl.backbone import Dropout, Transformer, TransformerConfig
from seqrl.backbone.dropout import attention, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_keeps_each_element_with_probability_one_minus_p(p: float) -> None:
    torch.manual_seed(0)
    mask = keep_mask((1001, 999), p)  # n = 3 mod 4: the last word is partly used
    n = mask.numel()
    kept = mask.float().mean().item()
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(kept - (1 - p)) < 5 * sigma
    # the four 16-bit quarters of each 64-bit word keep at the same rate, independently
    quads = mask.flatten()[: n - n % 4].view(-1, 4).float()
    rates = quads.mean(0)
    assert torch.all((rates - (1 - p)).abs() < 5 * sigma * 2)
    for i, j in ((0, 1), (1, 2), (2, 3), (0, 3)):
        both = (quads[:, i] * quads[:, j]).mean().item()
        assert abs(both - (1 - p) ** 2) < 5 * (1 / len(quads)) ** 0.5


def test_keep_mask_resolves_p_to_2_to_the_minus_16() -> None:
    """p is drawn as the nearest multiple of 2^-16: the threshold sits where it should."""
    from seqrl.backbone import dropout as module

    torch.manual_seed(0)
    words = torch.randint(-(2**63), 2**63 - 1, (1000,), dtype=torch.int64)
    torch.manual_seed(0)
    mask = module.keep_mask((4000,), 0.1)
    bits = words.view(torch.int16)
    assert torch.equal(mask, bits >= -(2**15) + 6554)


def test_dropout_scales_kept_elements_and_follows_the_seed() -> None:
    x = torch.rand(64, 60, 128) + 1.0
    torch.manual_seed(3)
    y = dropout(x, 0.25)
    zeroed = y == 0
    assert torch.allclose(y[~zeroed], x[~zeroed] / 0.75)
    assert 0.2 < zeroed.float().mean().item() < 0.3
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.25), y)
    assert not torch.equal(dropout(x, 0.25), y)  # the generator moved on
    assert torch.equal(dropout(x, 0.25, training=False), x)
    assert torch.equal(dropout(x, 0.0), x)


def test_dropout_gradient_is_the_mask_scaled() -> None:
    x = torch.randn(300, 7, requires_grad=True)
    torch.manual_seed(1)
    y = dropout(x, 0.3)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad, kept.float() / 0.7)


def test_dropout_module_is_a_drop_in_for_nn_dropout() -> None:
    module = Dropout(0.2)
    assert module.state_dict() == {} and "p=0.2" in repr(module)
    x = torch.ones(10_000)
    module.eval()
    assert torch.equal(module(x), x)
    module.train()
    out = module(x)
    assert set(out.unique().tolist()) <= {0.0, 1.25}
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)


@pytest.mark.parametrize("causal", [True, False])
def test_attention_with_cpu_dropout_is_sdpa_with_those_weights_dropped(causal: bool) -> None:
    """Without dropout it is SDPA; with it, the weights of SDPA's math dropped by the mask that
    the same seed draws (so its expectation is SDPA's output)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = torch.rand(2, 1, 5, 5, generator=g) > 0.3
    mask |= torch.eye(5, dtype=torch.bool)
    kwargs = {"is_causal": True} if causal else {"attn_mask": mask}
    reference = F.scaled_dot_product_attention(q, k, v, **kwargs)
    assert torch.allclose(attention(q, k, v, **kwargs), reference, atol=1e-6)
    torch.manual_seed(5)
    dropped = attention(q, k, v, dropout_p=0.4, **kwargs)
    scores = q @ k.transpose(-1, -2) / 8**0.5
    allowed = torch.ones(5, 5, dtype=torch.bool).tril() if causal else mask
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    torch.manual_seed(5)
    assert torch.allclose(dropped, dropout(weights, 0.4) @ v, atol=1e-6)
    means = torch.stack([attention(q, k, v, dropout_p=0.4, **kwargs) for _ in range(2000)]).mean(0)
    assert torch.allclose(means, reference, atol=0.1)


def test_transformer_training_uses_the_fast_dropout_and_eval_is_deterministic() -> None:
    cfg = TransformerConfig(width=32, depth=2, heads=2, dropout=0.1, attn_dropout=0.1)
    model = Transformer(cfg)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    x = torch.randn(4, 12, 32)
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(0)
    assert torch.equal(model(x), a)
    assert not torch.equal(model(x), a)
    model.eval()
    assert torch.equal(model(x), model(x))


def test_bfloat16_dropout_scales_like_torch() -> None:
    """Kept bfloat16 elements are scaled as torch's dropout scales them: by 1 / (1 - p) in the
    input's dtype (1.9922 x bf16(1 / 0.9) = 2.2031, where 1.9922 / 0.9 rounds to 2.2188)."""
    x = torch.full((1000,), 1.9922, dtype=torch.bfloat16)
    torch.manual_seed(0)
    ours, theirs = dropout(x, 0.1), F.dropout(x, 0.1, True)
    assert ours.dtype == torch.bfloat16
    assert set(ours.unique().tolist()) == set(theirs.unique().tolist()) == {0.0, 2.203125}
