"""EDSRmini and SwinIRmini: registered, the paper's shapes, and drop-in for BasicSR checkpoints.

The checkpoints are written and read by BasicSR's own ``BaseModel.save_network`` /
``SRModel`` (``path.pretrain_network_g``, ``strict_load_g: true``), the path a user's
option file takes.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

import srcomp_plugin  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from basicsr.archs.edsr_arch import EDSR
from basicsr.archs.swinir_arch import SwinIR
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import ARCH_REGISTRY
from srcomp_plugin.archs import EDSRmini, SwinIRmini

# docs/method.md, "The models": exact parameter counts of the release's students.
PAPER_PARAMS = {
    'EDSRmini': {2: 49_603, 3: 61_203, 4: 58_883},
    'SwinIRmini': {2: 98_868, 3: 102_123, 4: 106_680},
}

# The same shapes spelled as BasicSR's own archs (docs/method.md table).
BASICSR_SAME_SHAPE = {
    'EDSRmini': dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=8, res_scale=2,
                     img_range=255.),
    'SwinIRmini': dict(type='SwinIR', in_chans=3, img_size=64, window_size=8, img_range=1., embed_dim=24,
                       depths=[4, 4, 4], num_heads=[6, 6, 6], mlp_ratio=2, upsampler='pixelshuffledirect',
                       resi_connection='1conv'),
}


def _n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('name, cls, parent', [('EDSRmini', EDSRmini, EDSR), ('SwinIRmini', SwinIRmini, SwinIR)])
def test_registered_and_built_by_name(name, cls, parent):
    assert name in ARCH_REGISTRY
    net = build_network({'type': name})
    assert type(net) is cls
    assert isinstance(net, parent)  # a preset of BasicSR's arch, not a copy


def test_edsrmini_defaults_are_the_paper_config():
    net = EDSRmini()
    assert net.conv_first.out_channels == 16
    assert len(net.body) == 8
    assert all(block.res_scale == 2 for block in net.body)
    assert net.img_range == 255.
    assert net.upscale == 2


def test_swinirmini_defaults_are_the_paper_config():
    net = SwinIRmini()
    assert net.embed_dim == 24
    assert [len(layer.residual_group.blocks) for layer in net.layers] == [4, 4, 4]
    assert [layer.residual_group.blocks[0].attn.num_heads for layer in net.layers] == [6, 6, 6]
    assert net.window_size == 8
    assert net.upsampler == 'pixelshuffledirect'
    assert net.img_range == 1.
    assert net.layers[0].residual_group.blocks[0].mlp.fc1.out_features == 48  # mlp_ratio 2


@pytest.mark.parametrize('name', sorted(PAPER_PARAMS))
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_param_counts_match_the_paper_and_basicsr(name, scale):
    mini = build_network({'type': name, 'upscale': scale})
    same_shape = build_network(dict(BASICSR_SAME_SHAPE[name], upscale=scale))
    assert _n_params(mini) == PAPER_PARAMS[name][scale]
    assert _n_params(same_shape) == PAPER_PARAMS[name][scale]


def _model_opt(tmp_path, network_g, pretrain=None, param_key='params'):
    return {
        'num_gpu': 0, 'dist': False, 'is_train': False, 'network_g': network_g,
        'path': {'models': str(tmp_path), 'pretrain_network_g': pretrain, 'strict_load_g': True,
                 'param_key_g': param_key},
    }


def _same(out, ref, exact):
    """Exactly equal, or (the fused attention / convolution paths) equal to float32 rounding."""
    if exact:
        assert torch.equal(out, ref)
    else:
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


# (arch, extra kwargs, bit-exact?): the default fused attention / convolutions sum in another
# order than BasicSR's code; with fused_attention / fused_convs False it is BasicSR's code exactly.
LOAD_CASES = [('EDSRmini', {'fused_convs': False}, True), ('EDSRmini', {}, False),
              ('SwinIRmini', {'fused_attention': False}, True), ('SwinIRmini', {}, False)]


@pytest.mark.parametrize('name, extra, exact', LOAD_CASES,
                         ids=['EDSRmini-eager', 'EDSRmini-fused', 'SwinIRmini-eager', 'SwinIRmini-fused'])
@pytest.mark.parametrize('scale', [2, 3])
def test_loads_a_basicsr_checkpoint_strictly_and_matches_its_output(tmp_path, name, extra, exact, scale):
    torch.manual_seed(scale)
    teacher = SRModel(_model_opt(tmp_path, dict(BASICSR_SAME_SHAPE[name], upscale=scale)))
    official = teacher.net_g.eval()
    ema = copy.deepcopy(official)
    with torch.no_grad():  # a distinct params_ema, so the test sees which key was loaded
        for p in ema.parameters():
            p.add_(0.01 * torch.randn_like(p))
    teacher.save_network([official, ema], 'net_g', -1, param_key=['params', 'params_ema'])
    ckpt = tmp_path / 'net_g_latest.pth'

    x = torch.rand(1, 3, 24, 32)  # window multiple: SwinIRmini's padding is a no-op here
    for key, reference, other in (('params', official, ema), ('params_ema', ema, official)):
        network_g = dict({'type': name, 'upscale': scale}, **extra)
        student = SRModel(_model_opt(tmp_path, network_g, str(ckpt), key)).net_g.eval()
        assert type(student).__name__ == name
        with torch.no_grad():
            out = student(x)
            _same(out, reference(x), exact)
            assert not torch.allclose(out, other(x), atol=1e-3)  # the key that was asked for


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    """strict loading must catch a wrong shape (guards the test above against a no-op load)."""
    model = SRModel(_model_opt(tmp_path, dict(BASICSR_SAME_SHAPE['EDSRmini'], num_block=4, upscale=2)))
    model.save_network(model.net_g, 'net_g', -1)
    with pytest.raises(RuntimeError):
        SRModel(_model_opt(tmp_path, {'type': 'EDSRmini'}, str(tmp_path / 'net_g_latest.pth')))


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('scale', [2, 3])
@pytest.mark.parametrize('hw', [(13, 21), (9, 8), (5, 3)])
def test_swinirmini_accepts_odd_sizes(scale, hw, fused):
    torch.manual_seed(0)
    net = SwinIRmini(upscale=scale, fused_attention=fused).eval()
    x = torch.rand(1, 3, *hw)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (1, 3, hw[0] * scale, hw[1] * scale)
    assert torch.isfinite(out).all()
    # Same as BasicSR's SwinIR on the padded input (reflect; replicate when the image is
    # smaller than its pad), cropped.
    base = build_network(dict(BASICSR_SAME_SHAPE['SwinIRmini'], upscale=scale)).eval()
    base.load_state_dict(net.state_dict())
    ph, pw = (-hw[0]) % 8, (-hw[1]) % 8
    mode = 'reflect' if ph < hw[0] and pw < hw[1] else 'replicate'
    with torch.no_grad():
        ref = base(F.pad(x, (0, pw, 0, ph), mode=mode))[..., :hw[0] * scale, :hw[1] * scale]
    _same(out, ref, exact=not fused)
