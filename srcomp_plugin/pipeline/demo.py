"""``srcomp demo``: the whole method on scikit-image photographs, on the CPU.

No pretrained SR weights can be downloaded offline, so the demo distils from a stand-in
teacher shipped with the package (an EDSR f64b8 trained here on the demo's own training
photographs, ``options/teacher/train_EDSR_f64b8_x2_demo.yml``), or trains a small one with
``--train-teacher`` (and where no teacher is shipped: ``--arch swinir``, ``--scale 3|4``), or
takes ``--teacher CKPT``. It then runs the real pipeline (``srcomp pipeline``: prune with
OBProx-SG, compress, distill with the default ``srcomp`` recipe, test), distils the same
student with the ``paper`` recipe from the same stage-1 result, trains the student from
scratch for the same iterations, and prints one table: bicubic, teacher, student from
scratch, student via the paper recipe, student via srcomp, with params, MACs at a 1280x720
output, CPU latency and Y-PSNR/SSIM on held-out photographs. The table is also written as
``<workdir>/<tag>_table.md`` and ``<tag>_table.json``.

What it does not show: the paper's PSNR. Fourteen photographs and minutes of CPU training are
not 800k iterations on DIV2K, and the prune is a few hundred steps, so the compression target
is fixed by ``--ratio`` rather than by the measured density. Everything is written under
``--workdir`` (default ``./srcomp_demo``); rerunning reuses what is finished.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from ..errors import SrcompError
from ..measure.bicubic import bicubic_scores
from .demo_data import build_demo_dataset
from .runner import Pipeline, StageFailed, run_command
from .stage_options import deep_merge, load_yaml, save_yaml


class DemoError(SrcompError, ValueError):
    """A demo argument that cannot be used; the message names it."""


BUDGETS = {
    # iterations per training run; 'default' fits ~6 min on 2 cores with the shipped teacher, 'quick'
    # ~2 min. LR patches of 32 give HR patches of 64/96/128, multiples of 16 as MultiLapLoss needs.
    'default': {'teacher': 1000, 'prune': 300, 'student': 1000, 'batch': 8, 'lr_patch': 32, 'print_freq': 100,
                'ema_decay': 0.99},
    'quick': {'teacher': 40, 'prune': 10, 'student': 40, 'batch': 4, 'lr_patch': 32, 'print_freq': 10,
              'ema_decay': 0.9},
}
SCRATCH_LR = 5e-4  # students that start from random weights (scratch, paper) in these short runs
SHIPPED_TEACHERS = {  # (arch, scale) -> the checkpoint in srcomp_plugin/weights and its network_g
    ('edsr', 2): ('EDSR_f64b8_x2_demo.pth', {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64,
                                             'num_block': 8, 'upscale': 2, 'res_scale': 1, 'img_range': 255.}),
}
RATIOS = {'shipped': 0.04, 'trained': 0.2}  # --ratio defaults: the shipped teacher is 6x the trained one
TEACHERS = {
    'edsr': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 4, 'res_scale': 1,
             'img_range': 255.},
    'swinir': {'type': 'SwinIRmini', 'in_chans': 3, 'img_size': 64, 'window_size': 8, 'img_range': 1.,
               'embed_dim': 36, 'depths': [4, 4], 'num_heads': [6, 6], 'mlp_ratio': 2,
               'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'},
}


def _dataset_opts(data, scale, batch, lr_patch):
    train = {'name': 'skimage_train', 'type': 'PairedImageDataset', 'dataroot_gt': str(data['train_gt']),
             'dataroot_lq': str(data['train_lq']), 'filename_tmpl': '{}', 'io_backend': {'type': 'disk'},
             'gt_size': lr_patch * scale, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0,
             'batch_size_per_gpu': batch, 'dataset_enlarge_ratio': 20, 'prefetch_mode': None}
    val = {'name': 'skimage_val', 'type': 'PairedImageDataset', 'dataroot_gt': str(data['val_gt']),
           'dataroot_lq': str(data['val_lq']), 'filename_tmpl': f'{{}}x{scale}', 'io_backend': {'type': 'disk'}}
    return {'train': train, 'val': val}


def _schedule(budget, iters, lr):
    """Adam with a cosine schedule that decays to the last iteration."""
    return {'total_iter': iters, 'warmup_iter': -1, 'ema_decay': budget['ema_decay'],
            'optim_g': {'type': 'Adam', 'lr': lr, 'weight_decay': 0, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [iters], 'restart_weights': [1],
                          'eta_min': 1e-7}}


def _logger(budget, iters):
    return {'print_freq': budget['print_freq'], 'save_checkpoint_freq': iters, 'use_tb_logger': False,
            'wandb': {'project': None, 'resume_id': None}}


def _metrics(scale):
    return {'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True},
            'ssim': {'type': 'calculate_ssim', 'crop_border': scale, 'test_y_channel': True}}


def _train_opt(name, network, datasets, budget, iters, scale, lr=5e-4):
    return {'name': name, 'model_type': 'SRModel', 'scale': scale, 'num_gpu': 0, 'manual_seed': 0,
            'datasets': datasets, 'network_g': network,
            'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
            'train': dict(_schedule(budget, iters, lr),
                          pixel_opt={'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}),
            'val': {'val_freq': iters, 'save_img': False, 'metrics': _metrics(scale)},
            'logger': _logger(budget, iters)}


def _run(cmd, cwd, name, logs):
    """Run a training or test; its output goes to ``logs/<name>.log`` unless ``logs`` is None (--verbose)."""
    log_path = None if logs is None else logs / f'{name}.log'
    if log_path is None:
        print(f'[srcomp demo] $ {" ".join(cmd)}', flush=True)
    else:
        print(f'[srcomp demo] {name}: running (output in {log_path})', flush=True)
    code = run_command(cmd, cwd, log_path)
    if code != 0:
        raise StageFailed(f'command failed (exit {code}): {" ".join(cmd)} (in {cwd}); rerun `srcomp demo` to resume')


def train_if_needed(workdir, opt, logs=None):
    """Train with BasicSR's pipeline unless ``net_g_latest.pth`` exists; resume a partial run."""
    exp = workdir / 'experiments' / opt['name']
    latest = exp / 'models' / 'net_g_latest.pth'
    if latest.is_file():
        print(f'[srcomp demo] {opt["name"]}: already trained, reused', flush=True)
        return latest
    path = workdir / 'options' / f'{opt["name"]}.yml'
    path.parent.mkdir(parents=True, exist_ok=True)
    save_yaml(path, opt)
    _run([sys.executable, '-m', 'srcomp_plugin.train', '-opt', str(path)] + (['--auto_resume'] if exp.is_dir() else []),
         workdir, opt['name'], logs)
    return latest


