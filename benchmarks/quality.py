"""The quality ablation: does a compressed student beat the same student trained alone?

    python benchmarks/quality.py                       # everything not yet in the JSON, two runs at a time
    python benchmarks/quality.py --budgets 1000 --seeds 0 --arms scratch srcomp   # a slice of it
    python benchmarks/quality.py --table               # only rewrite benchmarks/QUALITY.md from the JSON
    python benchmarks/quality.py --smoke --work /tmp/q # every step, tiny, results kept in --work (a test)

Every run is one (family, arm, budget, seed): a student trained for ``budget`` iterations
through ``python -m srcomp_plugin.train`` with a schedule that ends at that budget, then
tested through ``python -m srcomp_plugin.test`` on Set5 (its published LR), Set14 and
Urban100 (LR made by ``srcomp prepare --benchmark``), Y-PSNR/SSIM with crop = scale. Each
finished run is appended to ``benchmarks/results/quality.json`` at once and skipped when the
script is started again, so the ablation can span sessions; two runs go side by side
(``--jobs``), one thread each.

Data: ``srcomp prepare`` of BSD68 + SunHays80 (HR, x2, sub-images of 192 px). The teacher
(EDSR f64b8, res_scale 1, L1, trained here by this script; its option file and checkpoint are
kept in ``benchmarks/results/quality_assets/``) is the one every arm distils from. Stage 1
and 2 run once per family (not per seed): a plain OBProx-SG prune (the paper's stage 1) and
the srcomp recipe's (Adam with ``train.sparsity.structured``), each compressed by
``srcomp compress`` to the same student (EDSR f16b4, res_scale 2).

Arms (``ARMS``): ``scratch`` (L1 to the ground truth, random init), ``paper`` (``srcomp
compress --recipe paper``: MultiLapLoss + 0.1 L1, random init), ``kd_scratch`` (L1 to the
teacher + L1 to the ground truth, random init), ``sliced`` / ``sliced_kd`` (L1 to the ground
truth / the srcomp losses, from the student sliced out of the *plain* prune), ``srcomp``
(``srcomp compress --recipe srcomp`` as written: sliced from the *structured* prune), and
``srcomp_extra`` (srcomp plus teacher-labelled extra inputs). Students from random weights
train with lr 5e-4 (the recipes' 1e-4/2e-4 are for 800k iterations), sliced ones with the
srcomp recipe's 2e-4; all schedules end at the budget, and the EMA (which is tested) averages
about the last 10% of each run (decay 1 - 10/budget, at most 0.999). The live teacher runs in bf16
(``train.teacher_precision``; >= 56 dB from its float32 output, benchmarks/RESULTS.md), the
same for every arm.

``srcomp_lean`` (and ``_f10``/``_f50``, the fraction measured): the compression made cheap, at
a compute level rather than an iteration count. Its ``iters`` is the whole budget in
scratch-step equivalents; a share of it (25%, 10%, 50%) buys a short structured stage 1 that
chooses the student on the teacher's own weights and decays the rest to zero from the first
to the last iteration, at batch 2 (more, smaller steps decay better for the same MACs); stage
3 then trains the slice with L1 to the ground truth alone (no teacher forward to pay for)
for what is left.

Every record has ``cost`` (:func:`run_cost`): MACs and measured seconds of stage 1, the
teacher cache and stage 3, and the total in scratch-step equivalents
(:mod:`srcomp_plugin.measure.training_cost`); a shared stage 1 is charged in full to every
arm that uses it. The table gains the equal-compute view and ``quality_compute_<family>.png``.

The SwinIR family (``FAMILIES['swinir']``), sized for two CPU cores: a SwinIR-light-shaped
teacher (910,152 params, built as ``SwinIRmini`` so that full test images pad to the window)
trained here for 4000 iterations at batch 8, the three arms ``scratch``, ``paper`` and
``srcomp`` of a SwinIRmini student (98,868 params) at one budget (1000 iterations, batch 8);
the srcomp arm is sliced from the plain OBProx-SG prune (1000 iterations), as ``srcomp
compress`` does for SwinIR, which has no structured stage 1. Run it with
``--families swinir --threads 2 --jobs 1`` for the teacher and stage 1, then ``--jobs 2``.
"""
import argparse
import copy
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from srcomp_plugin.measure import training_cost

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared' / 'datasets'
RESULTS = REPO / 'benchmarks' / 'results' / 'quality.json'
ASSETS = REPO / 'benchmarks' / 'results' / 'quality_assets'
TABLE = REPO / 'benchmarks' / 'QUALITY.md'
SCALE = 2
TRAIN_SETS = ('BSD68', 'SunHays80')
TEST_SETS = ('Set5', 'Set14', 'Urban100')
# srcomp_lean*: the structured prune, short, then L1 to the ground truth; its share of the compute level
LEAN_FRACTIONS = {'srcomp_lean': 0.25, 'srcomp_lean_f10': 0.1, 'srcomp_lean_f50': 0.5}
ARMS = ('scratch', 'paper', 'kd_scratch', 'sliced', 'sliced_kd', 'srcomp', 'srcomp_extra') + tuple(LEAN_FRACTIONS)
BUDGETS = (1000, 4000, 16000)
SEEDS = (0, 1, 2)
# arms of other scripts whose records share the JSON: torch_pruning_arm.py (its iters is a compute level too)
PEER_ARMS = ('torch_pruning', )
LEVEL_ARMS = tuple(LEAN_FRACTIONS) + PEER_ARMS  # records whose iters is a compute level, not stage-3 iterations
ARMS_AT_16K = ('scratch', 'paper', 'srcomp', 'srcomp_lean')  # one seed at the largest budget
SCRATCH_LR, SLICED_LR = 5e-4, 2e-4
BATCH, LR_PATCH = 16, 32  # HR patch 64: a multiple of 16, as MultiLapLoss needs

