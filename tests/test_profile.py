"""``srcomp profile`` and the complexity API: the method.md figures, both MAC conventions,
the SwinIR padding, latency, and the command line (peak memory: test_peak_memory_benchmark.py)."""
import functools
import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import srcomp_plugin  # noqa: F401
from basicsr.archs import build_network
from helpers import run_module, write_opt
from srcomp_plugin import cli
from srcomp_plugin.measure import ProfileError, count_macs, mac_counts, measure_latency, profile_network
from srcomp_plugin.measure.profile_cli import NO_MEMORY_NOTE, build_parser, main as profile_main

EDSR_TEACHER = dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, res_scale=1, img_range=255.)
SWINIR_LIGHT = dict(type='SwinIR', in_chans=3, img_size=64, window_size=8, img_range=1., embed_dim=60,
                    depths=[6, 6, 6, 6], num_heads=[6, 6, 6, 6], mlp_ratio=2, upsampler='pixelshuffledirect',
                    resi_connection='1conv')

# method.md, "Teachers and students": (network_g, scale, params, MACs at a 1280x720 output or None).
METHOD_MD = [
    (EDSR_TEACHER, 2, 1_369_859, 316.25e9),
    (EDSR_TEACHER, 3, 1_554_499, 160.06e9),
    (EDSR_TEACHER, 4, 1_517_571, 114.23e9),
    ({'type': 'EDSRmini'}, 2, 49_603, 11.65e9),
    ({'type': 'EDSRmini'}, 3, 61_203, 6.57e9),
    ({'type': 'EDSRmini'}, 4, 58_883, 5.33e9),
    (SWINIR_LIGHT, 2, 910_152, 240.91e9),
    (SWINIR_LIGHT, 3, 918_267, None),
    (SWINIR_LIGHT, 4, 929_628, None),
    ({'type': 'SwinIRmini'}, 2, 98_868, 26.76e9),
    ({'type': 'SwinIRmini'}, 3, 102_123, None),
    ({'type': 'SwinIRmini'}, 4, 106_680, None),
]


@functools.lru_cache(maxsize=None)
def _profiled(network_g_json, scale):
    """profile_network without the slow parts, once per (network, scale) for this file."""
    return profile_network(json.loads(network_g_json), scale=scale, latency=False)


def _profile(network_g, scale):
    return _profiled(json.dumps(network_g, sort_keys=True), scale)


@pytest.mark.parametrize('network_g, scale, params, macs', METHOD_MD,
                         ids=[f'{n["type"]}-x{s}' for n, s, _, _ in METHOD_MD])
def test_profile_reproduces_method_md(network_g, scale, params, macs):
    result = _profile(network_g, scale)
    assert result['scale'] == scale
    assert result['params'] == params
    if macs is not None:
        assert result['macs'] == pytest.approx(macs, rel=0.005)


