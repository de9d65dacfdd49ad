"""``srcomp pipeline -opt PIPELINE.yml [--stages prune,compress,distill,test]``."""
import argparse
import sys

from .runner import STAGES, Pipeline, StageFailed
from .stage_options import PipelineOptionError, load_yaml


def build_parser():
    parser = argparse.ArgumentParser(
        prog='srcomp pipeline',
        description='Run prune -> compress -> distill -> test from one option file; finished stages are '
        'skipped and an interrupted stage is resumed.')
    parser.add_argument('-opt', required=True, help='pipeline option file (see options/pipeline/)')
    parser.add_argument('--stages', default=','.join(STAGES), help=f'comma-separated subset of {",".join(STAGES)}')
    parser.add_argument('--force', action='store_true',
                        help='run every stage again, even if finished with the same options (previous runs are '
                        'archived, never deleted)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        pipe = load_yaml(args.opt)
        Pipeline(pipe, force=args.force).run([s.strip() for s in args.stages.split(',') if s.strip()])
    except FileNotFoundError as err:
        print(f'srcomp pipeline: error: {err}', file=sys.stderr)
        return 2
    except PipelineOptionError as err:
        print(f'srcomp pipeline: error in {args.opt}: {err}', file=sys.stderr)
        return 2
    except StageFailed as err:
        print(f'srcomp pipeline: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
