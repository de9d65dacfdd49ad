"""``srcomp export``: a trained network as ONNX or TorchScript, any input height and width.

The network is built from an option file's ``network_g`` (or ``--network``) and loaded
from a BasicSR checkpoint the way BasicSR loads one (``params``/``params_ema``, strict).
SwinIR-family networks are switched to :mod:`srcomp_plugin.accel.swinir_fast_attention`,
whose blocks (and ``SwinIRmini``'s padding) trace to shape-generic graphs: the batch,
height and width of the exported model are dynamic. Both formats come from
``torch.jit.trace`` (for ONNX via the TorchScript-based exporter, which needs only the
``onnx`` package; ``pip install 'srcomp_plugin[onnx]'``).

After writing the file the command checks it against PyTorch on input sizes other than
the one traced (by default two, one not a multiple of the SwinIR window): TorchScript
through ``torch.jit.load``, ONNX through ONNX Runtime when it is installed. A maximum
absolute difference above ``--atol`` (1e-4) fails the command.

``--fp16`` (ONNX) writes float16 weights and float16 compute between a float32 input and
output, so callers feed the same tensors: half the file, and the precision GPUs run fast. Its
check is a PSNR against the float32 network in PyTorch (``--min-psnr``, default 50 dB on
outputs in [0, 1]; float16 rounding alone costs far less). ONNX Runtime's CPU provider runs
the float16 nodes it has no kernel for in float32 between casts, so every activation is still
rounded to float16 between nodes, as on a GPU.

Python users call :func:`export_network` and :func:`check_export` directly.
"""
import argparse
import copy
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from .accel.edsr_fused_convs import use_eager_convs
from .accel.swinir_fast_attention import use_fused_attention
from .errors import ProfileError, SrcompError
from .measure.networks import build_from_opt
from .measure.shapes import input_channels, parse_hw, window_of
from .utils.checkpoint_io import load_state_dict
from .utils.safe_yaml import read_options

FORMATS = {'onnx': '.onnx', 'torchscript': '.pt'}
DEFAULT_EXAMPLE_HW = (37, 45)  # traced at a size that is no multiple of the window: padding is in the graph
DEFAULT_CHECK_HW = ((29, 51), (48, 64))
DEFAULT_MIN_PSNR = 50.0  # dB, --fp16 file against the float32 network


class ExportError(SrcompError, ValueError):
    """An export request that cannot be carried out; the message says why and what to change."""


# ----------------------------------------------------------------------------- loading


def load_network(opt_path, checkpoint=None, network_key='network_g', param_key=None):
    """(network in eval mode, info dict) from an option file and a BasicSR checkpoint.

    ``checkpoint`` defaults to the option file's ``path.pretrain_network_g`` (or the
    ``pretrain_`` path of ``network_key``); ``param_key`` to its ``path.param_key_g``, else
    ``params``, falling back to ``params`` when the checkpoint lacks the key, as BasicSR does.
    """
    opt_path = Path(opt_path)
    opt = read_options(opt_path)
    if not isinstance(opt.get(network_key), dict):
        raise ExportError(f'{opt_path} has no "{network_key}" mapping with a "type" key; '
                          'pick the network with --network')
    suffix = network_key.split('_', 1)[-1]
    paths = opt.get('path') or {}
    checkpoint = checkpoint or paths.get(f'pretrain_network_{suffix}')
    if not checkpoint:
        raise ExportError(f'no checkpoint: pass --checkpoint or set path.pretrain_network_{suffix} in {opt_path}')
    param_key = param_key or paths.get(f'param_key_{suffix}') or 'params'

    net = build_from_opt(dict(opt[network_key]), where=f'{opt_path}: {network_key}')
    state, used_key = load_state_dict(Path(checkpoint), (param_key, 'params'))  # BasicSR's fallback to params
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f'{checkpoint} does not fit {network_key} of {opt_path} '
                          f'(type {opt[network_key]["type"]}): {err}') from err
    net.eval()
    info = {'opt': str(opt_path), 'network': network_key, 'arch': opt[network_key]['type'],
            'checkpoint': str(checkpoint), 'param_key': used_key}
    return net, info


# ----------------------------------------------------------------------------- export


class Float16Graph(torch.nn.Module):
    """``net`` in float16 between a float32 input and output (the interface of the float32 file)."""

    def __init__(self, net):
        super().__init__()
        # eager convolutions: the fused oneDNN kernels of the CPU fast path are float32 only
        self.net = use_eager_convs(copy.deepcopy(net)).half().eval()

    def forward(self, x):
        return self.net(x.half()).float()


def _example_input(net, hw, batch=1):
    return torch.rand(batch, input_channels(net), *hw, generator=torch.Generator().manual_seed(0))