FAMILIES = {
    'edsr': {
        'teacher': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 8,
                    'upscale': SCALE, 'res_scale': 1, 'img_range': 255.},
        'teacher_iters': 16000, 'teacher_batch': 16, 'teacher_lr': 3e-4,
        'ratio': 0.04,  # -> EDSR f16b4, res_scale 2 (31,043 params, 4.0% of the teacher)
        'prune_iters': 2000,
        # srcomp_lean*: stage 1 at this batch, for the arm's fraction of the compute level (LEAN_FRACTIONS).
        # At a fixed compute, more and smaller steps decay better: the slice of the 4k level's stage 1
        # (1000 scratch steps' worth) starts at 22.54 dB on Set5 with batch 8 and 32.12 dB with batch 2
        'lean': {'batch': 2},
    },
    # SwinIR-light (the paper's teacher) -> SwinIRmini, sized for two CPU cores: batch 8, one
    # budget, three arms (scratch, paper, srcomp). No structured stage 1 (a SwinIR slice
    # is never lossless, see srcomp_plugin.compress.structured_decay): the srcomp arm is the
    # recipe as `srcomp compress` writes it for SwinIR, sliced from the plain OBProx-SG prune.
    'swinir': {
        # SwinIRmini with SwinIR-light's arguments: BasicSR's SwinIR under SRModel (validation, test)
        # refuses images that are no multiple of the window; SwinIRmini is the same network and pads
        'teacher': {'type': 'SwinIRmini', 'upscale': SCALE, 'in_chans': 3, 'img_size': LR_PATCH, 'window_size': 8,
                    'img_range': 1., 'depths': [6, 6, 6, 6], 'embed_dim': 60, 'num_heads': [6, 6, 6, 6],
                    'mlp_ratio': 2, 'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'},
        'teacher_iters': 4000, 'teacher_batch': 8, 'teacher_lr': 4e-4, 'teacher_warmup': 200,
        'ratio': 0.109,  # -> SwinIRmini embed_dim 24, depths [4, 4, 4] (98,868 params, 10.9%)
        'prune_iters': 1000, 'batch': 8, 'kinds': ('plain', ), 'arms': ('scratch', 'paper', 'srcomp'),
        'budgets': (1000, ),
    },
}
SMOKE = {  # --smoke: the same code paths, tiny: a test that the harness works, not a measurement
    'family': {'teacher': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 2,
                           'upscale': SCALE, 'res_scale': 1, 'img_range': 255.},
               'teacher_iters': 6, 'teacher_batch': 4, 'teacher_lr': 3e-4, 'ratio': 0.3, 'prune_iters': 6,
               'lean': {'batch': 4}},
    'train_sets': ('Set5', ), 'test_sets': ('Set5', 'Set14'), 'budgets': [4], 'seeds': [0],
    'arms': [a for a in ARMS if a not in ('srcomp_lean_f10', 'srcomp_lean_f50')],  # one lean arm is enough here
}


# ----------------------------------------------------------------------------- option dicts


def _metrics():
    return {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE, 'test_y_channel': True},
            'ssim': {'type': 'calculate_ssim', 'crop_border': SCALE, 'test_y_channel': True}}


def _logger(iters):
    return {'print_freq': max(1, min(500, iters // 10)), 'save_checkpoint_freq': min(iters, 2000),
            'use_tb_logger': False, 'wandb': {'project': None, 'resume_id': None}}


def _datasets(data, batch=BATCH):
    train = {'name': 'BSD68_SunHays80', 'type': 'PairedImageDataset', 'dataroot_gt': str(data / 'train' / 'HR_sub'),
             'dataroot_lq': str(data / 'train' / 'LR_bicubic' / f'X{SCALE}_sub'), 'filename_tmpl': '{}',
             'io_backend': {'type': 'disk'}, 'gt_size': LR_PATCH * SCALE, 'use_hflip': True, 'use_rot': True,
             'num_worker_per_gpu': 0, 'batch_size_per_gpu': batch, 'dataset_enlarge_ratio': 20, 'prefetch_mode': None}
    return {'train': train, 'val': _test_set(data, 'Set5')}


def _test_set(data, name):
    if name == 'Set5':  # the published LR images
        gt, lq = SHARED / 'Set5' / 'HR', SHARED / 'Set5' / 'LR_bicubic' / f'X{SCALE}'
    else:
        gt, lq = data / name / 'HR', data / name / 'LR_bicubic' / f'X{SCALE}'
    return {'name': name, 'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
            'filename_tmpl': f'{{}}x{SCALE}', 'io_backend': {'type': 'disk'}}


def _cosine(iters, lr):
    return {'optim_g': {'type': 'Adam', 'lr': lr, 'weight_decay': 0, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [iters], 'restart_weights': [1],
                          'eta_min': 1e-7}}


def _base_opt(name, model_type, network, data, iters, seed, batch=BATCH):
    return {'name': name, 'model_type': model_type, 'scale': SCALE, 'num_gpu': 0, 'manual_seed': seed,
            'datasets': _datasets(data, batch), 'network_g': copy.deepcopy(network),
            'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
            'val': {'val_freq': 10 ** 9, 'save_img': False, 'metrics': _metrics()}, 'logger': _logger(iters)}


# ----------------------------------------------------------------------------- running


THREADS = 1  # per run (--threads)


def _env():
    return dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))


