"""Peak memory of one CPU forward, teacher against student, side by side.

    python benchmarks/peak_memory.py                      # EDSR vs EDSRmini, SwinIR-light vs SwinIRmini, x2, 720p
    python benchmarks/peak_memory.py DISTILL_OPT.yml ...  # network_t vs network_g of stage-3 option files
    python benchmarks/peak_memory.py --lr-size 180x320 --threads 1

Each option file gives one pair: its ``network_t`` (the teacher) and its ``network_g`` (the
student), e.g. the file ``srcomp compress --out`` writes; by default the repository's x2
distillation option files (``options/distill/``). The LR input is that of an ``--out-size``
output (720x1280) at the network's own upscaling, padded to the window for SwinIR, as
``srcomp profile`` counts MACs, or ``--lr-size`` given directly (padded likewise). Batch 1,
float32, eval mode, ``torch.inference_mode``, random weights (memory does not depend on the
values).

Why a fresh Python process per network: PyTorch's CPU allocator has no statistics and
``tracemalloc`` does not see its allocations, so the honest measure is the process's
resident set (what an out-of-memory killer looks at); and after earlier forwards glibc
keeps freed blocks resident, which would hide the growth. The child sets
``MALLOC_MMAP_THRESHOLD_`` so large tensors are mapped and returned on free, builds the
network and input, runs one small warm-up forward (loads the kernels), resets the kernel's
peak counter (``/proc/self/clear_refs``; on other systems the peak since start,
``ru_maxrss``, is used), runs the measured forward and reads the peak.

Per network: ``forward_peak_bytes`` (peak RSS during the forward minus RSS before it:
activations, workspaces and the output), ``peak_rss_bytes``, ``rss_before_bytes``,
``input_bytes``, ``output_bytes``, ``threads``, ``input_shape``, ``scale`` and ``method``;
per pair, ``forward_peak_ratio``, the student's forward peak over the teacher's. The table
goes to stdout, the JSON to ``--json-out`` (default ``benchmarks/results/peak_memory.json``).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import common

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OPTIONS = ('options/distill/train_EDSRmini_x2_distill.yml', 'options/distill/train_SwinIRmini_x2_distill.yml')
ROLES = (('teacher', 'network_t'), ('student', 'network_g'))


def peak_memory(network_opt, out_hw, lr_hw=None, threads=2, timeout=600):
    """Resident-memory growth of one CPU forward of ``network_opt``, in a fresh Python process.

    ``network_opt`` is a BasicSR ``network_g``-style dict, built in the child after ``import
    srcomp_plugin`` (no module is pickled across: nothing is unpickled). The LR input is that
    of an ``out_hw`` output, or ``lr_hw``, padded to the network's window. Returns the child's
    measurements (see the module docstring); RuntimeError with the child's stderr if it fails.
    """
    spec = {'network_opt': network_opt, 'out_hw': list(out_hw), 'lr_hw': list(lr_hw) if lr_hw else None,
            'threads': int(threads)}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072', OMP_NUM_THREADS=str(spec['threads']))
    proc = subprocess.run([sys.executable, __file__, '--child'], input=json.dumps(spec), capture_output=True,
                          text=True, env=env, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f'peak-memory child process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _proc_status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter (VmHWM); False where that is not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        _proc_status_kib('VmHWM')
        return True
    except (OSError, KeyError):
        return False


def _child():
    """Child side of :func:`peak_memory`: spec as JSON on stdin, result as JSON on stdout."""
    import gc
    import resource

    import torch

    import srcomp_plugin  # noqa: F401  (registers the plugin's archs)
    from srcomp_plugin.measure.macs import infer_scale
    from srcomp_plugin.measure.networks import build_from_opt
    from srcomp_plugin.measure.shapes import as_input_shape, lr_size, pad_to, window_of

    spec = json.loads(sys.stdin.read())
    torch.set_num_threads(spec['threads'])
    net = build_from_opt(spec['network_opt']).eval()
    window, scale = window_of(net), infer_scale(net)
    padded = pad_to(spec['lr_hw'], window) if spec['lr_hw'] else lr_size(scale, tuple(spec['out_hw']), window)[1]
    shape = as_input_shape(net, padded)
    x = torch.rand(shape)
    with torch.inference_mode():
        net(torch.rand(shape[:2] + pad_to((16, 16), window)))
    gc.collect()
    if _reset_peak_rss():
        method = 'VmHWM - VmRSS around the forward (/proc/self/clear_refs reset), fresh process'
        before = _proc_status_kib('VmRSS') * 1024
        read_peak = lambda: _proc_status_kib('VmHWM') * 1024  # noqa: E731
    else:
        unit = 1 if sys.platform == 'darwin' else 1024
        method = 'ru_maxrss delta around the forward, fresh process'
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
        read_peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit  # noqa: E731
    with torch.inference_mode():
        out = net(x)
    peak = read_peak()
    print(json.dumps({
        'forward_peak_bytes': max(0, peak - before),
        'peak_rss_bytes': peak,
        'rss_before_bytes': before,
        'input_bytes': x.numel() * x.element_size(),
        'output_bytes': out.numel() * out.element_size(),
        'threads': torch.get_num_threads(),
        'input_shape': list(shape),
        'scale': scale,
        'method': method,
    }))


def measure_pair(option_file, out_hw, lr_hw, threads, log):
    """Teacher and student of one stage-3 option file, each in its own child process."""
    pair = {'option_file': str(option_file)}
    for role, key in ROLES:
        network_opt = common.load_network_opt(option_file, key)
        log(f'[peak_memory] {option_file}: {role} {network_opt["type"]} ({key})')
        pair[role] = {'network_opt': network_opt, **peak_memory(network_opt, out_hw, lr_hw, threads)}
    pair['forward_peak_ratio'] = pair['student']['forward_peak_bytes'] / max(1, pair['teacher']['forward_peak_bytes'])
    return pair


def _mib(n):
    return f'{n / 2**20:.1f}'


def print_table(pairs):
    rows = []
    for pair in pairs:
        for role, _ in ROLES:
            mem = pair[role]
            ratio = f'{pair["forward_peak_ratio"]:.3f}' if role == 'student' else ''
            rows.append([Path(pair['option_file']).name, role, mem['network_opt']['type'],
                         ' x '.join(map(str, mem['input_shape'][2:])), _mib(mem['forward_peak_bytes']),
                         _mib(mem['peak_rss_bytes']), _mib(mem['output_bytes']), ratio])
    print(common.format_table(['option file', 'role', 'arch', 'LR input', 'forward +MiB', 'process peak MiB',
                               'output MiB', 'student/teacher'], rows))
    for pair in pairs:
        print(f'{Path(pair["option_file"]).name}: the student\'s forward peaks at {pair["forward_peak_ratio"]:.3f} x '
              'the teacher\'s')


def main(argv=None):
    from srcomp_plugin.measure.shapes import OUT_HW_720P, parse_hw

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('option_files', nargs='*', metavar='DISTILL_OPT.yml',
                        help='stage-3 option files: network_t is the teacher, network_g the student '
                        '(default: the x2 ones of options/distill/)')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--out-size', type=parse_hw, default=OUT_HW_720P, metavar='HxW',
                      help='output size the LR input is derived from (default 720x1280)')
    size.add_argument('--lr-size', type=parse_hw, metavar='HxW', help='give the LR input size directly')
    parser.add_argument('--threads', type=int, default=2, help='torch intra-op threads of each forward (default 2)')
    parser.add_argument('--json-out', help='JSON file (default benchmarks/results/peak_memory.json)')
    parser.add_argument('--quiet', action='store_true', help='no progress lines')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child()
        return 0

    log = common.progress_logger(args.quiet)
    info = common.machine_info(args.threads)
    option_files = args.option_files or [REPO / path for path in DEFAULT_OPTIONS]
    try:
        pairs = [measure_pair(path, args.out_size, args.lr_size, args.threads, log) for path in option_files]
    except (OSError, ValueError, RuntimeError) as err:
        print(f'peak_memory: {err}', file=sys.stderr)
        return 1
    print_table(pairs)
    settings = {'out_size': list(args.out_size), 'lr_size': list(args.lr_size) if args.lr_size else None,
                'threads': args.threads}
    result = {'benchmark': 'peak_memory', 'settings': settings, 'machine': common.finish_info(info), 'pairs': pairs}
    path = common.write_json(result, args.json_out or common.RESULTS_DIR / 'peak_memory.json')
    print(f'\nload average start {info["load_average_start"]}, end {info["load_average_end"]}; JSON: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