def _trace(net, example):
    with warnings.catch_warnings():
        # torch.jit.trace is deprecated in favour of torch.export; it is still what both
        # TorchScript files and the dependency-light ONNX exporter are made from.
        warnings.simplefilter('ignore', FutureWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        with torch.no_grad():
            return torch.jit.trace(net, example, check_trace=False)


def export_network(net, path, fmt, example_hw=DEFAULT_EXAMPLE_HW, opset=17, fp16=False):
    """Write ``net`` (eval mode) to ``path`` as ``fmt`` ('onnx' or 'torchscript'); returns ``path``.

    SwinIR blocks are switched to the fused, traceable path first (in place; weights and
    outputs unchanged). The batch, height and width axes of the file are dynamic. ``fp16``
    (ONNX only): float16 weights and compute, float32 input and output (:class:`Float16Graph`).
    """
    if fmt not in FORMATS:
        raise ExportError(f'--format must be one of {", ".join(FORMATS)}, got {fmt!r}')
    if fp16 and fmt != 'onnx':
        raise ExportError(f'--fp16 is for --format onnx, not {fmt}')
    path = Path(path)
    _check_writable(path)
    net = use_fused_attention(net).eval()
    if fp16:
        net = Float16Graph(net)
    example = _example_input(net, _window_safe(example_hw, net))
    if fmt == 'torchscript':
        traced = _trace(net, example)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch.jit.save is deprecated, still works
            torch.jit.save(traced, str(path))
        return path
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError('ONNX export needs the onnx package: pip install "srcomp_plugin[onnx]" '
                          '(or pip install onnx onnxruntime)') from None
    # the output is scale times larger: its axes get their own names, or shape inference and
    # TensorRT would take them for the input's
    lq_axes, sr_axes = {0: 'batch', 2: 'height', 3: 'width'}, {0: 'batch', 2: 'sr_height', 3: 'sr_width'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        with torch.no_grad():
            torch.onnx.export(net, (example, ), str(path), dynamo=False, opset_version=opset, input_names=['lq'],
                              output_names=['sr'], dynamic_axes={'lq': lq_axes, 'sr': sr_axes})
    return path


def _check_writable(path):
    """Make the output folder and fail before tracing, naming it, if no file can be written there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f'.{path.name}.'):
            pass
    except OSError as err:
        raise ExportError(f'--output {path}: cannot write to {path.parent} ({err.strerror or err})') from err


def _window_safe(hw, net):
    """``hw`` raised to at least the window (reflect padding in the graph needs pad < size)."""
    window = window_of(net)
    return tuple(max(side, window) for side in hw)


# ----------------------------------------------------------------------------- checking


def onnxruntime_available():
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def load_runner(path, fmt, threads=None):
    """A callable ``f(x: Tensor) -> Tensor`` running an exported file (TorchScript or ONNX Runtime)."""
    if fmt == 'torchscript':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch.jit.load is deprecated, still works
            module = torch.jit.load(str(path), map_location='cpu').eval()

        def run(x):
            with torch.no_grad():
                return module(x)

        return run
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name

    def run(x):
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy()})[0])

    return run


def check_export(net, path, fmt, sizes=DEFAULT_CHECK_HW, atol=1e-4, batch=1, min_psnr=None):
    """Compare an exported file with ``net`` on each (h, w) of ``sizes``; returns a list of dicts.

    Each row: ``lr_hw``, ``out_shape``, ``max_abs_diff``, ``ok`` (``max_abs_diff <= atol``);
    with ``min_psnr`` (a float16 file) also ``psnr`` (dB, outputs clipped to [0, 1]) and ``ok``
    is ``psnr >= min_psnr``. For ONNX without ONNX Runtime installed, returns None (nothing
    could be run).
    """
    if fmt == 'onnx' and not onnxruntime_available():
        return None
    run = load_runner(path, fmt)
    rows = []
    net = net.eval()
    for hw in sizes:
        x = _example_input(net, _window_safe(hw, net), batch)
        with torch.no_grad():
            ref = net(x)
        out = run(x)
        same = out.shape == ref.shape
        row = {'lr_hw': list(x.shape[-2:]), 'out_shape': list(out.shape),
               'max_abs_diff': float((out - ref).abs().max()) if same else float('inf')}
        if min_psnr is None:
            row['ok'] = row['max_abs_diff'] <= atol
        else:
            row['psnr'] = _psnr(out, ref) if same else 0.0
            row['ok'] = row['psnr'] >= min_psnr
        rows.append(row)
    return rows


def _psnr(out, ref):
    """PSNR in dB of ``out`` against ``ref``, both clipped to [0, 1] as an image writer would."""
    mse = float(((out.float().clamp(0, 1) - ref.float().clamp(0, 1)) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-20))  # identical outputs: 200 dB, still a number in JSON


# ----------------------------------------------------------------------------- CLI


def build_parser():
    parser = argparse.ArgumentParser(
        prog='srcomp export',
        description='Export a network of an option file, with a BasicSR checkpoint, to ONNX or TorchScript '
        '(dynamic batch, height and width), then check the file against PyTorch.')
    parser.add_argument('-opt', required=True, metavar='OPT.yml', help='BasicSR option file with the network')
    parser.add_argument('--checkpoint', metavar='CKPT.pth',
                        help='BasicSR checkpoint (default: path.pretrain_network_g of the option file)')
    parser.add_argument('--format', required=True, choices=sorted(FORMATS), help='file format')
    parser.add_argument('--output', metavar='PATH',
                        help='output file (default: the checkpoint path with .onnx / .pt as suffix)')
    parser.add_argument('--network', default='network_g', help='network of the option file (default network_g)')
    parser.add_argument('--param-key', help='checkpoint key of the weights (default: path.param_key_g, '
                        'else params; params_ema falls back to params as in BasicSR)')
    parser.add_argument('--example-size', type=parse_hw, default=DEFAULT_EXAMPLE_HW, metavar='HxW',
                        help='LR size the graph is traced at (default 37x45)')
    parser.add_argument('--check-size', type=parse_hw, action='append', metavar='HxW',
                        help='LR size to compare the file with PyTorch at (repeatable; default 29x51 and 48x64)')
    parser.add_argument('--atol', type=float, default=1e-4, help='largest accepted |file - PyTorch| (default 1e-4)')
    parser.add_argument('--fp16', action='store_true',
                        help='ONNX with float16 weights and compute, float32 input and output (half the file)')
    parser.add_argument('--min-psnr', type=float, default=DEFAULT_MIN_PSNR, metavar='DB',
                        help=f'with --fp16: lowest accepted PSNR of the file against the float32 network in PyTorch '
                        f'(default {DEFAULT_MIN_PSNR:g}); replaces --atol')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (default 17)')
    parser.add_argument('--no-check', action='store_true', help='write the file without checking it')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    return parser


def run_export(args):
    """Everything ``srcomp export`` does, as a dict (raises ExportError)."""
    net, info = load_network(args.opt, args.checkpoint, args.network, args.param_key)
    output = Path(args.output) if args.output else Path(info['checkpoint']).with_suffix(FORMATS[args.format])
    start = time.perf_counter()
    export_network(net, output, args.format, example_hw=args.example_size, opset=args.opset, fp16=args.fp16)
    result = dict(info, format=args.format, fp16=args.fp16, output=str(output), bytes=output.stat().st_size,
                  export_s=time.perf_counter() - start, atol=args.atol,
                  min_psnr=args.min_psnr if args.fp16 else None, checks=None, check_note=None)
    if args.no_check:
        result['check_note'] = 'not checked (--no-check)'
    else:
        rows = check_export(net, output, args.format, sizes=args.check_size or DEFAULT_CHECK_HW, atol=args.atol,
                            min_psnr=result['min_psnr'])
        if rows is None:
            result['check_note'] = ('not checked: onnxruntime is not installed '
                                    '(pip install "srcomp_plugin[onnx]")')
        else:
            result['checks'] = rows
    return result


def format_table(result):
    lines = [f'{result["arch"]} ({result["network"]} of {result["opt"]}, weights {result["param_key"] or "state dict"} '
             f'of {result["checkpoint"]})',
             f'-> {result["output"]}  [{result["format"]}{", float16" if result["fp16"] else ""}, '
             f'{result["bytes"] / 2**20:.2f} MiB, '
             f'dynamic batch/height/width, {result["export_s"]:.1f} s]']
    if result['checks'] is None:
        lines.append(result['check_note'])
    else:
        runner = 'ONNX Runtime' if result['format'] == 'onnx' else 'torch.jit.load'
        bound = (f'PSNR >= {result["min_psnr"]:g} dB against float32' if result['fp16']
                 else f'tolerance {result["atol"]:g}')
        lines.append(f'check against PyTorch ({runner}), {bound}:')
        psnr_head = f' {"PSNR dB":>8}' if result['fp16'] else ''
        lines.append(f'  {"LR size":<10} {"output":<18} {"max |diff|":>11}{psnr_head}  ok')
        for row in result['checks']:
            size = 'x'.join(map(str, row['lr_hw']))
            shape = 'x'.join(map(str, row['out_shape']))
            psnr = f' {row["psnr"]:>8.2f}' if result['fp16'] else ''
            lines.append(f'  {size:<10} {shape:<18} {row["max_abs_diff"]:>11.2e}{psnr}  {"yes" if row["ok"] else "NO"}')
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        result = run_export(args)
    except (ExportError, ProfileError) as err:
        print(f'srcomp export: error: {err}', file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    if result['checks'] and not all(row['ok'] for row in result['checks']):
        bound = f'a PSNR below {args.min_psnr:g} dB' if args.fp16 else f'more than {args.atol:g}'
        print(f'srcomp export: the exported file differs from PyTorch by {bound}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
