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

import torch
import yaml

from ..utils.checkpoint_io import load_checkpoint
from .sparsity import (EDSR_MEASURE, SWINIR_MEASURE, default_measure_patterns, density_report, format_report,
                       infer_family)


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


def load_state_dict(path, key=None):
    """``(state_dict, key)`` stored in ``path``: ``checkpoint[key]`` (default ``params``) or the file itself
    (key ``None``)."""
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: not a state dict (got {type(checkpoint).__name__}).')
    if key is not None:
        if key not in checkpoint:
            raise ValueError(f'{path}: no key {key!r}; keys are {sorted(checkpoint)}.')
        return checkpoint[key], key
    if 'params' in checkpoint and isinstance(checkpoint['params'], dict):
        return checkpoint['params'], 'params'
    if all(torch.is_tensor(v) for v in checkpoint.values()):
        return checkpoint, None
    raise ValueError(f'{path}: no "params" entry and not a plain state dict; pick one of {sorted(checkpoint)} '
                     'with --key.')


def resolve_patterns(state_dict, opt=None, measure=None, arch=None):
    """Measured patterns and arch type from the command line, option file or key names."""
    network_opt = (opt or {}).get('network_g') or {}
    arch = arch or network_opt.get('type')
    if measure:
        return list(measure), arch
    sparsity_opt = ((opt or {}).get('train') or {}).get('sparsity') or {}
    if sparsity_opt.get('measure'):
        patterns = sparsity_opt['measure']
        return ([patterns] if isinstance(patterns, str) else list(patterns)), arch
    if arch:
        return default_measure_patterns(arch), arch
    family = infer_family(state_dict)
    if family == 'EDSR':
        return list(EDSR_MEASURE), arch
    if family == 'SwinIR':
        return list(SWINIR_MEASURE), arch
    raise ValueError('Cannot tell which weights to measure: the checkpoint is neither EDSR- nor SwinIR-shaped. '
                     'Pass --measure GLOB [GLOB ...], --arch TYPE or -opt OPT.yml.')


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        opt = None
        if args.opt:
            with open(args.opt) as f:
                opt = yaml.safe_load(f) or {}
        state_dict, key = load_state_dict(args.checkpoint, args.key)
        patterns, arch = resolve_patterns(state_dict, opt, args.measure, args.arch)
        report = density_report(state_dict, patterns, arch)
    except (OSError, ValueError, yaml.YAMLError) as err:
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
