"""Fused SwinIR window attention: BasicSR's output and gradients, BasicSR's state dicts.

The reference is always BasicSR's own eager ``SwinIR`` with the same weights. Weights are
randomised well beyond the initialisation (relative position bias tables included), so
the bias and the shift mask change the attention noticeably and a mistake in either shows.
"""
import copy
import io

import pytest
import torch

import srcomp_plugin  # noqa: F401  (BasicSR needs the plugin's torchvision alias before import)
from basicsr.archs.swinir_arch import SwinIR, SwinTransformerBlock, WindowAttention
from srcomp_plugin.archs import SwinIRmini
from srcomp_plugin.accel.swinir_fast_attention import (FusedSwinTransformerBlock, FusedWindowAttention,
                                                       use_eager_attention, use_fused_attention,
                                                       uses_fused_attention, window_geometry)

TOL = 1e-4
TINY = dict(upscale=2, in_chans=3, img_size=16, window_size=4, img_range=1., embed_dim=12, depths=[2, 2],
            num_heads=[3, 3], mlp_ratio=2., upsampler='pixelshuffledirect', resi_connection='1conv',
            drop_path_rate=0.)


pytestmark = pytest.mark.usefixtures('one_thread')


def randomised(net, seed=0):
    """``net`` with every parameter redrawn at a scale where attention is far from uniform."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            std = 1.0 if 'relative_position_bias_table' in name else 0.3
            p.copy_(torch.randn(p.shape, generator=gen) * std + (1.0 if name.endswith('norm1.weight') else 0.))
    return net


def eager_and_fused(**overrides):
    kwargs = dict(TINY, **overrides)
    eager = randomised(SwinIR(**kwargs)).eval()
    fused = use_fused_attention(copy.deepcopy(eager))
    return eager, fused


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize('hw', [(16, 16), (12, 20), (8, 8), (4, 4), (24, 12)])
@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('autograd', [False, True])
def test_fused_matches_basicsr(hw, batch, autograd):
    # (16, 16) is img_size (BasicSR uses its attn_mask buffer), the others rebuild the mask;
    # (4, 4) is one window per image (every shifted window is a border window).
    # Without autograd the block runs its inference path (window-order stream, fused
    # linears); with autograd in eval mode the general path (SDPA off, explicit attention).
    eager, fused = eager_and_fused()
    x = torch.rand(batch, 3, *hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = eager(x)
    with torch.set_grad_enabled(autograd):
        out = fused(x).detach()
    assert out.shape == ref.shape
    assert max_diff(out, ref) < TOL
    # the mask matters: without it the output is different (so the test can fail)
    assert max_diff(ref, randomised(SwinIR(**TINY), seed=5).eval()(x)) > 1e-2


def test_plain_module_path_matches_without_onednn_fusion(monkeypatch):
    """Builds without oneDNN's fused linear fall back to the plain modules, same output."""
    from srcomp_plugin.accel import swinir_fast_attention

    monkeypatch.setattr(swinir_fast_attention, 'LINEAR_POINTWISE', None)
    eager, fused = eager_and_fused()
    x = torch.rand(2, 3, 12, 20, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert max_diff(fused(x), eager(x)) < TOL


def test_hooks_on_linear_layers_still_fire_at_inference():
    """A forward hook on a linear (MAC counters, feature taps) sees every call, fused path or not."""
    _, fused = eager_and_fused()
    calls = []
    block = next(m for m in fused.modules() if isinstance(m, FusedSwinTransformerBlock))
    handle = block.mlp.fc1.register_forward_hook(lambda module, args, out: calls.append(out.shape))
    with torch.no_grad():
        fused(torch.rand(1, 3, 8, 12))
    handle.remove()
    assert len(calls) == 1 and calls[0][-1] == 24  # fc1: 12 channels -> mlp_ratio 2 x 12


def test_shift_mask_and_bias_both_matter():
    """Zeroing the bias table or dropping the shift mask must change the output beyond TOL."""
    eager, fused = eager_and_fused()
    x = torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = fused(x)
        no_bias = copy.deepcopy(fused)
        for m in no_bias.modules():
            if isinstance(m, WindowAttention):
                m.relative_position_bias_table.zero_()
        assert max_diff(no_bias(x), ref) > 1e-3
        no_mask = copy.deepcopy(eager)
        for m in no_mask.modules():
            if isinstance(m, SwinTransformerBlock) and m.shift_size:
                m.calculate_mask = lambda size, m=m: torch.zeros_like(SwinTransformerBlock.calculate_mask(m, size))
                m.input_resolution = (-1, -1)
        assert max_diff(no_mask(x), ref) > 1e-3


def test_window_larger_than_image_size():
    # img_size <= window: BasicSR shrinks the window to the image and drops the shift.
    eager, fused = eager_and_fused(img_size=4, window_size=8)
    x = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        assert max_diff(fused(x), eager(x)) < TOL


def test_swinirmini_default_is_fused_and_matches_basicsr_on_any_size():
    net = randomised(SwinIRmini(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=(2, 2),
                                num_heads=(3, 3))).eval()
    assert uses_fused_attention(net)
    eager = SwinIRmini(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=(2, 2), num_heads=(3, 3),
                       fused_attention=False).eval()
    assert not uses_fused_attention(eager)
    eager.load_state_dict(net.state_dict(), strict=True)
    for hw in [(13, 22), (3, 5), (16, 16), (9, 4)]:  # not multiples of the window: SwinIRmini pads
        x = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(sum(hw)))
        with torch.no_grad():
            ref, out = eager(x), net(x)
        assert out.shape == (2, 3, 2 * hw[0], 2 * hw[1])
        assert max_diff(out, ref) < TOL


