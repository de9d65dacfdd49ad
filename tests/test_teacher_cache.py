"""Teacher cache: filled once by ``srcomp teacher-cache``, checked by DistillSRModel, cropped/flipped
with the HR patch by DistillPairedImageDataset, equal to the live teacher away from patch borders."""
import json
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import srcomp_plugin  # noqa: F401  (fills the registries)
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.models import build_model
from helpers import run_module, write_opt
from srcomp_plugin.data.teacher_cache import META_FILE, VALUE_RANGE, TeacherCacheError, encode_png16, teacher_sr
from srcomp_plugin.data.teacher_cache_cli import fill_teacher_cache
from test_distill_sr_model import _teacher_net, parsed, tiny_opt

# Receptive field of the tiny teacher (EDSR f16b2) in HR pixels: 7 LR convs (x2) + 1 HR conv.
MARGIN = 7 * 2 + 1 + 1
PNG_STEP = (VALUE_RANGE[1] - VALUE_RANGE[0]) / 65535  # one 16-bit code


@pytest.fixture
def teacher_ckpt(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / 'teacher.pth'
    torch.save({'params': _teacher_net().state_dict()}, path)
    return path


def cache_opt(sr_dataset, teacher_ckpt, tmp_path, name, fmt='png', flips=False, gt_size=64):
    opt = tiny_opt(sr_dataset, teacher_ckpt, name)
    train = opt['datasets']['train']
    train.update(type='DistillPairedImageDataset', dataroot_teacher=str(tmp_path / f'cache_{fmt}'),
                 gt_size=gt_size, use_hflip=flips, use_rot=flips)
    opt['train']['teacher_cache'] = {'format': fmt}
    return opt


def _live_teacher(teacher_ckpt):
    net = _teacher_net()
    net.load_state_dict(torch.load(teacher_ckpt)['params'])
    return net.eval()


def _lq_images(folder):
    out = {}
    for path in sorted(Path(folder).glob('*.png')):
        img = cv2.imread(str(path))[..., ::-1].astype(np.float32) / 255
        out[path.stem] = torch.from_numpy(img.copy()).permute(2, 0, 1)
    return out


CPU = torch.device('cpu')


def test_tool_builds_cache_equal_to_full_image_teacher(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    opt = parsed(cache_opt(sr_dataset, teacher_ckpt, tmp_path, 'cache_build'), tmp_path, monkeypatch)
    assert fill_teacher_cache(opt, CPU) == (4, 4)
    model = build_model(opt)
    assert model.net_t is None  # no teacher is built for training
    cache = tmp_path / 'cache_png'
    meta = json.loads((cache / META_FILE).read_text())
    assert meta['format'] == 'png' and meta['fingerprint']['scale'] == 2 and tuple(meta['value_range']) == VALUE_RANGE

    net = _live_teacher(teacher_ckpt)
    lqs = _lq_images(sr_dataset['train_lq'])
    assert sorted(p.stem for p in cache.glob('*.png')) == sorted(lqs)
    for key, lq in lqs.items():
        stored = cv2.imread(str(cache / f'{key}.png'), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16 and stored.shape[:2] == (2 * lq.shape[1], 2 * lq.shape[2])
        with torch.no_grad():
            full = net(lq[None])[0].permute(1, 2, 0).numpy()[..., ::-1]
        decoded = stored * PNG_STEP + VALUE_RANGE[0]
        assert np.abs(decoded - full).max() <= PNG_STEP / 2 + 1e-6


def test_cached_targets_match_live_teacher_away_from_patch_borders(sr_dataset, teacher_ckpt, tmp_path,
                                                                   monkeypatch):
    opt = parsed(cache_opt(sr_dataset, teacher_ckpt, tmp_path, 'cache_live'), tmp_path, monkeypatch)
    fill_teacher_cache(opt, CPU)
    dataset = build_dataset(opt['datasets']['train'])
    net = _live_teacher(teacher_ckpt)
    border_gaps = []
    for seed in range(6):
        random.seed(seed)  # the crop position (BasicSR crops with the random module)
        item = dataset[seed % len(dataset)]
        with torch.no_grad():
            live = net(item['lq'][None])[0]
        gap = (item['teacher'] - live).abs()
        interior = gap[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
        assert interior.numel() > 0 and interior.max() < PNG_STEP / 2 + 2e-6, interior.max()
        border_gaps.append(gap.max().item())
    # the border really differs: the live teacher pads where the cached one saw the image
    assert max(border_gaps) > 1e-3


def test_cache_is_cropped_and_flipped_with_the_hr_patch(sr_dataset, tmp_path):
    """With the HR images themselves as the cache, the teacher patch must be the HR patch."""
    cache = tmp_path / 'gt_cache'
    cache.mkdir()
    (cache / META_FILE).write_text(json.dumps({'format': 'png', 'value_range': VALUE_RANGE, 'fingerprint': {}}))
    for hr in Path(sr_dataset['train_gt']).glob('*.png'):
        (cache / f'{hr.stem}x2.png').write_bytes(encode_png16(cv2.imread(str(hr)) / 255.))
    opt = {'name': 'gt_as_cache', 'type': 'DistillPairedImageDataset', 'phase': 'train', 'scale': 2,
           'dataroot_gt': str(sr_dataset['train_gt']), 'dataroot_lq': str(sr_dataset['train_lq']),
           'dataroot_teacher': str(cache), 'filename_tmpl': '{}x2', 'io_backend': {'type': 'disk'},
           'gt_size': 32, 'use_hflip': True, 'use_rot': True}
    dataset = build_dataset(opt)
    seen_shapes = set()
    for i in range(24):
        item = dataset[i % len(dataset)]
        assert (item['teacher'] - item['gt']).abs().max() <= PNG_STEP / 2 + 1e-6  # one pixel off would be far more
        seen_shapes.add(tuple(item['teacher'].shape))
    assert seen_shapes == {(3, 32, 32)}


def test_cache_reuse_refill_and_mismatch(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    opt = parsed(cache_opt(sr_dataset, teacher_ckpt, tmp_path, 'cache_reuse'), tmp_path, monkeypatch)
    with pytest.raises(TeacherCacheError, match='holds no teacher cache .*srcomp teacher-cache'):
        build_model(opt)  # the model never fills the cache itself
    fill_teacher_cache(opt, CPU)
    cache = tmp_path / 'cache_png'
    files = sorted(cache.glob('*.png'))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    files[0].unlink()
    with pytest.raises(TeacherCacheError, match=f'lacks 1 of 4 training images .*{files[0].stem}'):
        build_model(opt)
    assert fill_teacher_cache(opt, CPU) == (1, 4)
    assert files[0].is_file()  # the missing entry was recomputed ...
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files[1:])  # ... and only that one
    assert build_model(opt).net_t is None

    other = tmp_path / 'other_teacher.pth'
    torch.manual_seed(2)
    torch.save({'params': _teacher_net().state_dict()}, other)
    opt['path']['pretrain_network_t'] = str(other)
    with pytest.raises(TeacherCacheError, match='made from a different teacher_sha256'):
        build_model(opt)
    with pytest.raises(TeacherCacheError, match='made from a different teacher_sha256'):
        fill_teacher_cache(opt, CPU)


def test_lmdb_format_reads_the_same_targets(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    items = {}
    for fmt in ('png', 'lmdb'):
        opt = parsed(cache_opt(sr_dataset, teacher_ckpt, tmp_path, f'cache_{fmt}', fmt=fmt, flips=True),
                     tmp_path, monkeypatch)
        fill_teacher_cache(opt, CPU)
        dataset = build_dataset(opt['datasets']['train'])
        random.seed(0)
        items[fmt] = [dataset[i] for i in range(len(dataset))]
    assert (tmp_path / 'cache_lmdb' / 'teacher.lmdb').is_dir()
    for a, b in zip(items['png'], items['lmdb']):
        assert torch.equal(a['teacher'], b['teacher']) and torch.equal(a['gt'], b['gt'])


def test_mismatched_dataset_and_option_are_reported(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    opt = cache_opt(sr_dataset, teacher_ckpt, tmp_path, 'cache_wrong_set')
    opt['datasets']['train']['type'] = 'PairedImageDataset'
    with pytest.raises(ValueError, match='train.teacher_cache needs datasets.train.type: DistillPairedImageDataset'):
        build_model(parsed(opt, tmp_path, monkeypatch))
    opt = cache_opt(sr_dataset, teacher_ckpt, tmp_path, 'cache_no_option')
    del opt['train']['teacher_cache']
    with pytest.raises(ValueError, match='set train.teacher_cache'):
        build_model(parsed(opt, tmp_path, monkeypatch))


def test_window_padding_for_swinir_teachers():
    net = build_network({'type': 'SwinIR', 'upscale': 2, 'in_chans': 3, 'img_size': 8, 'window_size': 4,
                         'img_range': 1., 'depths': [1], 'embed_dim': 12, 'num_heads': [2], 'mlp_ratio': 2,
                         'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'}).eval()
    lq = torch.rand(1, 3, 18, 22)
    with pytest.raises(Exception):
        net(lq)  # BasicSR's SwinIR alone cannot take this size
    assert teacher_sr(net, lq, 2, pad_multiple=4).shape == (1, 3, 36, 44)
    with pytest.raises(ValueError, match='teacher\'s scale must equal the student\'s'):
        teacher_sr(net, torch.rand(1, 3, 16, 16), 3, pad_multiple=4)


def test_training_with_cache_through_pipeline(sr_dataset, teacher_ckpt, tmp_path):
    opt = cache_opt(sr_dataset, teacher_ckpt, tmp_path, 'cache_train', flips=True, gt_size=32)
    opt['train']['total_iter'] = 10
    opt['datasets']['train']['num_worker_per_gpu'] = 1  # the cache store must survive pickling into a worker
    path = write_opt(tmp_path / 'cache.yml', opt)
    refused = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path, check=False)
    assert refused.returncode == 2 and 'srcomp teacher-cache -opt' in refused.stderr, refused.stderr[-2000:]

    filled = run_module('srcomp_plugin.cli', ['teacher-cache', '-opt', path], cwd=tmp_path)
    assert 'computing 4 SR images' in filled.stderr and '4 computed, 0 already there' in filled.stdout
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'computing' not in log and 'Teacher network_t' not in log and log.count('l_distill') >= 10
    ckpt = torch.load(tmp_path / 'experiments' / 'cache_train' / 'models' / 'net_g_10.pth')
    assert set(ckpt['params']) == set(build_network(opt['network_g']).state_dict())