def _run(cmd, cwd, log):
    with open(log, 'a', encoding='utf-8') as f:
        f.write(f'$ {" ".join(map(str, cmd))}\n')
        f.flush()
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f'command failed (exit {proc.returncode}), see {log}: {" ".join(map(str, cmd))}')


def train(work, opt):
    """Train ``opt`` unless its ``net_g_latest.pth`` exists; resume an interrupted run."""
    exp = work / 'experiments' / opt['name']
    latest = exp / 'models' / 'net_g_latest.pth'
    if latest.is_file():
        return latest
    path = work / 'options' / f'{opt["name"]}.yml'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    cmd = [sys.executable, '-m', 'srcomp_plugin.train', '-opt', path] + (['--auto_resume'] if exp.is_dir() else [])
    start = time.time()
    try:
        _run(cmd, work, work / 'logs' / f'{opt["name"]}.log')
    finally:  # an interrupted run's seconds count too: its resume continues from its last checkpoint
        _add_seconds(work, opt['name'], time.time() - start)
    return latest


def _seconds_file(work, name):
    return work / 'costs' / f'{name}.json'


def _add_seconds(work, name, seconds):
    path = _seconds_file(work, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'seconds': train_seconds(work, name) + seconds}))


def train_seconds(work, name):
    """Wall seconds that ``train`` spent on run ``name`` (over all its resumes), 0 if none was measured."""
    path = _seconds_file(work, name)
    return json.loads(path.read_text())['seconds'] if path.is_file() else 0.0


def test(work, name, network, checkpoint, data, key='params_ema'):
    """Y-PSNR/SSIM per test set of ``checkpoint``: ``({set: psnr}, {set: ssim})``."""
    from srcomp_plugin.utils.test_results import newest_metrics

    results = work / 'results' / name
    if not results.is_dir() or not list(results.glob('test_*.json')):
        opt = {'name': name, 'model_type': 'SRModel', 'scale': SCALE, 'num_gpu': 0, 'manual_seed': 0,
               'datasets': {f'test_{i}': _test_set(data, s) for i, s in enumerate(TEST_SETS, 1)},
               'network_g': copy.deepcopy(network),
               'path': {'pretrain_network_g': str(checkpoint), 'param_key_g': key, 'strict_load_g': True},
               'val': {'save_img': False, 'suffix': None, 'metrics': _metrics()}}
        path = work / 'options' / f'{name}.yml'
        path.write_text(yaml.safe_dump(opt, sort_keys=False))
        _run([sys.executable, '-m', 'srcomp_plugin.test', '-opt', path], work, work / 'logs' / f'{name}.log')
    validations = newest_metrics(results)
    return ({s: validations[s]['psnr'] for s in TEST_SETS}, {s: validations[s]['ssim'] for s in TEST_SETS})


# ----------------------------------------------------------------------------- data, teacher, stages 1-2


def prepare_data(work):
    """BSD68 + SunHays80 as one training set (sub-images), Set14/Urban100 in the benchmark layout."""
    from srcomp_plugin.data.prepare import prepare_dataset

    data = work / 'data'
    if not (data / 'train' / 'meta_info_HR.txt').is_file():
        merged = data / 'train_hr'
        merged.mkdir(parents=True, exist_ok=True)
        for name in TRAIN_SETS:
            for src in sorted((SHARED / name / 'HR').iterdir()):
                link = merged / f'{name}_{src.name}'
                if not link.exists():
                    link.symlink_to(src)
        prepare_dataset(merged, data / 'train', scales=(SCALE, ), sub_images=True, crop_size=192, step=96,
                        archive_existing=True, progress=False)
    for name in TEST_SETS[1:]:
        if not (data / name / 'meta_info_HR.txt').is_file():
            prepare_dataset(SHARED / name / 'HR', data / name, scales=(SCALE, ), benchmark=True,
                            archive_existing=True, progress=False)
    return data


def teacher(work, family, data):
    """The family's teacher checkpoint: the kept asset, or trained here (then kept)."""
    cfg = FAMILIES[family]
    asset = ASSETS / f'{family}_teacher.pth'
    if asset.is_file():
        return asset
    iters = cfg['teacher_iters']
    opt = _base_opt(f'q_{family}_teacher', 'SRModel', cfg['teacher'], data, iters, 0, batch=cfg['teacher_batch'])
    opt['train'] = dict(_cosine(iters, cfg['teacher_lr']), total_iter=iters, warmup_iter=cfg.get('teacher_warmup', -1),
                        ema_decay=0.999,
                        pixel_opt={'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'})
    opt['val']['val_freq'] = 5000
    latest = train(work, opt)
    ASSETS.mkdir(parents=True, exist_ok=True)
    import torch

    state = torch.load(latest, map_location='cpu', weights_only=True)
    torch.save({'params_ema': state['params_ema']}, asset)
    (ASSETS / f'{family}_teacher.yml').write_text(yaml.safe_dump(opt, sort_keys=False))
    return asset


