"""The demo's three students again with other seeds: is the demo's ranking more than one seed's luck?

    srcomp demo --workdir DEMO            # first, once (seed 0)
    python benchmarks/demo_seeds.py --workdir DEMO --seeds 1 2

Reuses the demo's teacher, stage-1 result and generated option files (the stage-1 result is
shared, as in ``benchmarks/quality.py``); for each seed it retrains the scratch, paper and
srcomp students with ``manual_seed`` changed (data order, crops and the random init differ),
tests them through ``python -m srcomp_plugin.test`` on the demo's held-out photographs, and
prints mean ± std over the seeds together with the demo's own seed-0 row. Writes
``DEMO/<tag>_seeds.json``.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import srcomp_plugin  # noqa: F401  (registries and the torchvision alias before BasicSR)
from srcomp_plugin.pipeline.demo import read_test_scores, test_if_needed, train_if_needed
from srcomp_plugin.pipeline.stage_options import load_yaml

ROLES = ('scratch', 'paper', 'srcomp')


def option_files(workdir, tag):
    """The demo's seed-0 training option file of each student role."""
    return {'scratch': workdir / 'options' / f'{tag}_scratch.yml', 'paper': workdir / 'options' / f'{tag}_paper.yml',
            'srcomp': workdir / 'experiments' / tag / 'options' / 'distill.yml'}


def run_seed(workdir, tag, seed):
    """``{role: (psnr, ssim)}`` of the three students trained with ``manual_seed: seed``."""
    scores = {}
    for role, path in option_files(workdir, tag).items():
        opt = load_yaml(path)
        opt.update(name=f'{tag}_{role}_seed{seed}', manual_seed=seed)
        checkpoint = train_if_needed(workdir, opt)
        val = opt['datasets']['val']
        results = test_if_needed(workdir, f'{opt["name"]}_test', opt['network_g'], checkpoint, {'val': val},
                                 opt['scale'])
        scores[role] = read_test_scores(results)
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', default='srcomp_demo', help='the demo\'s --workdir (default ./srcomp_demo)')
    parser.add_argument('--tag', default='demo_edsr_x2', help='the demo run to repeat (default demo_edsr_x2)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[1, 2])
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    table = workdir / f'{args.tag}_table.json'
    if not table.is_file():
        sys.exit(f'{table} is missing: run `srcomp demo --workdir {args.workdir}` first')
    seed0 = {r['role']: (r['psnr'], r['ssim']) for r in json.loads(table.read_text())}
    per_seed = {0: {role: seed0[role] for role in ROLES}}
    for seed in args.seeds:
        per_seed[seed] = run_seed(workdir, args.tag, seed)
    print(f'| model | Y-PSNR per seed {sorted(per_seed)} (dB) | mean ± std |\n|---|---|---|')
    for role in ('bicubic', 'teacher') + ROLES:
        values = [per_seed[s][role][0] for s in sorted(per_seed)] if role in ROLES else [seed0[role][0]]
        spread = f' ± {statistics.stdev(values):.2f}' if len(values) > 1 else ''
        print(f'| {role} | {" / ".join(f"{v:.2f}" for v in values)} | {statistics.mean(values):.2f}{spread} |')
    out = workdir / f'{args.tag}_seeds.json'
    out.write_text(json.dumps({'seed0_table': seed0, 'per_seed': per_seed}, indent=1) + '\n')
    print(f'written {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
