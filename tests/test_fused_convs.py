"""Fused-convolution EDSR inference: BasicSR's output, BasicSR's state dicts, BasicSR's path elsewhere.

The reference is always BasicSR's own ``EDSR`` with the same weights. Weights are redrawn
around their initialisation with nonzero biases, so a wrong fold of the residual scale,
of the output de-normalisation or of a bias shows.
"""
import copy
import pickle

import pytest
import torch

import srcomp_plugin  # noqa: F401  (BasicSR needs the plugin's torchvision alias before import)
from basicsr.archs.edsr_arch import EDSR
from srcomp_plugin.accel import edsr_fused_convs, onednn_fusion
from srcomp_plugin.archs import EDSRmini
from srcomp_plugin.accel.edsr_fused_convs import FusedEDSR, use_eager_convs, use_fused_convs

pytestmark = [
    pytest.mark.usefixtures('one_thread'),
    pytest.mark.skipif(onednn_fusion.CONV_POINTWISE is None,
                       reason="this PyTorch build has no oneDNN fused convolution (EDSR keeps BasicSR's path)"),
]


def randomised(net, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return net.eval()


def pair(num_feat=8, num_block=2, upscale=2, res_scale=2.):
    """(BasicSR EDSR, EDSRmini) with the same random weights."""
    ref = randomised(EDSR(3, 3, num_feat, num_block, upscale, res_scale))
    mini = EDSRmini(num_feat=num_feat, num_block=num_block, upscale=upscale, res_scale=res_scale).eval()
    mini.load_state_dict(ref.state_dict(), strict=True)
    return ref, mini


class CountingOp:
    """Wraps the fused op and counts its calls (both overloads)."""

    def __init__(self, op):
        self.op, self.calls = op, 0

    def __call__(self, *args):
        self.calls += 1
        return self.op(*args)

    def binary(self, *args):
        self.calls += 1
        return self.op.binary(*args)


@pytest.fixture
def counting(monkeypatch):
    op = CountingOp(onednn_fusion.CONV_POINTWISE)
    monkeypatch.setattr(edsr_fused_convs, 'CONV_POINTWISE', op)
    return op


def tolerance(ref):
    return 1e-5 * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize('upscale', [2, 3, 4])
@pytest.mark.parametrize('res_scale', [1., 2.])
@pytest.mark.parametrize('batch, hw', [(1, (12, 20)), (2, (7, 9))])
def test_fused_matches_basicsr(counting, upscale, res_scale, batch, hw):
    ref_net, mini = pair(upscale=upscale, res_scale=res_scale)
    x = torch.rand(batch, 3, *hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = ref_net(x), mini(x)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in mini.modules())
    assert counting.calls == convs  # the fused path ran, every convolution through it
    assert out.shape == ref.shape == (batch, 3, hw[0] * upscale, hw[1] * upscale)
    assert out.is_contiguous()  # an ordinary NCHW tensor for BasicSR's tensor2img and users' .view
    assert (out - ref).abs().max().item() < tolerance(ref)
    # the weights matter: another draw differs far beyond the tolerance (the test can fail)
    other = randomised(EDSR(3, 3, 8, 2, upscale, res_scale), seed=5)
    with torch.no_grad():
        assert (other(x) - ref).abs().max().item() > 100 * tolerance(ref)


@pytest.mark.parametrize('context', ['autograd', 'training', 'hook', 'no_op'])
def test_basicsr_modules_in_channels_last_everywhere_else(counting, monkeypatch, context):
    """Training, autograd, hooks on a conv, or no fused op: BasicSR's modules (channels_last), same output."""
    ref_net, mini = pair()
    x = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(2))
    seen = []
    if context == 'training':
        ref_net.train()
        mini.train()
    elif context == 'hook':
        mini.body[0].conv1.register_forward_hook(lambda module, args, out: seen.append(out))
    elif context == 'no_op':
        monkeypatch.setattr(edsr_fused_convs, 'CONV_POINTWISE', None)
    with torch.set_grad_enabled(context in ('autograd', 'training')):
        out, ref = mini(x), ref_net(x)
    assert counting.calls == 0
    assert out.is_contiguous()
    assert (out - ref).abs().max().item() < tolerance(ref)
    if context == 'hook':
        assert len(seen) == 1 and seen[0].shape == (1, 8, 10, 14)
        assert seen[0].is_contiguous(memory_format=torch.channels_last)
    if context == 'training':  # same gradients as BasicSR's forward
        out.square().mean().backward()
        ref.square().mean().backward()
        for p, q in zip(mini.parameters(), ref_net.parameters()):
            assert (p.grad - q.grad).abs().max().item() < 1e-5 * max(1.0, q.grad.abs().max().item())


