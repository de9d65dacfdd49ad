"""``srcomp compress``: stage 2, from a sparse checkpoint to the student and its stage-3 options.

    srcomp compress -opt PRUNE_OPT.yml --checkpoint SPARSE.pth [--ratio R | --params N]
                    [--depth-keep 0.5] [--recipe srcomp|paper] [--init scratch|pruned]
                    --out DISTILL_OPT.yml

A thin shell over :func:`srcomp_plugin.compress.compressor.compress`, whose result
:mod:`srcomp_plugin.compress.writer` writes at ``--out`` (the report beside it); prints the
report as a table (or JSON with ``--json``).
"""
import argparse
import json
import sys

from .compressor import compress_collecting_warnings
from ..errors import CompressError
from .recipes import DEFAULT_RECIPE, INITS, RECIPES
from .report import format_report
from .writer import refuse_to_replace, write_outputs


def _parser():
    parser = argparse.ArgumentParser(
        prog='srcomp compress',
        description='Derive the compact student of a sparse teacher (stage 2) and write a runnable stage-3 '
        '(distillation) option file plus a report.')
    parser.add_argument('-opt', required=True, metavar='PRUNE_OPT.yml',
                        help='the stage-1 option file: its network_g is the teacher, its path.pretrain_network_g '
                        'the dense teacher checkpoint, its datasets/val/logger are copied')
    parser.add_argument('--checkpoint', required=True, metavar='SPARSE.pth',
                        help='the sparse checkpoint of stage 1 (net_g_*.pth); its density sets the ratio')
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument('--ratio', help='target student/teacher params ratio in (0, 1], a decimal or a fraction '
                        'such as 49603/1369859 (default: the target of train.sparsity.structured in -opt, else the '
                        'measured global density)')
    budget.add_argument('--params', type=int, help='an absolute parameter budget instead of a ratio')
    parser.add_argument('--depth-keep', type=float,
                        help='fraction of residual units kept; stages and layers each get its square root where '
                        'both exist (default: train.sparsity.structured.depth_keep of -opt, else 0.5)')
    parser.add_argument('--recipe', choices=RECIPES, default=DEFAULT_RECIPE,
                        help='stage-3 recipe (options/distill/recipe_*.yml): srcomp (default: the student sliced from '
                        'the sparse teacher, L1 to the teacher + L1 to the ground truth, cosine schedule) or paper '
                        '(the release: from scratch, MultiLapLoss + 0.1 L1, MultiStepLR)')
    parser.add_argument('--init', choices=INITS,
                        help="override the recipe's start: scratch (random weights) or pruned (write a student "
                        'checkpoint sliced from the sparse teacher and start from it)')
    parser.add_argument('--out', required=True, metavar='DISTILL_OPT.yml', help='the stage-3 option file to write')
    parser.add_argument('--key', help='state-dict key of the checkpoint (default params: the sparse weights; '
                        'params_ema is not sparse)')
    parser.add_argument('--teacher', metavar='DENSE.pth',
                        help='the dense teacher checkpoint for stage 3 (default: path.pretrain_network_g of -opt)')
    parser.add_argument('--total-iter', type=int,
                        help='stage-3 iterations (default the recipe\'s 800000; the LR schedule ends with it)')
    parser.add_argument('--force', action='store_true',
                        help='replace the files of an earlier run at --out (by default they are kept and this is an '
                        'error)')
    parser.add_argument('--name', help='stage-3 experiment name (default: the stem of --out)')
    parser.add_argument('--no-macs', action='store_true', help='skip the MACs count (seconds for SwinIR-light)')
    parser.add_argument('--json', action='store_true', help='print the report as JSON')
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if not args.force:
            refuse_to_replace(args.out)
        result, said = compress_collecting_warnings(
            args.opt, args.checkpoint, args.out, ratio=args.ratio, params=args.params, depth_keep=args.depth_keep,
            init=args.init, key=args.key, teacher_checkpoint=args.teacher, total_iter=args.total_iter, name=args.name,
            macs=not args.no_macs, recipe=args.recipe)
    except CompressError as err:
        print(f'srcomp compress: {err}', file=sys.stderr)
        return 2
    write_outputs(result)
    for message in said:
        print(f'srcomp compress: warning: {message}', file=sys.stderr)
    print(json.dumps(result.report, indent=1, default=str) if args.json else format_report(result.report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
