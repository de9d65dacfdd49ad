"""``srcomp demo``: the whole method on scikit-image photographs, on the CPU.

No pretrained SR weights can be downloaded offline, so the demo first trains a small
teacher (or takes ``--teacher CKPT``), then runs the real pipeline (``srcomp pipeline``:
prune with OBProx-SG, compress, distill with MultiLapLoss + 0.1 L1, test), trains the same
student from scratch for the same iterations, and prints one table: bicubic, teacher,
student from scratch, student via the workflow, with params, MACs at a 1280x720 output,
CPU latency and Y-PSNR/SSIM on held-out photographs.

What it shows: every stage running through BasicSR's own pipelines, and the compact model's
size and speed. What it does not show: the paper's PSNR. The teacher is tiny and trained
for minutes on 14 photographs, the prune is a few hundred steps (so the compression target
is fixed by ``--ratio``, default 0.2, rather than the measured density, which a short prune
cannot drive down), and a few minutes of distillation cannot reproduce 800k iterations on
DIV2K. Everything is written under ``--workdir`` (default ``./srcomp_demo``); rerunning
reuses what is finished.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from .demo_data import build_demo_dataset
from .runner import Pipeline, StageFailed
from .stage_options import save_yaml

BUDGETS = {
    # iterations per training run; 'default' fits ~15 min on 2 cores, 'quick' ~3 min. LR patches of
    # 32 give HR patches of 64/96/128, multiples of 16 as MultiLapLoss needs.
    'default': {'teacher': 1000, 'prune': 200, 'student': 800, 'batch': 8, 'lr_patch': 32, 'print_freq': 50,
                'ema_decay': 0.99},
    'quick': {'teacher': 40, 'prune': 10, 'student': 40, 'batch': 4, 'lr_patch': 32, 'print_freq': 10,
              'ema_decay': 0.9},
}
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
    return {'total_iter': iters, 'warmup_iter': -1, 'ema_decay': budget['ema_decay'],
            'optim_g': {'type': 'Adam', 'lr': lr, 'weight_decay': 0, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [max(1, int(iters * 0.8))], 'gamma': 0.5}}


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
            'train': dict(_schedule(budget, iters, lr), pixel_opt={'type': 'L1Loss', 'loss_weight': 1.0,
                                                            'reduction': 'mean'}),
            'val': {'val_freq': iters, 'save_img': False, 'metrics': _metrics(scale)},
            'logger': _logger(budget, iters)}


def _run(cmd, cwd):
    print(f'[srcomp demo] $ {" ".join(cmd)}', flush=True)
    if subprocess.run(cmd, cwd=cwd).returncode != 0:
        raise StageFailed(f'command failed: {" ".join(cmd)} (in {cwd}); rerun `srcomp demo` to resume')


def train_if_needed(workdir, opt):
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
         workdir)
    return latest


def test_if_needed(workdir, name, network, checkpoint, datasets, scale):
    """Test with BasicSR's pipeline unless results exist; return the results folder."""
    results = workdir / 'results' / name
    if not any(results.glob('test_*.log')):
        opt = {'name': name, 'model_type': 'SRModel', 'scale': scale, 'num_gpu': 0, 'manual_seed': 0,
               'datasets': {'test_1': datasets['val']}, 'network_g': network,
               'path': {'pretrain_network_g': str(checkpoint), 'param_key_g': 'params_ema', 'strict_load_g': True},
               'val': {'save_img': False, 'suffix': None, 'metrics': _metrics(scale)}}
        path = workdir / 'options' / f'{name}.yml'
        save_yaml(path, opt)
        _run([sys.executable, '-m', 'srcomp_plugin.test', '-opt', str(path)], workdir)
    return results


def bicubic_scores(data, scale):
    """Mean Y-PSNR/SSIM of MATLAB-bicubic upscaling on the held-out images (crop = scale)."""
    import cv2
    import numpy as np

    import srcomp_plugin  # noqa: F401
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils.matlab_functions import imresize

    psnr, ssim = [], []
    for gt_path in sorted(Path(data['val_gt']).glob('*.png')):
        gt = cv2.imread(str(gt_path))
        lq = cv2.imread(str(Path(data['val_lq']) / f'{gt_path.stem}x{scale}.png'))
        sr = np.clip(np.round(imresize(lq / 255., scale) * 255.), 0, 255)[:gt.shape[0], :gt.shape[1]]
        psnr.append(calculate_psnr(sr, gt, crop_border=scale, test_y_channel=True))
        ssim.append(calculate_ssim(sr, gt, crop_border=scale, test_y_channel=True))
    return float(np.mean(psnr)), float(np.mean(ssim))


def infer_edsr_network(checkpoint):
    """The EDSR shape of a BasicSR EDSR checkpoint (res_scale cannot be read: assumed 1)."""
    import torch

    state = torch.load(checkpoint, map_location='cpu')
    state = state.get('params_ema', state.get('params', state))
    if 'conv_first.weight' not in state or not any(k.startswith('body.') for k in state):
        raise ValueError(f'--teacher {checkpoint}: not a BasicSR EDSR checkpoint (no conv_first/body keys); '
                         'give --teacher-opt with its network_g')
    num_feat = state['conv_first.weight'].shape[0]
    num_block = len({k.split('.')[1] for k in state if k.startswith('body.')})
    ups = sorted(k for k in state if k.startswith('upsample.') and k.endswith('weight'))
    factor = state[ups[0]].shape[0] // num_feat
    scale = {4: 2 ** len(ups), 9: 3}[factor]
    return {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': num_feat, 'num_block': num_block,
            'upscale': scale, 'res_scale': 1, 'img_range': 255.}