def test_if_needed(workdir, name, network, checkpoint, datasets, scale, logs=None):
    """Test with BasicSR's pipeline unless results exist; return the results folder."""
    results = workdir / 'results' / name
    if not any(results.glob('test_*.json')):  # the results JSON of srcomp_plugin.test (a log alone is not)
        opt = {'name': name, 'model_type': 'SRModel', 'scale': scale, 'num_gpu': 0, 'manual_seed': 0,
               'datasets': {'test_1': datasets['val']}, 'network_g': network,
               'path': {'pretrain_network_g': str(checkpoint), 'param_key_g': 'params_ema', 'strict_load_g': True},
               'val': {'save_img': False, 'suffix': None, 'metrics': _metrics(scale)}}
        path = workdir / 'options' / f'{name}.yml'
        save_yaml(path, opt)
        _run([sys.executable, '-m', 'srcomp_plugin.test', '-opt', str(path)], workdir, name, logs)
    return results


def infer_edsr_network(checkpoint):
    """The EDSR ``network_g`` of a BasicSR EDSR checkpoint (res_scale cannot be read: assumed 1)."""
    from ..families import EDSRFamily
    from ..utils.checkpoint_io import load_state_dict

    state, _ = load_state_dict(checkpoint, ('params_ema', 'params'))
    network = EDSRFamily.network_from_state_dict(state)
    if network is None:
        raise DemoError(f'--teacher {checkpoint}: not a BasicSR EDSR checkpoint (no conv_first/body keys); '
                        'give --teacher-opt with its network_g')
    return network


