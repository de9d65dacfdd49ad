"""``srcomp sparsity CHECKPOINT [-opt OPT.yml]``: the density report of any checkpoint.

The same report as the ``models/sparsity_{iter}.json`` files of a stage-1 run
(:func:`srcomp_plugin.measure.sparsity.density_report`), printed as a table, or as JSON
with ``--json``. Which tensors are measured comes from, in order: ``--measure``, the
option file's ``train.sparsity.measure``, the default of its ``network_g.type`` (EDSR
``body.*.weight``, SwinIR ``layers.*weight``), or, without an option file, the default of
the family recognised from the checkpoint's key names.
"""
import argparse
import json
import sys

from ..utils.checkpoint_io import load_state_dict
from ..utils.safe_yaml import read_options
from .sparsity import density_report, format_report, resolve_patterns


def _parser():
    parser = argparse.ArgumentParser(
        prog='srcomp sparsity',
        description='Density (fraction of exactly non-zero weights) of a checkpoint: global, per block, '
                    'per tensor and per output channel.')
    parser.add_argument('checkpoint', help='a BasicSR net_g_*.pth (params/params_ema) or a plain state dict')
    parser.add_argument('-opt', help='option file (training or test) whose network_g and train.sparsity apply')
    parser.add_argument('--key', default=None,
                        help='state-dict key inside the checkpoint (default: params, the trained weights; '
                             'params_ema for the EMA copy)')
    parser.add_argument('--measure', nargs='+', metavar='GLOB',
                        help="parameter-name globs to measure ('*' also matches dots), e.g. 'body.*.weight'")
    parser.add_argument('--arch', help='arch type for block grouping and default patterns (default: from -opt)')
    parser.add_argument('--json', action='store_true', help='print the report as JSON')
    parser.add_argument('--no-tensors', action='store_true', help='table: leave out the per-tensor rows')
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        opt = read_options(args.opt) if args.opt else None
        state_dict, key = load_state_dict(args.checkpoint, (args.key or 'params', ))
        patterns, arch = resolve_patterns(state_dict, opt, args.measure, args.arch)
        report = density_report(state_dict, patterns, arch)
    except (OSError, ValueError) as err:
        print(f'srcomp sparsity: {err}', file=sys.stderr)
        return 2
    report = dict(checkpoint=str(args.checkpoint), key=key, **report)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f'{args.checkpoint}')
        print(format_report(report, per_tensor=not args.no_tensors))
    return 0


if __name__ == '__main__':
    sys.exit(main())
