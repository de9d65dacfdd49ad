"""``srcomp export``: TorchScript always, ONNX when onnx/onnxruntime are installed.

Each exported file is run at sizes other than the traced one (batch 2 included, and a
size that is no multiple of the SwinIR window) and compared with BasicSR's own eager
network holding the same weights.
"""
import json

import pytest
import torch

import srcomp_plugin  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from helpers import write_opt
from srcomp_plugin import cli
from srcomp_plugin.accel.swinir_fast_attention import use_eager_attention

# TorchScript is deprecated in favour of torch.export but still what many deployment tools read.
pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit.:FutureWarning')

TOL = 1e-4
NETWORKS = {
    'EDSRmini': {'type': 'EDSRmini', 'num_feat': 8, 'num_block': 2, 'upscale': 2},
    'SwinIRmini': {'type': 'SwinIRmini', 'upscale': 2, 'img_size': 16, 'window_size': 4, 'embed_dim': 12,
                   'depths': [2, 2], 'num_heads': [3, 3]},
}
SIZES = [(2, 13, 22), (1, 16, 16), (1, 7, 9)]  # (batch, h, w); none is the traced 37x45


pytestmark = pytest.mark.usefixtures('one_thread')


def make_checkpoint(tmp_path, arch, key='params'):
    """An option file and a BasicSR-style checkpoint of a randomly initialised ``arch``."""
    network_g = NETWORKS[arch]
    torch.manual_seed(0)
    net = build_network(dict(network_g))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if 'relative_position_bias_table' in name:
                p.normal_()  # attention far from uniform, so the shift mask and bias matter
    ckpt = tmp_path / f'{arch}.pth'
    torch.save({key: net.state_dict()}, ckpt)
    opt = write_opt(tmp_path / f'{arch}.yml',
                    {'name': arch, 'scale': 2, 'network_g': network_g, 'path': {'pretrain_network_g': None}})
    reference = build_network(dict(network_g)).eval()
    reference.load_state_dict(net.state_dict())
    use_eager_attention(reference)  # BasicSR's own forward is the reference
    return opt, ckpt, reference


def inputs():
    for batch, h, w in SIZES:
        yield torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(h * w))