def build_parser():
    parser = argparse.ArgumentParser(prog='srcomp demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', choices=sorted(TEACHERS), default='edsr')
    parser.add_argument('--scale', type=int, choices=(2, 3, 4), default=2)
    parser.add_argument('--quick', action='store_true', help='a ~2 minute smoke run (tiny budgets: every model '
                        'ends below bicubic, which is expected)')
    teacher = parser.add_mutually_exclusive_group()
    teacher.add_argument('--teacher', help='use this trained teacher checkpoint instead of the shipped one')
    teacher.add_argument('--train-teacher', action='store_true',
                         help='train a small teacher here (minutes) instead of using the shipped one')
    parser.add_argument('--teacher-opt', help="option file whose network_g describes --teacher (needed for SwinIR)")
    parser.add_argument('--ratio', type=float,
                        help=f'compression target (fraction of teacher params; default {RATIOS["shipped"]} with the '
                        f'shipped teacher, {RATIOS["trained"]} with a teacher trained here)')
    parser.add_argument('--workdir', default='srcomp_demo', help='everything is written here (default ./srcomp_demo)')
    parser.add_argument('--no-latency', action='store_true', help='skip the 720p CPU latency column')
    parser.add_argument('--verbose', action='store_true',
                        help="show BasicSR's output of every training and test (by default it goes to <workdir>/logs/)")
    return parser


def shipped_teacher(arch, scale):
    """``(checkpoint, network_g)`` of the teacher shipped for ``arch`` at ``scale``, or None."""
    entry = SHIPPED_TEACHERS.get((arch, scale))
    if entry is None:
        return None
    path = Path(__file__).resolve().parents[1] / 'weights' / entry[0]
    return (path, dict(entry[1])) if path.is_file() else None


def choose_teacher(args, workdir, tag, datasets, budget, scale, logs=None):
    """``(network_g, checkpoint, source)``: --teacher, the shipped teacher, or one trained here."""
    if args.teacher:
        teacher_net = (dict(load_yaml(args.teacher_opt)['network_g']) if args.teacher_opt
                       else infer_edsr_network(args.teacher))
        return teacher_net, Path(args.teacher).resolve(), 'given'
    shipped = None if args.train_teacher else shipped_teacher(args.arch, scale)
    if shipped is not None:
        return shipped[1], shipped[0], 'shipped'
    if not args.train_teacher:
        print(f'[srcomp demo] no teacher is shipped for --arch {args.arch} --scale {scale}: training one here',
              flush=True)
    teacher_net = dict(TEACHERS[args.arch], upscale=scale)
    checkpoint = train_if_needed(workdir, _train_opt(f'{tag}_teacher', teacher_net, datasets, budget,
                                                     budget['teacher'], scale), logs)
    return teacher_net, checkpoint, 'trained'


def _student_overrides(datasets, budget, lr=None):
    """What the demo changes in a stage-3 option file: its data, logging, and (from scratch) the lr."""
    train = {'ema_decay': budget['ema_decay']}
    if lr is not None:
        train['optim_g'] = {'lr': lr}
    return {'datasets': datasets, 'train': train, 'val': {'val_freq': budget['student']},
            'logger': _logger(budget, budget['student'])}


def distill_paper(workdir, pipeline, tag, ratio, datasets, budget, logs=None):
    """The ``paper`` recipe from the pipeline's own stage-1 result: compress, then distil."""
    from ..compress import compress, write_outputs

    out = workdir / 'options' / f'{tag}_paper_generated.yml'
    if not out.is_file():
        write_outputs(compress(pipeline.option_file('prune'), pipeline.final_checkpoint('prune'), out, ratio=ratio,
                               recipe='paper', total_iter=budget['student'], name=f'{tag}_paper', macs=False))
    opt = deep_merge(load_yaml(out), _student_overrides(datasets, budget, lr=SCRATCH_LR))
    return opt['network_g'], train_if_needed(workdir, opt, logs)


