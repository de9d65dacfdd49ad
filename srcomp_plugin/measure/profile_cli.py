"""``srcomp profile``: parameters, MACs at 720p and CPU latency of an arch.

The network comes from an option file (``-opt OPT.yml``, its ``network_g`` or the key
given by ``--network``) or from a registered arch name with JSON kwargs (``--arch EDSR
--kwargs '{...}'``, ``--arch EDSRmini --scale 3``). All numbers come from
:func:`srcomp_plugin.measure.complexity.profile_network`; this module only parses and prints.
Peak memory is measured by ``python benchmarks/peak_memory.py`` (teacher against student);
``--no-memory``, from when this command measured it, is still accepted and does nothing.
"""
import argparse
import json
import sys


from ..errors import ProfileError
from ..utils.safe_yaml import read_options
from .complexity import profile_network
from .shapes import OUT_HW_720P, parse_hw

NO_MEMORY_NOTE = ('srcomp profile: note: --no-memory is deprecated and does nothing: peak memory is no longer '
                  'measured here; python benchmarks/peak_memory.py measures it, teacher against student')


def build_parser():
    parser = argparse.ArgumentParser(
        prog='srcomp profile',
        description='Parameters, MACs at a 1280x720 output (all matmuls incl. attention, and conv+linear only), '
        'CPU latency (median after warm-up) of one network. Peak memory: python benchmarks/peak_memory.py.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('-opt', metavar='OPT.yml', help='BasicSR option file; its network_g is profiled')
    source.add_argument('--arch', help='registered arch name (BasicSR or srcomp), e.g. EDSR, SwinIRmini')
    parser.add_argument('--network', default='network_g',
                        help='which network of the option file to profile (default network_g; e.g. network_t)')
    parser.add_argument('--kwargs', default='{}', help='JSON object of the arch kwargs (with --arch)')
    parser.add_argument('--scale', type=int,
                        help='upscaling factor (default: the arch\'s upscale, or the option file\'s scale)')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--out-size', type=parse_hw, default=OUT_HW_720P, metavar='HxW',
                      help='output size the LR input is derived from (default 720x1280)')
    size.add_argument('--lr-size', type=parse_hw, metavar='HxW', help='give the LR input size directly')
    parser.add_argument('--no-latency', action='store_true', help='skip the CPU latency runs')
    parser.add_argument('--no-memory', action='store_true',
                        help='deprecated, does nothing: peak memory is measured by benchmarks/peak_memory.py')
    parser.add_argument('--repeats', type=int, default=10, help='timed forwards (default 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed forwards before timing (default 2)')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: torch\'s current count)')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of a table')
    return parser


def _network_from_args(args):
    """(network_opt, scale, where) from the parsed arguments; ProfileError on bad input."""
    if args.opt:
        opt = read_options(args.opt)
        where = f'{args.opt}: {args.network}'
        if not isinstance(opt.get(args.network), dict):
            raise ProfileError(f'{args.opt} has no "{args.network}" mapping; add one with a "type" key, '
                               'or pick another with --network')
        scale = args.scale if args.scale is not None else opt.get('scale')
        return dict(opt[args.network]), scale, where
    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as err:
        raise ProfileError(f'--kwargs is not valid JSON ({err}): {args.kwargs!r}') from err
    if not isinstance(kwargs, dict):
        raise ProfileError(f'--kwargs must be a JSON object, got {args.kwargs!r}')
    if 'type' in kwargs and kwargs['type'] != args.arch:
        raise ProfileError(f'--kwargs has type {kwargs["type"]!r} but --arch is {args.arch!r}')
    return dict(kwargs, type=args.arch), args.scale, f'--arch {args.arch}'


def _fmt_bytes(n):
    return f'{n / 2**20:.1f} MiB'


def format_table(result):
    """A human-readable table of a :func:`profile_network` result."""
    lr, padded, out = result['lr_hw'], result['padded_lr_hw'], result['out_hw']
    lr_text = f'{lr[0]} x {lr[1]}'
    if padded != lr:
        lr_text += f'  (padded to {padded[0]} x {padded[1]} for window {result["window"]})'
    rows = [
        ('arch', f'{result["arch"]}  x{result["scale"]}'),
        ('parameters', f'{result["params"]:,}  ({_fmt_bytes(result["weights_bytes"])} of weights and buffers)'),
        ('LR input', lr_text),
        ('output', f'{out[0]} x {out[1]}'),
        ('MACs, all matmuls', f'{result["macs"] / 1e9:.2f} G  (attention matmuls included)'),
        ('MACs, conv+linear', f'{result["macs_conv_linear"] / 1e9:.2f} G  (inside Conv/Linear modules only)'),
    ]
    lat = result.get('latency')
    if lat:
        rows.append(('CPU latency', f'{lat["median_s"] * 1e3:.1f} ms median of {lat["repeats"]} '
                     f'(min {lat["min_s"] * 1e3:.1f}, max {lat["max_s"] * 1e3:.1f}; {lat["warmup"]} warm-up, '
                     f'{lat["threads"]} threads)'))
    width = max(len(name) for name, _ in rows)
    lines = [f'{name:<{width}}  {value}' for name, value in rows]
    lines.append(f'MACs = FlopCounterMode FLOPs / 2 for one LR image, counted on {result["macs_counted_on"]}.')
    return '\n'.join(lines)


def _check_scale(scale, where):
    """BasicSR's upsamplers take 2^n and 3: say so before one is built."""
    if scale is not None and (not isinstance(scale, int) or scale < 2 or (scale != 3 and scale & (scale - 1))):
        raise ProfileError(f'{where}: scale {scale} is not supported; BasicSR\'s upsamplers take 2, 3, 4, 8 '
                           '(powers of 2, and 3)')


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.no_memory:
        print(NO_MEMORY_NOTE, file=sys.stderr)
    try:
        network_opt, scale, where = _network_from_args(args)
        _check_scale(scale if scale is not None else network_opt.get('upscale'), where)
        result = profile_network(
            network_opt,
            scale=scale,
            out_hw=args.out_size,
            lr_hw=args.lr_size,
            latency=not args.no_latency,
            repeats=args.repeats,
            warmup=args.warmup,
            threads=args.threads,
            where=where,
            progress=lambda line: print(f'[srcomp profile] {line} ...', file=sys.stderr, flush=True))
    except ProfileError as err:
        print(f'srcomp profile: error: {err}', file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
