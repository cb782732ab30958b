"""Observation encoders: output shapes over leading dimensions, uint8 pixels, gradients."""

import pytest
import torch
from seqrl.backbone import MLPEncoder, NatureCNN, ResNetEncoder


def test_mlp_encoder_keeps_leading_dims():
    enc = MLPEncoder(11, 32, hidden=(16,))
    assert enc(torch.randn(2, 5, 11)).shape == (2, 5, 32)


@pytest.mark.parametrize("cls", [NatureCNN, ResNetEncoder])
def test_image_encoders(cls):
    enc = cls(obs_shape=(4, 84, 84), out_dim=24)
    frames = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    out = enc(frames)
    assert out.shape == (2, 3, 24)
    # uint8 pixels are scaled to [0, 1]: the same as passing the floats
    torch.testing.assert_close(out, enc(frames.float() / 255.0))
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(ValueError, match="expected"):
        enc(torch.zeros(1, 3, 64, 64))


def test_nature_cnn_layout():
    enc = NatureCNN((4, 84, 84), 512)
    convs = [m for m in enc.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 8, 4),
        (64, 4, 2),
        (64, 3, 1),
    ]
    assert enc.head[0].in_features == 64 * 7 * 7


def test_cpu_channels_last_changes_the_layout_not_the_values() -> None:
    from seqrl.backbone.encoders import cpu_channels_last

    x = torch.randn(2, 3, 8, 8)
    y = cpu_channels_last(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(
        memory_format=torch.channels_last
    )
    assert torch.equal(x, y)
    flat = torch.randn(4, 5)
    assert cpu_channels_last(flat) is flat  # not an image batch: unchanged


def test_cpu_channels_last_gives_the_default_layout_under_cpu_autocast() -> None:
    """bfloat16 convolutions on the CPU are faster in torch's default layout: frames moved from
    (H, W, C) observations (channels-last in memory) are made contiguous there."""
    from seqrl.backbone.encoders import cpu_channels_last

    x = torch.rand(2, 8, 8, 3).movedim(-1, -3)  # (2, 3, 8, 8), channels-last in memory
    assert not x.is_contiguous()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = cpu_channels_last(x)
    assert y.is_contiguous() and torch.equal(y, x)
    assert cpu_channels_last(x).is_contiguous(memory_format=torch.channels_last)