def test_paper_sized_swinirmini_matches_basicsr():
    """The real SwinIRmini shape (24 channels, 6 heads of 4, window 8), shifted border windows included."""
    fused = randomised(SwinIRmini()).eval()
    eager = use_eager_attention(copy.deepcopy(fused))
    x = torch.rand(1, 3, 20, 27, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert max_diff(fused(x), eager(x)) < TOL


def test_gradients_match_basicsr_in_training_mode():
    eager, fused = eager_and_fused()
    eager.train()
    fused.train()
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(4))
    target = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(5))
    for net in (eager, fused):
        torch.nn.functional.l1_loss(net(x), target).backward()
    grads = dict(eager.named_parameters())
    checked = 0
    for name, p in fused.named_parameters():
        ref = grads[name].grad
        assert p.grad is not None, name
        scale = ref.abs().max().item() + 1e-12
        assert max_diff(p.grad, ref) / scale < 1e-3, name
        checked += 'relative_position_bias_table' in name
    assert checked == 4  # every block's bias table gets the right gradient


def test_geometry_built_in_inference_mode_works_with_autograd_later():
    _, fused = eager_and_fused()
    x = torch.rand(1, 3, 20, 12)
    window_geometry.cache_clear()
    with torch.inference_mode():
        fused(x)
    fused.train()
    fused(x).mean().backward()  # would fail if cached indices were inference tensors
    assert fused.conv_first.weight.grad is not None


def test_border_mask_is_basicsr_calculate_mask():
    eager, _ = eager_and_fused()
    block = next(m for m in eager.modules() if isinstance(m, SwinTransformerBlock) and m.shift_size)
    for h, w in [(12, 20), (16, 16), (4, 8)]:
        mask = block.calculate_mask((h, w))
        nonzero = (mask != 0).flatten(1).any(dim=1)
        geometry = window_geometry(3, h, w, block.window_size, block.shift_size, torch.device('cpu'))
        assert torch.equal(geometry.border_mask, mask[nonzero])
        assert geometry.num_interior == 3 * int((~nonzero).sum())
        n = h * w * 3
        assert torch.equal(torch.sort(geometry.order).values, torch.arange(n))
        assert torch.equal(geometry.order[geometry.inverse], torch.arange(n))


def test_window_attention_keeps_basicsr_call_contract():
    gen = torch.Generator().manual_seed(6)
    attn = WindowAttention(12, (4, 4), 3)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_(generator=gen)
    fused = copy.deepcopy(attn)
    fused.__class__ = FusedWindowAttention
    x = torch.randn(2 * 6, 16, 12, generator=gen)
    mask = torch.where(torch.rand(6, 16, 16, generator=gen) > 0.5, -100., 0.)
    with torch.no_grad():
        assert max_diff(fused(x, mask), attn(x, mask)) < TOL
        assert max_diff(fused(x), attn(x)) < TOL


def test_state_dict_unchanged_and_interchangeable():
    eager, fused = eager_and_fused()
    sd_eager, sd_fused = eager.state_dict(), fused.state_dict()
    assert list(sd_eager) == list(sd_fused)
    assert all(torch.equal(sd_eager[k], sd_fused[k]) for k in sd_eager)
    assert any(k.endswith('attn_mask') for k in sd_fused) and any(k.endswith('relative_position_index')
                                                                  for k in sd_fused)
    # SwinIRmini (fused by default) and BasicSR's SwinIR load each other's checkpoints strictly.
    mini = SwinIRmini(upscale=2, img_size=16, window_size=4, embed_dim=12, depths=(2, 2), num_heads=(3, 3))
    mini.load_state_dict(sd_eager, strict=True)
    SwinIR(**TINY).load_state_dict(mini.state_dict(), strict=True)


def test_convert_round_trip_and_pickle():
    eager, _ = eager_and_fused()
    net = use_fused_attention(copy.deepcopy(eager))
    assert all(type(m) is FusedSwinTransformerBlock for m in net.modules() if isinstance(m, SwinTransformerBlock))
    buffer = io.BytesIO()
    torch.save(net, buffer)  # whole-module pickles (srcomp profile's memory probe) still work
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert uses_fused_attention(loaded)
    use_eager_attention(net)
    assert not uses_fused_attention(net)
    assert all(type(m) is WindowAttention for m in net.modules() if isinstance(m, WindowAttention))


def test_unpadded_size_error_names_the_window():
    _, fused = eager_and_fused()
    with pytest.raises(ValueError, match=r'multiple of the window \(4\).*SwinIRmini'):
        fused(torch.rand(1, 3, 10, 12))