def _attention_macs(padded_hw, embed_dim, depths, window=8):
    """q @ k^T and attn @ v of every window of every block: 2 x N^2 x C per window."""
    windows = (padded_hw[0] // window) * (padded_hw[1] // window)
    return sum(depths) * windows * 2 * (window * window)**2 * embed_dim


@pytest.mark.parametrize('network_g, embed_dim, depths', [(SWINIR_LIGHT, 60, [6, 6, 6, 6]),
                                                          ({'type': 'SwinIRmini'}, 24, [4, 4, 4])])
@pytest.mark.parametrize('scale', [2, 3])
def test_the_two_mac_counts_differ_by_the_attention_matmuls(network_g, embed_dim, depths, scale):
    result = _profile(network_g, scale)
    assert result['macs'] - result['macs_conv_linear'] == _attention_macs(result['padded_lr_hw'], embed_dim, depths)


def test_edsr_has_no_attention_so_both_counts_agree():
    result = _profile(EDSR_TEACHER, 2)
    assert result['macs'] == result['macs_conv_linear'] > 0


@pytest.mark.parametrize('network_g', [SWINIR_LIGHT, {'type': 'SwinIRmini'}])
def test_swinir_lr_input_is_padded_to_the_window(network_g):
    x3 = _profile(network_g, 3)
    assert x3['lr_hw'] == [240, 426] and x3['padded_lr_hw'] == [240, 432] and x3['window'] == 8
    x4 = _profile(network_g, 4)
    assert x4['padded_lr_hw'] == [184, 320]
    assert x4['out_hw'] == [736, 1280]  # the padded input's output, the work actually done


@pytest.mark.parametrize('fused', [True, False])
def test_meta_count_equals_a_real_forward_count(fused):
    net = build_network({'type': 'SwinIRmini', 'upscale': 2, 'fused_attention': fused})
    counts = mac_counts(net, 2, out_hw=(32, 48))
    assert counts.counted_on == 'meta'
    # Reference: BasicSR's own eager SwinIR code (plain matmuls) on real tensors.
    eager = build_network({'type': 'SwinIRmini', 'upscale': 2, 'fused_attention': False})
    flops = FlopCounterMode(display=False)
    with flops, torch.no_grad():
        out = eager(torch.rand(1, 3, 16, 24))
    assert counts.macs == flops.get_total_flops() // 2
    assert list(counts.out_hw) == list(out.shape[-2:])
    # A real forward of the same net counts the same, fused attention included.
    real = mac_counts(net, 2, out_hw=(32, 48), meta=False)
    assert real.counted_on == 'cpu'
    assert (real.macs, real.macs_conv_linear) == (counts.macs, counts.macs_conv_linear)
    assert count_macs(net, 2, out_hw=(32, 48)) == counts.macs
    assert count_macs(net, 2, out_hw=(32, 48), conv_linear_only=True) == counts.macs_conv_linear < counts.macs
    assert next(net.parameters()).device.type == 'cpu'  # the caller's net is untouched


class _NeedsValues(nn.Module):
    """A net whose forward reads a tensor value, which the meta device cannot give."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        if x.mean().item() > 1e9:
            x = x * 0
        return self.shuffle(self.conv(x))


def test_falls_back_to_a_real_forward_when_meta_cannot_run():
    counts = mac_counts(_NeedsValues(), 2, out_hw=(32, 40))
    assert counts.counted_on == 'cpu'
    assert counts.macs == counts.macs_conv_linear == 16 * 20 * 3 * 12 * 9
    assert list(counts.out_hw) == [32, 40]


def test_scale_must_match_the_network():
    with pytest.raises(ProfileError, match='x2.*x3'):
        profile_network({'type': 'EDSRmini', 'upscale': 2}, scale=3, latency=False)


def test_measure_latency_reports_median_and_threads():
    net = build_network({'type': 'EDSRmini'}).train()
    threads_before = torch.get_num_threads()
    lat = measure_latency(net, (16, 16), repeats=3, warmup=1, threads=1)
    assert lat['threads'] == 1 and lat['repeats'] == 3 and len(lat['times_s']) == 3
    assert lat['min_s'] <= lat['median_s'] <= lat['max_s'] and lat['min_s'] > 0
    assert lat['input_shape'] == [1, 3, 16, 16]
    assert torch.get_num_threads() == threads_before
    assert net.training


def test_cli_json_by_arch_name(capsys):
    assert profile_main(['--arch', 'EDSRmini', '--scale', '3', '--json', '--no-latency']) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['params'] == 61_203 and result['scale'] == 3
    assert result['macs'] == pytest.approx(6.57e9, rel=0.005)
    assert result['latency'] is None and 'memory' not in result


def test_cli_no_memory_is_a_deprecated_no_op(capsys):
    """``--no-memory`` still parses (existing command lines), does nothing and says where peak memory went."""
    assert profile_main(['--arch', 'EDSRmini', '--json', '--no-latency', '--no-memory']) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)['params'] == 49_603
    assert captured.err.splitlines()[0] == NO_MEMORY_NOTE and 'benchmarks/peak_memory.py' in NO_MEMORY_NOTE
    assert 'deprecated, does nothing' in build_parser().format_help()


def test_cli_by_arch_and_kwargs(capsys):
    kwargs = json.dumps({k: v for k, v in SWINIR_LIGHT.items() if k != 'type'} | {'upscale': 2})
    argv = ['--arch', 'SwinIR', '--kwargs', kwargs, '--lr-size', '20x17', '--json', '--no-latency']
    assert profile_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['params'] == 910_152 and result['network_opt']['embed_dim'] == 60
    assert result['lr_hw'] == [20, 17] and result['padded_lr_hw'] == [24, 24]
    assert result['macs'] - result['macs_conv_linear'] == _attention_macs([24, 24], 60, [6, 6, 6, 6])


def test_cli_table_from_option_file(tmp_path, capsys):
    opt = write_opt(tmp_path / 'o.yml', {'scale': 4, 'network_g': {'type': 'EDSRmini'},
                                         'network_t': dict(EDSR_TEACHER, upscale=4)})
    assert profile_main(['-opt', str(opt), '--no-latency']) == 0
    table = capsys.readouterr().out
    assert '58,883' in table and 'x4' in table and 'conv+linear' in table
    assert profile_main(['-opt', str(opt), '--network', 'network_t', '--json', '--no-latency']) == 0
    assert json.loads(capsys.readouterr().out)['params'] == 1_517_571


def test_cli_latency_with_small_input(capsys):
    argv = ['profile', '--arch', 'EDSRmini', '--lr-size', '24x20', '--repeats', '2', '--warmup', '1',
            '--threads', '1', '--json']
    assert cli.main(argv) == 0  # through the `srcomp` dispatcher
    result = json.loads(capsys.readouterr().out)  # stdout holds nothing but the JSON object
    assert result['out_hw'] == [48, 40]
    assert result['latency']['threads'] == 1 and len(result['latency']['times_s']) == 2


@pytest.mark.parametrize('argv, message', [
    (['--arch', 'NoSuchNet'], "unknown arch 'NoSuchNet'"),
    (['--arch', 'EDSRmini', '--kwargs', '{bad'], '--kwargs is not valid JSON'),
    (['--arch', 'EDSRmini', '--kwargs', '{"num_feats": 3}'], 'cannot build EDSRmini'),
    (['--arch', 'EDSRmini', '--kwargs', '{"upscale": 2}', '--scale', '4'], 'upscales x2'),
])
def test_cli_errors_say_what_is_wrong(argv, message, capsys):
    assert profile_main(argv + ['--no-latency']) == 2
    assert message in capsys.readouterr().err


def test_cli_error_names_the_option_file_key(tmp_path, capsys):
    opt = write_opt(tmp_path / 'o.yml', {'scale': 2, 'network_d': {'type': 'EDSRmini'}})
    assert profile_main(['-opt', str(opt), '--no-latency']) == 2
    err = capsys.readouterr().err
    assert 'o.yml' in err and '"network_g"' in err


def test_cli_says_what_it_is_doing_on_stderr(tmp_path):
    """The slow steps are announced on stderr; stdout stays the report (here JSON)."""
    proc = run_module('srcomp_plugin.cli', ['profile', '--arch', 'EDSRmini', '--repeats', '1',
                                            '--warmup', '0', '--json'], cwd=tmp_path)
    assert json.loads(proc.stdout)['params'] == 49_603
    assert '[srcomp profile] counting MACs for a 720x1280 output' in proc.stderr
    assert '[srcomp profile] timing 1 forward passes' in proc.stderr
