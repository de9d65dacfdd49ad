"""The Torch-Pruning peer arm of the quality benchmark (benchmarks/torch_pruning_arm.py): pruning to a budget.

The plugin never imports torch_pruning (an optional dependency of the benchmarks, extra ``bench``).
"""
from pathlib import Path

import pytest
import torch

import srcomp_plugin  # noqa: F401  (the torchvision alias before BasicSR)
from basicsr.archs.edsr_arch import EDSR  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def arm(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / 'benchmarks'))
    import torch_pruning_arm

    return torch_pruning_arm


@pytest.mark.parametrize('target', [9000, 20000])
def test_prune_to_meets_the_parameter_budget_and_keeps_a_working_x2_network(arm, target):
    torch.manual_seed(0)
    net = EDSR(3, 3, num_feat=48, num_block=2, upscale=2, res_scale=1)
    before = sum(p.numel() for p in net.parameters())
    pruned, ratio = arm.prune_to(net, target, torch.rand(1, 3, 16, 16))
    params = sum(p.numel() for p in pruned.parameters())
    assert abs(params - target) <= 0.02 * target and 0.5 < ratio < 0.99
    assert sum(p.numel() for p in net.parameters()) == before  # the input network is left as it was
    trunk, groups = pruned.conv_first.out_channels, pruned.conv_last.in_channels
    # the shuffle groups kept by hand: 4 upsampler rows per channel that conv_last reads
    assert pruned.upsample[0].out_channels == 4 * groups and abs(groups - trunk) <= 4
    assert pruned.upsample[0].in_channels == trunk < 48
    out = pruned(torch.rand(2, 3, 12, 20))
    assert out.shape == (2, 3, 24, 40) and torch.isfinite(out).all()


def test_the_plugin_never_imports_torch_pruning():
    sources = [p for p in (REPO / 'srcomp_plugin').rglob('*.py') if 'torch_pruning' in p.read_text()]
    assert sources == []