def test_switched_off_or_traced_is_basicsr_forward_exactly(counting):
    ref_net, mini = pair()
    x = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = ref_net(x)
        assert torch.equal(use_eager_convs(copy.deepcopy(mini))(x), ref)
        traced = torch.jit.trace(mini, x, check_trace=False)
    assert counting.calls == 0
    assert torch.equal(traced(x), ref)
    assert 'aten::contiguous' not in str(traced.graph) and 'mkldnn' not in str(traced.graph)


def test_mac_counts_see_every_convolution():
    """FlopCounterMode (a dispatch mode) gets BasicSR's ops, so MAC counts are BasicSR's."""
    from torch.utils.flop_counter import FlopCounterMode

    ref_net, mini = pair()
    x = torch.rand(1, 3, 8, 8)
    counts = []
    for net in (ref_net, mini):
        flops = FlopCounterMode(display=False)
        with flops, torch.no_grad():
            net(x)
        counts.append(flops.get_total_flops())
    assert counts[0] == counts[1] > 0


def test_use_fused_convs_on_a_basicsr_teacher_keeps_its_state_dict(counting):
    ref_net = randomised(EDSR(3, 3, 8, 2, 2, 1.))
    teacher = use_fused_convs(copy.deepcopy(ref_net))
    assert type(teacher) is FusedEDSR
    assert teacher.state_dict().keys() == ref_net.state_dict().keys()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        ref, out = ref_net(x), teacher(x)
    assert counting.calls > 0
    assert (out - ref).abs().max().item() < tolerance(ref)
    # channels_last weights (train.teacher_channels_last) go through the same kernels
    with torch.no_grad():
        teacher_cl = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
        out_cl = teacher_cl(x.contiguous(memory_format=torch.channels_last))
    assert (out_cl - ref).abs().max().item() < tolerance(ref)
    # and back: BasicSR's forward, a pickle round trip keeps the class
    assert torch.equal(use_eager_convs(pickle.loads(pickle.dumps(teacher)))(x), ref_net(x))
    assert type(use_fused_convs(EDSRmini())) is EDSRmini  # subclasses are left as they are


def test_edsrmini_option_switch():
    from basicsr.archs import build_network

    assert build_network({'type': 'EDSRmini'}).fused_convs is True
    assert build_network({'type': 'EDSRmini', 'fused_convs': False}).fused_convs is False


def test_the_test_pipeline_runs_basicsr_edsr_fused(tmp_path):
    """``model_type: SRModel`` with ``type: EDSR`` (the teachers' test files): the entry points'
    SRModel runs it on the fused path when testing, with BasicSR's outputs."""
    from srcomp_plugin.models.safe_sr_model import SafeSRModel

    network_g = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    opt = {'num_gpu': 0, 'dist': False, 'is_train': False, 'network_g': network_g,
           'path': {'models': str(tmp_path), 'pretrain_network_g': None, 'strict_load_g': True}}
    net = SafeSRModel(opt).net_g
    assert isinstance(net, FusedEDSR) and net.fused_convs
    reference = EDSR(3, 3, num_feat=8, num_block=1, upscale=2)
    reference.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert (net(x) - reference(x)).abs().max().item() < 1e-5