def run_demo(args):
    start = time.time()
    budget = BUDGETS['quick' if args.quick else 'default']
    scale = args.scale
    workdir = Path(args.workdir).resolve()
    if workdir.exists() and not workdir.is_dir():
        raise DemoError(f'--workdir {args.workdir} is a file; give a folder (it is created if missing)')
    tag = f'demo_{args.arch}_x{scale}' + ('_quick' if args.quick else '')
    logs = None if args.verbose else workdir / 'logs'
    print(f'[srcomp demo] working in {workdir} ({tag})' + ('' if logs is None else
          f"; BasicSR's output of each run goes to {logs}/ (--verbose shows it)"), flush=True)
    data = build_demo_dataset(workdir / 'datasets' / f'x{scale}', scale)
    datasets = _dataset_opts(data, scale, budget['batch'], budget['lr_patch'])

    # 1. teacher
    teacher_net, teacher_ckpt, source = choose_teacher(args, workdir, tag, datasets, budget, scale, logs)
    ratio = args.ratio or RATIOS['shipped' if source == 'shipped' else 'trained']
    print(f'[srcomp demo] teacher: {teacher_net["type"]} ({source}) {teacher_ckpt}; target ratio {ratio}', flush=True)

    # 2. the method with the default recipe: prune -> compress -> distill -> test, through `srcomp pipeline`
    pipe = {
        'name': tag, 'scale': scale, 'num_gpu': 0, 'manual_seed': 0, 'recipe': 'srcomp',
        'teacher': {'network': teacher_net, 'checkpoint': str(teacher_ckpt), 'param_key': 'params_ema'},
        'datasets': datasets,
        'prune': {'train': {'total_iter': budget['prune'], 'ema_decay': budget['ema_decay'],
                            'scheduler': {'milestones': [10 ** 9]}},
                  'val': {'val_freq': budget['prune']}, 'logger': _logger(budget, budget['prune'])},
        'compress': {'ratio': ratio, 'depth_keep': 0.5},
        'distill': deep_merge(_student_overrides(datasets, budget), {'train': {'total_iter': budget['student']}}),
    }
    pipeline = Pipeline(pipe, root=workdir, log=lambda m: print(m, flush=True), output_dir=logs)
    pipeline.run()
    student_net = load_yaml(pipeline.option_file('distill'))['network_g']

    # 3. the same student via the paper's recipe, from the same stage-1 result
    paper_net, paper_ckpt = distill_paper(workdir, pipeline, tag, ratio, datasets, budget, logs)

    # 4. the same student trained from scratch (L1 to ground truth only), same iterations
    scratch_ckpt = train_if_needed(workdir, _train_opt(f'{tag}_scratch', student_net, datasets, budget,
                                                       budget['student'], scale, lr=SCRATCH_LR), logs)

    # 5. evaluation
    bicubic = bicubic_scores(data['val_gt'], data['val_lq'], scale, f'{{}}x{scale}', ssim=True)
    rows = [('bicubic', None, None, (bicubic['psnr'], bicubic['ssim']))]
    for role, net, ckpt, results in (
            ('teacher', teacher_net, teacher_ckpt, None),
            ('scratch', student_net, scratch_ckpt, None),
            ('paper', paper_net, paper_ckpt, None),
            ('srcomp', student_net, pipeline.final_checkpoint('distill'), pipeline.results_dir())):
        results = results or test_if_needed(workdir, f'{tag}_{role}_test', net, ckpt, datasets, scale, logs)
        rows.append((role, net, ckpt, read_test_scores(results)))
    records = table_records(rows, scale, latency=not args.no_latency)
    for record in records:
        record['compute'] = row_compute(record['role'], teacher_net, student_net, budget, scale)
    table = format_table(records)
    elapsed = time.time() - start
    print(table)
    if args.quick:
        print('\n[srcomp demo] --quick trains every model for a few dozen iterations: they end below bicubic, as '
              'expected of a smoke run. Run without --quick for the comparison.')
    by_role = {r['role']: r for r in records}
    print(f'\n[srcomp demo] {COMPUTE_NOTE} The srcomp student took '
          f"{by_role['srcomp']['compute'] / by_role['scratch']['compute']:.1f}x the compute of the student from "
          f'scratch; for the comparison at equal compute see benchmarks/QUALITY.md.')
    print(f'\n[srcomp demo] finished in {elapsed / 60:.1f} min; outputs under {workdir}')
    (workdir / f'{tag}_table.md').write_text(table + f'\n\nwall time: {elapsed:.0f} s\n')
    (workdir / f'{tag}_table.json').write_text(json.dumps(records, indent=1) + '\n')
    return records


