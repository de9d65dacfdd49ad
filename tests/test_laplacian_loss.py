"""MultiLapLoss / LaplacianLoss against a plain NumPy reference written from docs/method.md.

The reference builds both pyramids separately (the loss builds one, on the difference),
blurs with explicit loops over the 5x5 taps and works in float64.
"""
import numpy as np
import pytest
import torch

import srcomp_plugin  # noqa: F401  (fills the registries)
from basicsr.losses import build_loss

K1 = np.array([1., 4., 6., 4., 1.])
KERNEL = np.outer(K1, K1) / 256.


def ref_blur(img, gain=1.0):
    """img: C x H x W; depthwise 5x5 binomial blur, reflect padding 2, explicit taps."""
    padded = np.pad(img, ((0, 0), (2, 2), (2, 2)), mode='reflect')
    h, w = img.shape[1:]
    out = np.zeros_like(img)
    for dy in range(5):
        for dx in range(5):
            out += gain * KERNEL[dy, dx] * padded[:, dy:dy + h, dx:dx + w]
    return out


def ref_reduce(img):
    c, h, w = img.shape
    return img.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def ref_expand(img):
    c, h, w = img.shape
    up = np.zeros((c, 2 * h, 2 * w))
    up[:, ::2, ::2] = img
    return ref_blur(up, gain=4.0)


def ref_pyramid(img, levels=5):
    pyr, current = [], img
    for _ in range(levels - 1):
        down = ref_reduce(ref_blur(current))
        pyr.append(current - ref_expand(down))
        current = down
    pyr.append(current)
    return pyr


def ref_lap(a, b, levels=5):
    """a, b: N x C x H x W float64 arrays."""
    total = 0.0
    pa = [ref_pyramid(x, levels) for x in a]
    pb = [ref_pyramid(x, levels) for x in b]
    for i in range(levels):
        diffs = np.stack([np.abs(pa[n][i] - pb[n][i]) for n in range(len(a))])
        total += 2**i * diffs.mean()
    return total


def ref_multilap(a, b, levels=5):
    high_a = np.stack([x - ref_blur(x) for x in a])
    high_b = np.stack([x - ref_blur(x) for x in b])
    return ref_lap(high_a, high_b, levels) + ref_lap(a, b, levels)


@pytest.mark.parametrize('loss_type, ref', [('MultiLapLoss', ref_multilap), ('LaplacianLoss', ref_lap)])
@pytest.mark.parametrize('shape', [(2, 3, 32, 32), (1, 1, 48, 64), (2, 4, 64, 32)])
def test_matches_reference_and_gradients_are_finite(loss_type, ref, shape):
    rng = np.random.default_rng(sum(shape))
    a, b = rng.random(shape), rng.random(shape)
    weight = 0.7
    loss = build_loss({'type': loss_type, 'loss_weight': weight})
    pred = torch.tensor(a, dtype=torch.float32, requires_grad=True)
    value = loss(pred, torch.tensor(b, dtype=torch.float32))
    expected = weight * ref(a, b)
    assert abs(value.item() - expected) < 1e-5, (value.item(), expected)
    value.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_reference_level_count_matters():
    """Guard against a too-forgiving reference: the coarsest level's weight 16 is visible."""
    rng = np.random.default_rng(0)
    a, b = rng.random((1, 3, 32, 32)), rng.random((1, 3, 32, 32))
    assert abs(ref_lap(a, b, 5) - ref_lap(a, b, 4)) > 1e-3
    loss4 = build_loss({'type': 'LaplacianLoss', 'loss_weight': 1.0, 'num_levels': 4})
    value = loss4(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert abs(value.item() - ref_lap(a, b, 4)) < 1e-5


@pytest.mark.parametrize('loss_type', ['MultiLapLoss', 'LaplacianLoss'])
def test_zero_when_equal_and_positive_otherwise(loss_type):
    loss = build_loss({'type': loss_type, 'loss_weight': 1.0})
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x.clone()).item() == 0.0
    assert loss(x, x + 0.01 * torch.randn_like(x)).item() > 0


@pytest.mark.parametrize('size', [(40, 32), (32, 24), (16, 16)])
def test_unsupported_size_names_the_size_needed(size):
    loss = build_loss({'type': 'MultiLapLoss', 'loss_weight': 1.0})
    x = torch.rand(1, 3, *size)
    with pytest.raises(ValueError, match=r'multiples of 16 and at least 32; got ' + f'{size[0]}x{size[1]}'):
        loss(x, x)


def test_shape_mismatch_is_reported():
    loss = build_loss({'type': 'MultiLapLoss', 'loss_weight': 1.0})
    with pytest.raises(ValueError, match='same shape'):
        loss(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 64, 64))
