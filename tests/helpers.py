"""Helpers shared by the tests: tiny photographs from scikit-image, option dicts and files,
and subprocess runners for the real entry points (``python -m srcomp_plugin.train`` etc.).
The pytest fixtures that use them live in ``conftest.py``."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

SHARED_DATASETS = Path(__file__).resolve().parents[2] / 'shared' / 'datasets'
TRAIN_PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket')
VAL_PHOTOS = ('immunohistochemistry', 'hubble_deep_field')
HR_SIZE = 96  # a multiple of 12, so x2/x3/x4 all pair


def shared_dataset(name):
    """Path of ``../shared/datasets/<name>``, or skip the test when it is missing."""
    path = SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f'{path} not found: this test needs the shared benchmark images beside the repository')
    return path


def photo(name):
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=2)
    return np.ascontiguousarray(img[..., :3][..., ::-1])  # RGB -> BGR for OpenCV


def write_hr_crops(folder, names, size):
    folder.mkdir(parents=True)
    for name in names:
        img = photo(name)
        h, w = img.shape[:2]
        y, x = (h - size) // 2, (w - size) // 2
        cv2.imwrite(str(folder / f'{name}.png'), img[y:y + size, x:x + size])


def write_opt(path, opt):
    """Write an option dict as a BasicSR YAML file and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(_plain(opt), sort_keys=False))
    return path


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def tiny_train_opt(sr_dataset, name, network_g=None, model_type='SRModel', scale=2, total_iter=3, **train):
    """A complete, small BasicSR training option dict on ``sr_dataset`` (CPU)."""
    opt = {
        'name': name,
        'model_type': model_type,
        'scale': scale,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': {
                'name': 'tiny_train', 'type': 'PairedImageDataset',
                'dataroot_gt': sr_dataset['train_gt'], 'dataroot_lq': sr_dataset[f'train_lq_x{scale}'],
                'filename_tmpl': f'{{}}x{scale}', 'io_backend': {'type': 'disk'},
                'gt_size': 16 * scale, 'use_hflip': True, 'use_rot': True,
                'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1,
                'prefetch_mode': None,
            },
            'val': {
                'name': 'tiny_val', 'type': 'PairedImageDataset',
                'dataroot_gt': sr_dataset['val_gt'], 'dataroot_lq': sr_dataset[f'val_lq_x{scale}'],
                'filename_tmpl': f'{{}}x{scale}', 'io_backend': {'type': 'disk'},
            },
        },
        'network_g': network_g or {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
                                   'num_block': 1, 'upscale': scale},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {'val_freq': total_iter, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': total_iter, 'use_tb_logger': False,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }
    opt['train'].update(train)
    return copy.deepcopy(opt)


def subprocess_env(env=None):
    merged = dict(os.environ)
    merged.setdefault('OMP_NUM_THREADS', '1')
    merged.update(env or {})
    return merged


def run_module(module, args, cwd, env=None, timeout=600, check=True):
    """Run ``python -m module args`` in ``cwd``; on failure raise with the output's tail."""
    cmd = [sys.executable, '-m', module, *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}'
                             f'\n--- stderr ---\n{proc.stderr[-6000:]}')
    return proc


def run_torchrun(nproc, module, args, cwd, env=None, timeout=600, check=True):
    """Run ``torchrun --nproc_per_node=N -m module args --launcher pytorch`` on CPU (gloo)."""
    import socket

    with socket.socket() as s:  # a free port, so parallel test runs don't collide
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return run_module('torch.distributed.run', [f'--nproc_per_node={nproc}', f'--master_port={port}', '-m', module,
                                                *args, '--launcher', 'pytorch'],
                      cwd, env=env, timeout=timeout, check=check)


def use_obproxsg(opt, lr=1e-2, lambda_=1e-2, epoch_size=1, Np=2):
    """Turn a tiny option dict into a stage-1 (SparseSRModel + OBProxSG) one."""
    opt['model_type'] = 'SparseSRModel'
    opt['train']['optim_g'] = {'type': 'OBProxSG', 'lr': lr, 'lambda_': lambda_, 'epoch_size': epoch_size,
                               'Np': Np, 'No': 'inf', 'eps': 1e-4}
    opt['train']['sparsity'] = {'regularize': 'all', 'measure': ['body.*.weight']}
    return opt


def use_teacher(opt, teacher):
    """Turn a tiny option dict into a stage-3 (DistillSRModel) one with ``random_teacher``."""
    opt['model_type'] = 'DistillSRModel'
    opt['network_t'] = dict(opt['network_g'], num_feat=12)
    opt['path']['pretrain_network_t'] = str(teacher)
    opt['train']['distill_opt'] = {'type': 'MultiLapLoss', 'loss_weight': 1.0}
    opt['train']['pixel_opt'] = {'type': 'L1Loss', 'loss_weight': 0.1}
    return opt


class MkdirWhenUnpickled:
    """A pickle that runs ``os.mkdir(marker)`` when loaded without ``weights_only``: a stand-in
    for a checkpoint or state that carries code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker, )