def read_test_scores(results_dir):
    """Mean (PSNR, SSIM) of the newest test run in ``results_dir`` (its one test set)."""
    from ..utils.test_results import newest_metrics

    metrics = next(iter(newest_metrics(results_dir).values()))
    return metrics['psnr'], metrics['ssim']


ROLE_LABELS = {'bicubic': 'bicubic', 'teacher': 'teacher', 'scratch': 'student from scratch',
               'paper': 'student via paper recipe', 'srcomp': 'student via srcomp'}


def table_records(rows, scale, latency=True):
    """One dict per row: ``role``, ``psnr``, ``ssim``, ``params``, ``macs`` (None for bicubic), ``latency_s``."""
    from ..measure.complexity import profile_network

    profiles = {}  # the students share one network: profile it once
    records = []
    for role, net, _, (psnr, ssim) in rows:
        record = {'role': role, 'psnr': psnr, 'ssim': ssim, 'params': None, 'macs': None, 'latency_s': None}
        if net is not None:
            key = repr(sorted(net.items()))
            if key not in profiles:
                profiles[key] = profile_network(dict(net), scale=scale, latency=latency, repeats=3, warmup=1)
            prof = profiles[key]
            record.update(params=int(prof['params']), macs=float(prof['macs']),
                          latency_s=prof['latency']['median_s'] if latency else None)
        records.append(record)
    return records


COMPUTE_NOTE = ('training compute: MACs of every forward and backward of the row\'s training (stage 1, each '
                'teacher forward, stage 3), in steps of the from-scratch student (srcomp_plugin/measure/'
                'training_cost.py); the teacher\'s own training is not counted.')


def row_compute(role, teacher_net, student_net, budget, scale):
    """Training compute of a table row in scratch-step equivalents (None: bicubic, the teacher).

    ``srcomp`` and ``paper`` both start from the same stage 1 (charged to each in full) and
    distil from the live teacher at every step; ``scratch`` trains the student alone.
    """
    from ..measure import training_cost

    if role not in ('scratch', 'paper', 'srcomp'):
        return None
    batch, patch = budget['batch'], budget['lr_patch']
    student_step = training_cost.train_step_macs(student_net, batch, patch, scale)
    if role == 'scratch':
        return float(budget['student'])
    macs = (budget['prune'] * training_cost.train_step_macs(teacher_net, batch, patch, scale)
            + budget['student'] * training_cost.distill_step_macs(student_net, teacher_net, batch, patch, scale))
    return training_cost.scratch_steps(macs, student_step)


def format_table(records):
    """The records as a markdown table."""
    lines = ['| model | params | MACs @1280x720 (G) | CPU latency 720p (s) | training compute | Y-PSNR (dB) | Y-SSIM |',
             '|---|---|---|---|---|---|---|']
    for r in records:
        params = '-' if r['params'] is None else f"{r['params']:,}"
        macs = '-' if r['macs'] is None else f"{r['macs'] / 1e9:.2f}"
        lat = '-' if r['latency_s'] is None else f"{r['latency_s']:.3f}"
        compute = '-' if r.get('compute') is None else f"{r['compute']:,.0f}"
        lines.append(f"| {ROLE_LABELS[r['role']]} | {params} | {macs} | {lat} | {compute} | {r['psnr']:.2f} "
                     f"| {r['ssim']:.4f} |")
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        run_demo(args)
    except SrcompError as err:
        print(f'srcomp demo: error: {err}', file=sys.stderr)
        return 2
    except (StageFailed, ValueError) as err:
        print(f'srcomp demo: error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