def teacher_record(work, family, data, checkpoint):
    """The teacher's own test figures, kept in the JSON as the record of arm ``teacher``."""
    psnr, ssim = test(work, f'q_{family}_teacher_test', FAMILIES[family]['teacher'], checkpoint, data)
    record = {'family': family, 'arm': 'teacher', 'iters': FAMILIES[family]['teacher_iters'], 'seed': 0,
              'psnr': psnr, 'ssim': ssim}
    append_result(record)
    print(f'[quality] {family} teacher: ' + ' '.join(f'{s} {v:.2f}' for s, v in psnr.items()), flush=True)
    return record


def stage_one_and_two(work, family, data, teacher_ckpt, structured):
    """Prune (plain or structured), then ``srcomp compress`` for both recipes; returns the option paths."""
    from srcomp_plugin.compress import compress, load_recipe, write_outputs

    cfg = FAMILIES[family]
    kind = 'structured' if structured else 'plain'
    iters = cfg['prune_iters']
    opt = _base_opt(f'q_{family}_prune_{kind}', 'SparseSRModel', cfg['teacher'], data, iters, 0,
                    batch=cfg.get('batch', BATCH))
    opt['path'].update(pretrain_network_g=str(teacher_ckpt), param_key_g='params_ema')
    opt['train'] = {'total_iter': iters, 'warmup_iter': -1, 'ema_decay': 0.999,
                    'optim_g': {'type': 'OBProxSG', 'lr': 5e-3, 'lambda_': 1e-4, 'epoch_size': 'auto', 'Np': 1,
                                'No': 'inf', 'eps': 1e-4},
                    'scheduler': {'type': 'MultiStepLR', 'milestones': [10 ** 9], 'gamma': 0.5},
                    'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'reduction': 'mean'}}
    if structured:  # the srcomp recipe's stage 1, as `srcomp pipeline` writes it
        opt['train']['sparsity'] = {'structured': {'ratio': cfg['ratio'], 'depth_keep': 0.5}}
        opt['train']['optim_g'] = load_recipe('srcomp')['prune_optim_g']
    checkpoint = train(work, opt)
    outs = {}
    for recipe in ('srcomp', 'paper'):
        out = work / 'options' / f'q_{family}_{kind}_{recipe}_generated.yml'
        if not out.is_file():
            write_outputs(compress(work / 'options' / f'{opt["name"]}.yml', checkpoint, out, ratio=cfg['ratio'],
                                   recipe=recipe, teacher_checkpoint=teacher_ckpt, macs=False))
        outs[recipe] = out
    return outs


def lean_stage_one(work, family, data, teacher_ckpt, level, fraction):
    """The lean stage 1 of compute level ``level``: the structured prune, as short as its share allows.

    It decays everything outside the student from the first iteration (``start: 0``: the
    student is chosen on the teacher's own weights) to zero at the last (``end: 1``), at the
    family's ``lean`` batch, for as many iterations as ``fraction`` of ``level``
    (scratch-step equivalents) buys. Returns ``(srcomp recipe option file, stage-1 cost)``.
    """
    from srcomp_plugin.compress import compress, load_recipe, write_outputs

    cfg, lean = FAMILIES[family], FAMILIES[family]['lean']
    step = training_cost.train_step_macs(cfg['teacher'], lean['batch'], LR_PATCH, SCALE)
    iters = max(1, round(fraction * level * scratch_step_macs(family) / step))
    tag = f'{level}_f{round(fraction * 100)}_b{lean["batch"]}'
    opt = _base_opt(f'q_{family}_prune_lean_{tag}', 'SparseSRModel', cfg['teacher'], data, iters, 0,
                    batch=lean['batch'])
    opt['path'].update(pretrain_network_g=str(teacher_ckpt), param_key_g='params_ema')
    optim = dict(load_recipe('srcomp')['prune_optim_g'], **({'lr': lean['lr']} if 'lr' in lean else {}))
    opt['train'] = {'total_iter': iters, 'warmup_iter': -1, 'ema_decay': 0.999, 'optim_g': optim,
                    'scheduler': {'type': 'MultiStepLR', 'milestones': [10 ** 9], 'gamma': 0.5},
                    'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'reduction': 'mean'},
                    'sparsity': {'structured': {'ratio': cfg['ratio'], 'depth_keep': 0.5, 'start': 0, 'end': 1}}}
    checkpoint = train(work, opt)
    out = work / 'options' / f'q_{family}_lean_{tag}_srcomp_generated.yml'
    if not out.is_file():
        write_outputs(compress(work / 'options' / f'{opt["name"]}.yml', checkpoint, out, ratio=cfg['ratio'],
                               recipe='srcomp', teacher_checkpoint=teacher_ckpt, macs=False))
    return out, {'iters': iters, 'batch': lean['batch'], 'macs': iters * step,
                 'seconds': round(train_seconds(work, opt['name']), 1)}


# ----------------------------------------------------------------------------- cost


def scratch_step_macs(family):
    """MACs of one training step of the student trained alone: the unit of every compute count."""
    return training_cost.train_step_macs(student_network(family), FAMILIES[family].get('batch', BATCH), LR_PATCH, SCALE)


STAGE1_OF_ARM = {'sliced': 'plain', 'sliced_kd': 'plain', 'srcomp': 'structured', 'srcomp_extra': 'structured'}
LIVE_TEACHER_ARMS = ('paper', 'kd_scratch', 'sliced_kd', 'srcomp', 'srcomp_extra')


def run_cost(work, family, arm, stage3_iters, stage3_name, stage1=None):
    """The ``cost`` entry of a record: MACs and seconds per stage, and the total in scratch-step equivalents.

    A stage 1 shared by several arms or seeds is charged in full to each of them. ``stage1``:
    the lean stage 1's cost (``srcomp_lean``); the other arms' stage 1 is the family's fixed one.
    Seconds are the wall time of each training command (testing excluded); None where none was
    measured (``work`` None: records of earlier sessions, whose MACs follow from their settings).
    """
    cfg = FAMILIES[family]
    batch = cfg.get('batch', BATCH)
    kind = STAGE1_OF_ARM.get(arm)
    if kind == 'structured' and kind not in _kinds(family):  # SwinIR's srcomp arm slices the plain prune
        kind = 'plain'
    if stage1 is None and kind is not None:
        iters = cfg['prune_iters']
        stage1 = {'iters': iters, 'batch': batch,
                  'macs': iters * training_cost.train_step_macs(cfg['teacher'], batch, LR_PATCH, SCALE),
                  'seconds': _measured_seconds(work, f'q_{family}_prune_{kind}')}
    if arm in LIVE_TEACHER_ARMS:
        per_step = training_cost.distill_step_macs(student_network(family), cfg['teacher'], batch, LR_PATCH, SCALE)
    else:
        per_step = training_cost.train_step_macs(student_network(family), batch, LR_PATCH, SCALE)
    stage3 = {'iters': stage3_iters, 'batch': batch, 'macs': stage3_iters * per_step,
              'live_teacher': arm in LIVE_TEACHER_ARMS, 'seconds': _measured_seconds(work, stage3_name)}
    return cost_entry(family, stage1, stage3)


def cost_entry(family, stage1, stage3, teacher_cache=None):
    """A record's ``cost`` from its stages (each ``{'macs', 'seconds', ...}`` or None): totals added up.

    The one shape every script appending to the JSON writes (``quality.py``, ``torch_pruning_arm.py``).
    """
    stages = {'stage1': stage1, 'teacher_cache': teacher_cache, 'stage3': stage3}
    total = sum(st['macs'] for st in stages.values() if st)
    return {'how': 'MACs of every forward and backward (srcomp_plugin/measure/training_cost.py); '
                   'scratch_steps = MACs / one training step of the scratch arm',
            **stages, 'macs': total,
            'scratch_steps': round(training_cost.scratch_steps(total, scratch_step_macs(family))),
            'seconds': None if any(st and st['seconds'] is None for st in stages.values())
            else round(sum(st['seconds'] for st in stages.values() if st), 1)}


def _measured_seconds(work, name):
    seconds = train_seconds(work, name) if work is not None else 0.0
    return round(seconds, 1) if seconds else None


def fill_missing_costs():
    """Give every record of the JSON that predates cost accounting its ``cost`` (MACs; seconds None).

    Only arms whose stage 1 is the family's fixed one can be filled: their settings are the
    script's. Rewritten under the same lock as :func:`append_result`.
    """
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix('.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = load_results()
        missing = [r for r in records if 'cost' not in r and r['arm'] != 'teacher' and r['arm'] not in LEAN_FRACTIONS]
        for r in missing:
            r['cost'] = run_cost(None, r['family'], r['arm'], r['iters'], None)
        if missing:
            _write_records(records)
    return len(missing)


# ----------------------------------------------------------------------------- arms


def arm_options(arm, family, iters, seed, data, generated, name=None):
    """The BasicSR option dict of one run. ``generated``: {'plain'|'structured'|'lean': {recipe: yml}}.

    ``iters`` is the run's stage-3 length; ``name`` defaults to ``q_<family>_<arm>_<iters>_s<seed>``.
    """
    from srcomp_plugin.compress.recipes import rescale_schedule

    name = name or f'q_{family}_{arm}_{iters}_s{seed}'
    if arm == 'scratch':  # needs no stage 1 or 2
        return scratch_options(name, family, iters, seed, data)
    if arm in LEAN_FRACTIONS:
        source = 'lean'
    else:
        source = 'structured' if arm.startswith('srcomp') and 'structured' in generated else 'plain'
    recipe = 'paper' if arm == 'paper' else 'srcomp'
    with open(generated[source][recipe], encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    opt.update(name=name, manual_seed=seed, datasets=_datasets(data, FAMILIES[family].get('batch', BATCH)),
               logger=_logger(iters),
               val={'val_freq': 10 ** 9, 'save_img': False, 'metrics': _metrics()})
    opt['path']['param_key_t'] = 'params_ema'
    train_opt = rescale_schedule(opt['train'], iters)  # the recipe's schedule, ending at this budget
    train_opt.update(teacher_precision='bf16', ema_decay=ema_decay(iters))
    from_scratch = arm in ('scratch', 'paper', 'kd_scratch')
    train_opt['optim_g']['lr'] = SCRATCH_LR if from_scratch else SLICED_LR
    if from_scratch:
        opt['path']['pretrain_network_g'] = None
    if arm in ('scratch', 'sliced') + tuple(LEAN_FRACTIONS):  # ground truth only: BasicSR's own SRModel
        opt['model_type'] = 'SRModel'
        for key in ('network_t', ):
            opt.pop(key, None)
        for key in ('pretrain_network_t', 'param_key_t', 'strict_load_t'):
            opt['path'].pop(key, None)
        for key in ('distill_opt', 'teacher_precision'):
            train_opt.pop(key, None)
        train_opt['pixel_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
    if arm == 'srcomp_extra':
        opt['datasets']['train'].update(type='ExtraInputsPairedImageDataset', extra_prob=0.5)
    return opt


def ema_decay(iters):
    """EMA over the last ~10% of a run of ``iters``: 0.999 at 1k iterations would still hold 37% of the start."""
    return max(0.0, min(0.999, 1 - 10 / iters))


def student_network(family):
    """The student every arm of ``family`` trains: the shape ``srcomp compress`` derives at the family's ratio."""
    from srcomp_plugin.compress.shape_rule import derive_student

    return derive_student(FAMILIES[family]['teacher'], ratio=FAMILIES[family]['ratio'], depth_keep=0.5).network_opt()


def scratch_options(name, family, iters, seed, data):
    """The student trained alone: L1 to the ground truth from random weights, BasicSR's SRModel.

    The same options as the srcomp recipe's stage-3 file with the teacher taken out (what
    :func:`arm_options` used to derive from it), built without waiting for stages 1-2.
    """
    opt = _base_opt(name, 'SRModel', student_network(family), data, iters, seed,
                    batch=FAMILIES[family].get('batch', BATCH))
    opt['train'] = dict(_cosine(iters, SCRATCH_LR), total_iter=iters, warmup_iter=-1,
                        ema_decay=ema_decay(iters),
                        pixel_opt={'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'})
    return opt


def planned_runs(families, arms, budgets, seeds):
    """Budget by budget, seed by seed: a partial ablation has every arm at the first seed.

    A family runs only its own arms and budgets (``arms``/``budgets`` in :data:`FAMILIES`) when it names them.
    """
    runs = []
    for family in families:
        cfg = FAMILIES[family]
        for iters in [b for b in budgets if b in cfg.get('budgets', budgets)]:
            for seed in seeds:
                for arm in [a for a in arms if a in cfg.get('arms', arms)]:
                    if iters >= 16000 and (arm not in ARMS_AT_16K or seed != seeds[0]):
                        continue
                    runs.append((family, arm, iters, seed))
    return runs


def load_results():
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else []


def append_result(record):
    """Append one record to the JSON under a lock (two runs finish side by side)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix('.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = load_results()
        records.append(record)
        _write_records(records)


def _write_records(records):
    tmp = RESULTS.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(records, indent=1) + '\n')
    os.replace(tmp, RESULTS)


def one_run(work, data, setups, family, arm, iters, seed):
    """Train and test one (family, arm, budget, seed) once its stages 1-2 are done; append its record.

    ``iters`` is the stage-3 length of every arm but ``srcomp_lean*``, whose ``iters`` is its
    whole compute level (scratch-step equivalents, stage 1 included): its stage 3 gets what
    the lean stage 1 left.
    """
    start = time.time()
    stage1, name = None, None
    if arm in LEAN_FRACTIONS:
        lean_yml, stage1 = setups[family, 'lean', iters, LEAN_FRACTIONS[arm]].result()
        generated = {'lean': {'srcomp': lean_yml}}
        stage3_iters = max(1, iters - round(stage1['macs'] / scratch_step_macs(family)))
        name = f'q_{family}_{arm}_{iters}_s{seed}'
    else:
        generated = {} if arm == 'scratch' else {kind: setups[family, kind].result() for kind in _kinds(family)}
        stage3_iters = iters
    opt = arm_options(arm, family, stage3_iters, seed, data, generated, name=name)
    checkpoint = train(work, opt)
    psnr, ssim = test(work, f'{opt["name"]}_test', opt['network_g'], checkpoint, data)
    record = {'family': family, 'arm': arm, 'iters': iters, 'seed': seed, 'psnr': psnr, 'ssim': ssim,
              'minutes': round((time.time() - start) / 60, 1),
              'cost': run_cost(work, family, arm, stage3_iters, opt['name'], stage1)}
    append_result(record)
    shutil.rmtree(work / 'experiments' / opt['name'] / 'training_states', ignore_errors=True)
    print(f'[quality] {family} {arm:<12} {iters:>6} it seed {seed}: '
          + ' '.join(f'{s} {v:.2f}' for s, v in psnr.items())
          + f' (mean Set5/14 {_set5_14(record):.2f}) in {record["minutes"]} min, '
          f'{record["cost"]["scratch_steps"]} scratch-step equivalents',
          flush=True)
    return record


def _kinds(family):
    """The stage-1 kinds a family runs: plain OBProx-SG and, for EDSR, the structured prune."""
    return FAMILIES[family].get('kinds', ('plain', 'structured'))


# ----------------------------------------------------------------------------- the table


def _set5_14(record):
    return (record['psnr']['Set5'] + record['psnr']['Set14']) / 2


def _stats(values):
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


NOTES_MARK = '<!-- written by hand below this line; quality.py keeps it -->\n'


def write_table(records):
    """benchmarks/QUALITY.md: mean of Set5 and Set14 per (arm, budget), mean ± std over seeds.

    Everything below :data:`NOTES_MARK` (the reading of the numbers) is kept as it is.
    """
    lines = ['# Quality: compressed students against the same student trained alone', '',
             'Written by `python benchmarks/quality.py` from `benchmarks/results/quality.json` (see the '
             "script's docstring for the data, teacher, arms and schedules). Y-PSNR in dB, crop = scale, "
             'x2; "Set5+14" is the mean of the two (the paper\'s figure), then mean ± std over seeds (n seeds).', '']
    for family in sorted({r['family'] for r in records}):
        # the LEVEL_ARMS' iters is a compute level: they appear in the equal-compute table only
        rows = [r for r in records if r['family'] == family and r['arm'] not in ('teacher', ) + LEVEL_ARMS]
        budgets = sorted({r['iters'] for r in rows})
        lines += [f'## {family}', '']
        for r in records:
            if r['family'] == family and r['arm'] == 'teacher':
                urban = f", Urban100 {r['psnr']['Urban100']:.2f}" if 'Urban100' in r['psnr'] else ''
                lines += [f"Teacher ({r['iters']} it): Set5+14 {_set5_14(r):.2f}{urban}", '']
        lines += ['| arm | ' + ' | '.join(f'{b} it: Set5+14 (n) | Urban100' for b in budgets)
                  + ' |', '|---|' + '---|---|' * len(budgets)]
        for arm in [a for a in ARMS if any(r['arm'] == a for r in rows)] + sorted(
                {r['arm'] for r in rows} - set(ARMS)):
            cells = []
            for b in budgets:
                got = [r for r in rows if r['arm'] == arm and r['iters'] == b]
                if not got:
                    cells += ['-', '-']
                    continue
                cells.append(f"{_stats([_set5_14(r) for r in got])} ({len(got)})")
                cells.append(_stats([r['psnr']['Urban100'] for r in got]) if 'Urban100' in got[0]['psnr'] else '-')
            lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    for family in sorted({r['family'] for r in records}):
        lines += compute_matched_lines(records, family)
        plot = plot_compute(records, family)
        if plot is not None:
            lines += [f'![Set5+14 against compute, {family}]({plot.name})', '']
    old = TABLE.read_text() if TABLE.is_file() else ''
    notes = old.split(NOTES_MARK, 1)[1] if NOTES_MARK in old else '\n'
    TABLE.write_text('\n'.join(lines) + '\n' + NOTES_MARK + notes)
    return TABLE


COMPUTE_LEVELS = (1000, 4000, 16000, 64000)  # scratch-step equivalents
LEVEL_TOLERANCE = 1.02  # a run counts at a level when its cost is within 2% above it


def _groups(records, family):
    """``{(arm, iters): [records]}`` of a family's runs that carry a cost (seeds grouped)."""
    groups = {}
    for r in records:
        if r['family'] == family and r['arm'] != 'teacher' and 'cost' in r:
            groups.setdefault((r['arm'], r['iters']), []).append(r)
    return groups


def compute_matched_lines(records, family):
    """The equal-compute table: per level, each arm's run with the most compute that fits in it."""
    groups = _groups(records, family)
    if not groups:
        return []
    lines = [f'## {family} at equal compute', '',
             'Compute in scratch-step equivalents: the MACs of every forward and backward a run made '
             '(stage 1 charged in full to every arm that uses it, every teacher forward, stage 3) over '
             'the MACs of one training step of the scratch arm (`srcomp_plugin/measure/training_cost.py`). At each '
             "level, an arm's cell is its run with the most compute within the level (+2%): Set5+14 "
             'mean ± std (n seeds), then that run\'s compute in thousands.', '',
             '| arm | ' + ' | '.join(f'<= {level // 1000}k: Set5+14 (n) | compute' for level in COMPUTE_LEVELS) + ' |',
             '|---|' + '---|---|' * len(COMPUTE_LEVELS)]
    for arm in [a for a in ARMS + PEER_ARMS if any(arm == a for arm, _ in groups)]:
        cells = []
        for level in COMPUTE_LEVELS:
            costs = [(statistics.mean(r['cost']['scratch_steps'] for r in rs), rs) for (a, _), rs in groups.items()
                     if a == arm]
            fits = [(cost, rs) for cost, rs in costs if cost <= level * LEVEL_TOLERANCE]
            if not fits:
                cells += ['-', '-']
                continue
            cost, rs = max(fits, key=lambda item: item[0])
            cells += [f'{_stats([_set5_14(r) for r in rs])} ({len(rs)})', f'{cost / 1000:.1f}k']
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    return lines + ['']


def plot_compute(records, family):
    """``quality_compute_<family>.png`` beside the table: Set5+14 against compute, one line per arm."""
    groups = _groups(records, family)
    if not groups:
        return None
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm in [a for a in ARMS + PEER_ARMS if any(arm == a for arm, _ in groups)]:
        points = sorted((statistics.mean(r['cost']['scratch_steps'] for r in rs),
                         statistics.mean(_set5_14(r) for r in rs)) for (a, _), rs in groups.items() if a == arm)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', label=arm)
    for r in records:
        if r['family'] == family and r['arm'] == 'teacher':
            ax.axhline(_set5_14(r), color='grey', linestyle='--', linewidth=1, label='teacher')
    ax.set_xscale('log')
    ax.set_xlabel('compute (scratch-step equivalents, MACs; stage 1 and teacher forwards included)')
    ax.set_ylabel('Y-PSNR Set5+14 (dB)')
    ax.set_title(f'{family}: student quality against total compute')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = TABLE.parent / f'quality_compute_{family}.png'
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- main


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work', default=str(REPO / 'quality_work'),
                        help='where data, option files, experiments and logs go (default ./quality_work)')
    parser.add_argument('--families', nargs='+', default=list(FAMILIES), choices=sorted(FAMILIES))
    parser.add_argument('--arms', nargs='+', default=list(ARMS), choices=ARMS)
    parser.add_argument('--budgets', nargs='+', type=int, default=list(BUDGETS))
    parser.add_argument('--seeds', nargs='+', type=int, default=list(SEEDS))
    parser.add_argument('--jobs', type=int, default=2, help='runs side by side (default 2)')
    parser.add_argument('--threads', type=int, default=1, help='threads of each run (default 1)')
    parser.add_argument('--max-runs', type=int, help='stop after this many new runs')
    parser.add_argument('--setup-only', action='store_true', help='data, teacher and stages 1-2 only')
    parser.add_argument('--table', action='store_true', help='only rewrite benchmarks/QUALITY.md from the JSON')
    parser.add_argument('--smoke', action='store_true',
                        help='tiny teacher, data and budgets, outputs kept under --work: checks the harness')
    return parser


def use_smoke_settings(work):
    """Tiny networks and data; every output (JSON, assets, table) under ``work``."""
    global RESULTS, ASSETS, TABLE, TRAIN_SETS, TEST_SETS, FAMILIES
    RESULTS, ASSETS, TABLE = work / 'quality.json', work / 'quality_assets', work / 'QUALITY.md'
    TRAIN_SETS, TEST_SETS = SMOKE['train_sets'], SMOKE['test_sets']
    FAMILIES = {'edsr': dict(SMOKE['family'])}


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.smoke:
        use_smoke_settings(Path(args.work).resolve())
        args.budgets, args.seeds, args.families, args.arms = SMOKE['budgets'], SMOKE['seeds'], ['edsr'], SMOKE['arms']
    if args.table:
        print(write_table(load_results()))
        return 0
    if not SHARED.is_dir():
        sys.exit(f'{SHARED} is missing: the ablation trains on BSD68 + SunHays80 and tests on Set5/Set14/Urban100')
    import srcomp_plugin  # noqa: F401  (registries and the torchvision alias before BasicSR)

    global THREADS
    THREADS = args.threads
    work = Path(args.work).resolve()
    (work / 'logs').mkdir(parents=True, exist_ok=True)
    data = prepare_data(work)
    teachers = {family: teacher(work, family, data) for family in args.families}
    fill_missing_costs()
    done = {(r['family'], r['arm'], r['iters'], r['seed']) for r in load_results()}
    todo = [run for run in planned_runs(args.families, args.arms, args.budgets, args.seeds) if run not in done]
    todo = todo[:args.max_runs] if args.max_runs else todo
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        # stage 1 (plain and structured) side by side; a run waits for the stage it starts from
        needed = {f for f, a, _, _ in todo if a != 'scratch' and a not in LEAN_FRACTIONS}
        needed |= set(args.families) if args.setup_only else set()
        setups = {(family, kind): pool.submit(stage_one_and_two, work, family, data, teachers[family],
                                              kind == 'structured')
                  for family in args.families if family in needed for kind in _kinds(family)}
        setups.update({(f, 'lean', i, x): pool.submit(lean_stage_one, work, f, data, teachers[f], i, x)
                       for f, i, x in sorted({(f, i, LEAN_FRACTIONS[a]) for f, a, i, _ in todo
                                              if a in LEAN_FRACTIONS})})
        tasks = [pool.submit(teacher_record, work, family, data, teachers[family])
                 for family in args.families if (family, 'teacher', FAMILIES[family]['teacher_iters'], 0) not in done]
        if not args.setup_only:
            print(f'[quality] {len(todo)} runs to do ({len(done)} records already in {RESULTS})', flush=True)
            tasks += [pool.submit(one_run, work, data, setups, f, a, i, s) for f, a, i, s in todo]
        failures = []
        for future in list(setups.values()) + tasks:
            try:
                future.result()
            except RuntimeError as err:
                failures.append(str(err))
                print(f'[quality] FAILED: {err}', flush=True)
    write_table(load_results())
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