def build_parser():
    parser = argparse.ArgumentParser(prog='srcomp demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', choices=sorted(TEACHERS), default='edsr')
    parser.add_argument('--scale', type=int, choices=(2, 3, 4), default=2)
    parser.add_argument('--quick', action='store_true', help='a ~3 minute smoke run (tiny budgets)')
    parser.add_argument('--teacher', help='use this trained teacher checkpoint instead of training one')
    parser.add_argument('--teacher-opt', help="option file whose network_g describes --teacher (needed for SwinIR)")
    parser.add_argument('--ratio', type=float, default=0.2, help='compression target (fraction of teacher params)')
    parser.add_argument('--workdir', default='srcomp_demo', help='everything is written here (default ./srcomp_demo)')
    parser.add_argument('--no-latency', action='store_true', help='skip the 720p CPU latency column')
    return parser


def run_demo(args):
    start = time.time()
    budget = BUDGETS['quick' if args.quick else 'default']
    scale = args.scale
    workdir = Path(args.workdir).resolve()
    tag = f'demo_{args.arch}_x{scale}' + ('_quick' if args.quick else '')
    print(f'[srcomp demo] working in {workdir} ({tag})', flush=True)
    data = build_demo_dataset(workdir / 'datasets' / f'x{scale}', scale)
    datasets = _dataset_opts(data, scale, budget['batch'], budget['lr_patch'])

    # 1. teacher
    if args.teacher:
        if args.teacher_opt:
            from .stage_options import load_yaml
            teacher_net = dict(load_yaml(args.teacher_opt)['network_g'])
        else:
            teacher_net = infer_edsr_network(args.teacher)
        teacher_ckpt = Path(args.teacher).resolve()
    else:
        teacher_net = dict(TEACHERS[args.arch], upscale=scale)
        teacher_ckpt = train_if_needed(workdir, _train_opt(f'{tag}_teacher', teacher_net, datasets, budget,
                                                           budget['teacher'], scale))

    # 2. the method: prune -> compress -> distill -> test, through `srcomp pipeline`
    pipe = {
        'name': tag, 'scale': scale, 'num_gpu': 0, 'manual_seed': 0,
        'teacher': {'network': teacher_net, 'checkpoint': str(teacher_ckpt), 'param_key': 'params_ema'},
        'datasets': datasets,
        'prune': {'train': {'total_iter': budget['prune'], 'ema_decay': budget['ema_decay'],
                            'optim_g': {'lr': 5e-3, 'lambda_': 5e-3, 'epoch_size': 'auto', 'Np': 1},
                            'scheduler': {'milestones': [10 ** 9]}},
                  'val': {'val_freq': budget['prune']}, 'logger': _logger(budget, budget['prune'])},
        'compress': {'ratio': args.ratio, 'depth_keep': 0.5, 'init': 'scratch'},
        'distill': {'datasets': datasets, 'train': _schedule(budget, budget['student'], 5e-4),
                    'val': {'val_freq': budget['student']}, 'logger': _logger(budget, budget['student'])},
    }
    pipeline = Pipeline(pipe, root=workdir, log=lambda m: print(m, flush=True))
    pipeline.run()
    from .stage_options import load_yaml
    student_net = load_yaml(pipeline.option_file('distill'))['network_g']

    # 3. the same student trained from scratch (L1 to ground truth only), same iterations
    scratch_ckpt = train_if_needed(workdir, _train_opt(f'{tag}_scratch', student_net, datasets, budget,
                                                       budget['student'], scale))

    # 4. evaluation
    rows = [('bicubic', None, None, bicubic_scores(data, scale))]
    for label, net, ckpt, results in (
            ('teacher', teacher_net, teacher_ckpt, None),
            ('student from scratch', student_net, scratch_ckpt, None),
            ('student via srcomp', student_net, pipeline.final_checkpoint('distill'), pipeline.results_dir())):
        name = results.name if results else f'{tag}_{label.split()[-1]}_test'
        results = results or test_if_needed(workdir, name, net, ckpt, datasets, scale)
        rows.append((label, net, ckpt, read_test_scores(results)))
    table = format_table(rows, scale, latency=not args.no_latency)
    elapsed = time.time() - start
    print(table)
    print(f'\n[srcomp demo] finished in {elapsed / 60:.1f} min; outputs under {workdir}')
    (workdir / f'{tag}_table.md').write_text(table + f'\n\nwall time: {elapsed:.0f} s\n')
    return rows


def read_test_scores(results_dir):
    """Mean (PSNR, SSIM) from the newest BasicSR test log in ``results_dir``."""
    from .report import find_test_logs, parse_test_log

    metrics = next(iter(parse_test_log(find_test_logs(results_dir)[0])['validations'].values()))
    return metrics['psnr'], metrics['ssim']


def format_table(rows, scale, latency=True):
    from ..measure.complexity import profile_network

    head = '| model | params | MACs @1280x720 (G) | CPU latency 720p (s) | Y-PSNR (dB) | Y-SSIM |'
    lines = [head, '|---|---|---|---|---|---|']
    profiles = {}  # both students share one network: profile it once
    for label, net, _, (psnr, ssim) in rows:
        if net is None:
            params = macs = lat = '-'
        else:
            key = repr(sorted(net.items()))
            if key not in profiles:
                profiles[key] = profile_network(dict(net), scale=scale, latency=latency, memory=False, repeats=3,
                                                warmup=1)
            prof = profiles[key]
            params = f'{prof["params"]:,}'
            macs = f"{prof['macs'] / 1e9:.2f}"
            lat = f'{prof["latency"]["median_s"]:.3f}' if latency else '-'
        lines.append(f'| {label} | {params} | {macs} | {lat} | {psnr:.2f} | {ssim:.4f} |')
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        run_demo(args)
    except (StageFailed, ValueError) as err:
        print(f'srcomp demo: error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
