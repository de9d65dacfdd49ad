"""A short, real distillation run on CPU: loss and Set5 PSNR curves, KD against plain L1.

    python benchmarks/kd_cpu_run.py --work /tmp/kd_cpu [--iters 1000] [--teacher-iters 1500]

No pretrained weights exist offline, so the run is self-contained and small:

1. ``srcomp prepare`` on ``shared/datasets/BSD68/HR`` (x2, MATLAB bicubic): the training set.
2. A teacher trained here: BasicSR ``EDSR`` f32b4 (SRModel, L1), stand-in for EDSR-M.
3. ``EDSRmini`` students from scratch with identical settings: ``DistillSRModel``
   (MultiLap to the teacher + 0.1 L1, the paper's loss) and ``SRModel`` (L1 only).
4. Validation on Set5 (published LR_bicubic/X2), Y-channel PSNR, border 2.

Everything runs through ``python -m srcomp_plugin.train``. Short-run departures from the
release, applied to both students alike: batch 8, HR patch 64, lr 5e-4, EMA 0.99.
Writes ``<work>/kd_cpu_run.json`` and prints the curves.
"""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'datasets'


def _opt(name, model_type, network_g, train_gt, train_lq, iters, val_freq, **extra):
    opt = {
        'name': name, 'model_type': model_type, 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'BSD68', 'type': 'PairedImageDataset', 'dataroot_gt': str(train_gt),
                      'dataroot_lq': str(train_lq), 'filename_tmpl': '{}x2', 'io_backend': {'type': 'disk'},
                      'gt_size': 64, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 1,
                      'batch_size_per_gpu': 8, 'dataset_enlarge_ratio': 50, 'prefetch_mode': None},
            'val': {'name': 'Set5', 'type': 'PairedImageDataset', 'dataroot_gt': str(SHARED / 'Set5' / 'HR'),
                    'dataroot_lq': str(SHARED / 'Set5' / 'LR_bicubic' / 'X2'), 'filename_tmpl': '{}x2',
                    'io_backend': {'type': 'disk'}},
        },
        'network_g': network_g,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0.99,
                  'optim_g': {'type': 'Adam', 'lr': 5e-4, 'weight_decay': 0, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10**9], 'gamma': 0.5},
                  'total_iter': iters, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': val_freq, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
        'logger': {'print_freq': 50, 'save_checkpoint_freq': iters, 'use_tb_logger': False,
                   'wandb': {'project': None, 'resume_id': None}},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(opt.get(key), dict):
            opt[key].update(value)
        else:
            opt[key] = value
    return opt


def _train(work, opt):
    path = work / f'{opt["name"]}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    steps = [['srcomp_plugin.train', '-opt', str(path)]]
    if opt['train'].get('teacher_cache'):  # the cache is filled before training
        steps.insert(0, ['srcomp_plugin.cli', 'teacher-cache', '-opt', str(path)])
    for step in steps:
        proc = subprocess.run([sys.executable, '-m', *step], cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f'{opt["name"]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc.stdout + proc.stderr


def _curves(log):
    losses = {}
    for line in log.splitlines():
        m = re.search(r'iter:\s*([\d,]+),', line)
        if m:
            it = int(m.group(1).replace(',', ''))
            losses[str(it)] = {k: float(v) for k, v in re.findall(r'(l_\w+): ([0-9.e+-]+)', line)}
    psnr = [float(v) for v in re.findall(r'# psnr: ([0-9.]+)', log)]
    return losses, psnr


def bicubic_psnr():
    """Set5 Y-PSNR of MATLAB-style bicubic x2 upscaling of the same LR images (the floor)."""
    from srcomp_plugin.measure.bicubic import bicubic_scores

    return bicubic_scores(SHARED / 'Set5' / 'HR', SHARED / 'Set5' / 'LR_bicubic' / 'X2', 2, '{}x2')['psnr']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work', required=True)
    parser.add_argument('--iters', type=int, default=1000)
    parser.add_argument('--teacher-iters', type=int, default=1500)
    parser.add_argument('--val-freq', type=int, default=100)
    parser.add_argument('--runs', nargs='+', choices=('kd', 'l1', 'kd_cache'), default=['kd', 'l1', 'kd_cache'])
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)

    data = work / 'bsd68_x2'
    if not data.is_dir():
        from srcomp_plugin.data.prepare import prepare_dataset
        prepare_dataset(SHARED / 'BSD68' / 'HR', data, scales=(2,), progress=False)
    train_gt, train_lq = data / 'HR', data / 'LR_bicubic' / 'X2'

    teacher_net = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 4, 'upscale': 2,
                   'res_scale': 1, 'img_range': 255., 'rgb_mean': [0.4488, 0.4371, 0.4040]}
    teacher_ckpt = work / 'experiments' / 'teacher_EDSR_f32b4' / 'models' / 'net_g_latest.pth'
    out = work / 'kd_cpu_run.json'
    results = json.loads(out.read_text()) if out.is_file() else {}
    results['bicubic_psnr'] = bicubic_psnr()
    if not teacher_ckpt.is_file():
        log = _train(work, _opt('teacher_EDSR_f32b4', 'SRModel', teacher_net, train_gt, train_lq,
                                args.teacher_iters, args.teacher_iters))
        results['teacher_psnr'] = _curves(log)[1]

    student = {'type': 'EDSRmini', 'upscale': 2}
    kd = _opt('student_kd', 'DistillSRModel', student, train_gt, train_lq, args.iters, args.val_freq,
              network_t=teacher_net,
              path={'pretrain_network_t': str(teacher_ckpt), 'param_key_t': 'params_ema'},
              train={'distill_opt': {'type': 'MultiLapLoss', 'loss_weight': 1.0},
                     'pixel_opt': {'type': 'L1Loss', 'loss_weight': 0.1, 'reduction': 'mean'}})
    plain = _opt('student_l1', 'SRModel', student, train_gt, train_lq, args.iters, args.val_freq)
    cached = json.loads(json.dumps(kd))  # the KD run again, targets from train.teacher_cache
    cached['name'] = 'student_kd_cache'
    cached['datasets']['train'].update(type='DistillPairedImageDataset',
                                       dataroot_teacher=str(work / 'teacher_cache_x2'))
    cached['train']['teacher_cache'] = {'format': 'png'}
    runs = {'kd': kd, 'l1': plain, 'kd_cache': cached}
    for name in args.runs:
        losses, psnr = _curves(_train(work, runs[name]))
        results[name] = {'losses': losses, 'psnr': psnr}

    out.write_text(json.dumps(results, indent=1))
    shown = [name for name in ('kd', 'kd_cache', 'l1') if name in results]
    print(f'{"iter":>6} {"l_distill":>10} {"l_pix(x0.1)":>11} ' + ' '.join(f'{n + " PSNR":>13}' for n in shown))
    for i, it in enumerate(range(args.val_freq, args.iters + 1, args.val_freq)):
        row = results.get('kd', {}).get('losses', {}).get(str(it), {})
        psnrs = ' '.join(f'{results[n]["psnr"][i]:>13.3f}' for n in shown)
        print(f'{it:>6} {row.get("l_distill", float("nan")):>10.4f} {row.get("l_pix", float("nan")):>11.5f} {psnrs}')
    if 'teacher_psnr' in results:
        print(f'teacher (EDSR f32b4) Set5 PSNR: {results["teacher_psnr"][-1]:.3f}')
    print(f'bicubic Set5 PSNR: {results["bicubic_psnr"]:.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