def run_cli(args, capsys):
    code = cli.main(['export', *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize('arch', sorted(NETWORKS))
def test_torchscript_export_runs_any_size(tmp_path, capsys, arch):
    opt, ckpt, reference = make_checkpoint(tmp_path, arch)
    out_file = tmp_path / 'model.pt'
    code, out, err = run_cli(['-opt', opt, '--checkpoint', ckpt, '--format', 'torchscript', '--output', out_file],
                             capsys)
    assert code == 0, err
    assert 'torch.jit.load' in out and 'NO' not in out
    module = torch.jit.load(str(out_file))
    for x in inputs():
        with torch.no_grad():
            ref, got = reference(x), module(x)
        assert got.shape == (x.shape[0], 3, 2 * x.shape[2], 2 * x.shape[3])
        assert (got - ref).abs().max().item() < TOL


@pytest.mark.parametrize('arch', sorted(NETWORKS))
def test_onnx_export_matches_pytorch(tmp_path, capsys, arch):
    pytest.importorskip('onnx', reason='onnx is not installed (optional extra: pip install "srcomp_plugin[onnx]")')
    ort = pytest.importorskip('onnxruntime',
                              reason='onnxruntime is not installed (optional extra: pip install "srcomp_plugin[onnx]")')
    opt, ckpt, reference = make_checkpoint(tmp_path, arch, key='params_ema')
    code, out, err = run_cli(['-opt', opt, '--checkpoint', ckpt, '--format', 'onnx', '--param-key', 'params_ema',
                              '--json'], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result['param_key'] == 'params_ema'
    assert result['output'] == str(ckpt.with_suffix('.onnx'))
    assert result['checks'] and all(row['ok'] for row in result['checks'])
    graph = __import__('onnx').load(result['output']).graph
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in
            list(graph.input) + list(graph.output)}
    assert dims == {'lq': ['batch', 3, 'height', 'width'], 'sr': ['batch', 3, 'sr_height', 'sr_width']}
    session = ort.InferenceSession(result['output'], providers=['CPUExecutionProvider'])
    for x in inputs():
        with torch.no_grad():
            ref = reference(x)
        got = torch.from_numpy(session.run(None, {'lq': x.numpy()})[0])
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() < TOL


def test_onnx_without_onnx_says_how_to_install(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == 'onnx' or name.startswith('onnx.'):
            raise ImportError('No module named onnx')
        return real_import(name, *args, **kwargs)

    opt, ckpt, _ = make_checkpoint(tmp_path, 'EDSRmini')
    monkeypatch.setattr(builtins, '__import__', no_onnx)
    code, _, err = run_cli(['-opt', opt, '--checkpoint', ckpt, '--format', 'onnx'], capsys)
    assert code == 2
    assert 'srcomp_plugin[onnx]' in err


def test_errors_name_the_file_at_fault(tmp_path, capsys):
    opt, ckpt, _ = make_checkpoint(tmp_path, 'EDSRmini')
    code, _, err = run_cli(['-opt', opt, '--format', 'torchscript'], capsys)
    assert code == 2 and '--checkpoint' in err and 'pretrain_network_g' in err
    code, _, err = run_cli(['-opt', opt, '--checkpoint', tmp_path / 'missing.pth', '--format', 'torchscript'],
                           capsys)
    assert code == 2 and 'missing.pth' in err and 'not found' in err
    _, other, _ = make_checkpoint(tmp_path, 'SwinIRmini')
    code, _, err = run_cli(['-opt', opt, '--checkpoint', other, '--format', 'torchscript'], capsys)
    assert code == 2 and 'does not fit network_g' in err and 'SwinIRmini.pth' in err


@pytest.mark.parametrize('arch', sorted(NETWORKS))
def test_fp16_onnx_is_half_the_file_and_within_the_stated_psnr(tmp_path, capsys, arch):
    onnx = pytest.importorskip('onnx',
                               reason='onnx is not installed (optional extra: pip install "srcomp_plugin[onnx]")')
    ort = pytest.importorskip('onnxruntime',
                              reason='onnxruntime is not installed (optional extra: pip install "srcomp_plugin[onnx]")')
    opt, ckpt, reference = make_checkpoint(tmp_path, arch)
    files = {}
    for name, extra in (('fp32', []), ('fp16', ['--fp16'])):
        files[name] = tmp_path / f'{name}.onnx'
        code, out, err = run_cli(['-opt', opt, '--checkpoint', ckpt, '--format', 'onnx', '--output', files[name],
                                  '--json', *extra], capsys)
        assert code == 0, err
    result = json.loads(out)
    assert result['fp16'] and result['min_psnr'] == 50.0
    assert all(row['ok'] and 50 <= row['psnr'] < 200 for row in result['checks'])  # rounded, not identical
    graph = onnx.load(str(files['fp16'])).graph
    float16, float32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    weights = [t for t in graph.initializer if len(t.dims) > 1]
    assert weights and all(t.data_type == float16 for t in weights)
    assert [v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.output)] == [float32, float32]
    weight_bytes = {name: sum(len(t.raw_data) for t in onnx.load(str(f)).graph.initializer)
                    for name, f in files.items()}
    assert weight_bytes['fp16'] * 2 == weight_bytes['fp32']  # a tiny graph's nodes outweigh its weights
    session = ort.InferenceSession(str(files['fp16']), providers=['CPUExecutionProvider'])
    for x in inputs():  # dynamic sizes, and within float16 rounding of BasicSR's float32 network
        with torch.no_grad():
            ref = reference(x)
        got = torch.from_numpy(session.run(None, {'lq': x.numpy()})[0])
        assert got.shape == ref.shape and got.dtype == torch.float32
        assert 0 < (got - ref).abs().max().item() < 0.05


def test_fp16_is_refused_for_torchscript_and_a_failed_psnr_fails(tmp_path, capsys):
    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed')
    opt, ckpt, _ = make_checkpoint(tmp_path, 'EDSRmini')
    code, _, err = run_cli(['-opt', opt, '--checkpoint', ckpt, '--format', 'torchscript', '--fp16'], capsys)
    assert code == 2 and '--fp16 is for --format onnx' in err
    code, out, err = run_cli(['-opt', opt, '--checkpoint', ckpt, '--format', 'onnx', '--fp16', '--min-psnr', '300'],
                             capsys)
    assert code == 1 and 'a PSNR below 300 dB' in err and 'PSNR >= 300 dB against float32' in out and 'NO' in out
