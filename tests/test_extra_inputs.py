"""Teacher-labelled extra inputs: ExtraInputsPairedImageDataset's two kinds of samples and its
option errors; DistillSRModel's pixel loss over labelled samples only, and a real run."""
import random
import re

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

import srcomp_plugin  # noqa: F401  (fills the registries)
from basicsr.data import build_dataset
from basicsr.models import build_model
from helpers import run_module, tiny_train_opt, use_teacher, write_opt
from test_distill_sr_model import parsed

LQ, GT = 16, 32  # tiny_train_opt's patch sizes at x2
BGR = (30, 120, 240)


def train_set_opt(sr_dataset, **options):
    """``datasets.train`` of the tiny options as BasicSR's parser leaves it, with our type."""
    opt = tiny_train_opt(sr_dataset, 'extra')['datasets']['train']
    opt = {k: str(v) if k.startswith('dataroot') else v for k, v in opt.items()}
    opt.update(type='ExtraInputsPairedImageDataset', phase='train', scale=2, **options)
    return opt


def draws(dataset, n, seed=0):
    random.seed(seed)
    return [dataset[i % len(dataset)] for i in range(n)]


def write_images(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), img)
    return folder


def test_labelled_and_unlabelled_samples(sr_dataset):
    dataset = build_dataset(train_set_opt(sr_dataset, extra_prob=0.3))
    samples = draws(dataset, 300)
    unlabelled = [s for s in samples if not s['labelled']]
    assert 0.22 < len(unlabelled) / len(samples) < 0.38
    assert all(s['lq'].shape == (3, LQ, LQ) and s['gt'].shape == (3, GT, GT) for s in samples)
    assert all(s['labelled'].dtype == torch.bool and s['labelled'].shape == () for s in samples)
    hr_files = {str(p) for p in sr_dataset['train_gt'].glob('*.png')}
    assert all(s['gt_path'] == '' and s['lq_path'] in hr_files and not s['gt'].any() for s in unlabelled)

    batch = default_collate(samples[:10])  # both kinds collate with DataLoader's default collate
    assert batch['lq'].shape == (10, 3, LQ, LQ) and batch['gt'].shape == (10, 3, GT, GT)
    assert batch['labelled'].shape == (10,) and 0 < batch['labelled'].sum() < 10

    # extra_prob 0: PairedImageDataset's samples, from the same random numbers
    plain = build_dataset(dict(train_set_opt(sr_dataset), type='PairedImageDataset'))
    for ours, theirs in zip(draws(build_dataset(train_set_opt(sr_dataset, extra_prob=0)), 6), draws(plain, 6)):
        assert ours.pop('labelled') and ours.keys() == theirs.keys()
        assert torch.equal(ours['lq'], theirs['lq']) and torch.equal(ours['gt'], theirs['gt'])


def test_default_source_is_zoomed_in_hr_crops(sr_dataset):
    opt = train_set_opt(sr_dataset, extra_prob=0.9, extra_zoom=[1, 1], use_hflip=False, use_rot=False)
    unlabelled = [s for s in draws(build_dataset(opt), 10) if not s['labelled']]
    assert unlabelled
    for sample in unlabelled:  # at zoom 1 the patch is HR pixels, unresampled
        hr = cv2.imread(sample['lq_path'])[..., ::-1].astype(np.float32) / 255
        patch = sample['lq'].permute(1, 2, 0).numpy()
        windows = np.lib.stride_tricks.sliding_window_view(hr, patch.shape)
        assert (np.abs(windows - patch).max(axis=(-3, -2, -1)) < 1e-6).any()


def test_extra_folder_is_the_source(sr_dataset, tmp_path):
    constant = write_images(tmp_path / 'constant', {
        'wide.png': np.full((40, 70, 3), BGR, np.uint8), 'sub/tall.jpg': np.full((100, 50, 3), BGR, np.uint8)})
    (constant / 'notes.txt').write_text('not an image')
    opt = train_set_opt(sr_dataset, extra_prob=0.9, dataroot_extra=str(constant))
    unlabelled = [s for s in draws(build_dataset(opt), 40) if not s['labelled']]
    assert {s['lq_path'] for s in unlabelled} == {str(constant / 'wide.png'), str(constant / 'sub' / 'tall.jpg')}
    rgb = torch.tensor(BGR[::-1], dtype=torch.float32).view(3, 1, 1) / 255
    assert all(torch.allclose(s['lq'], rgb.expand(3, LQ, LQ), atol=2 / 255) for s in unlabelled)  # jpg rounding

    # downscaling is antialiased: a one-pixel checkerboard halved becomes flat grey, not aliased
    checker = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)
    folder = write_images(tmp_path / 'checker', {'checker.png': np.stack([checker] * 3, axis=2)})
    opt = train_set_opt(sr_dataset, extra_prob=0.9, dataroot_extra=str(folder), extra_zoom=[0.5, 0.5])
    unlabelled = [s for s in draws(build_dataset(opt), 10) if not s['labelled']]
    assert unlabelled and all(torch.allclose(s['lq'], torch.tensor(0.5), atol=1e-6) for s in unlabelled)


@pytest.mark.parametrize('options, message', [
    ({'extra_prob': 1}, r'datasets.train.extra_prob must be a number in \[0, 1\).*got 1$'),
    ({'extra_prob': -0.1}, r'datasets.train.extra_prob .*got -0.1'),
    ({'extra_prob': '0.5'}, r"datasets.train.extra_prob .*got '0.5'"),
    ({'extra_zoom': [0.5]}, r'datasets.train.extra_zoom must be a range \[low, high\]'),
    ({'extra_zoom': [1, 0.5]}, r'datasets.train.extra_zoom .*got \[1, 0.5\]'),
    ({'extra_zoom': [0, 1]}, r'datasets.train.extra_zoom .*0 < low <= high'),
    ({'extra_zoom': [0.1, 1]}, r'datasets.train.dataroot_gt: .*HR/\w+.png is 96x96, smaller than the 160x160 '
                               r'region .*extra_zoom \(0.1\)'),
    ({'gt_size': None}, r'datasets.train.gt_size is required'),
])
def test_option_errors(sr_dataset, options, message):
    with pytest.raises(ValueError, match=message):
        build_dataset(train_set_opt(sr_dataset, **options))


def test_extra_folder_errors(sr_dataset, tmp_path):
    missing = tmp_path / 'missing'
    with pytest.raises(ValueError, match=f'datasets.train.dataroot_extra: folder {missing} does not exist'):
        build_dataset(train_set_opt(sr_dataset, dataroot_extra=str(missing)))
    empty = tmp_path / 'empty'
    (empty / 'sub').mkdir(parents=True)
    (empty / 'readme.txt').write_text('no images here')
    with pytest.raises(ValueError, match=f'datasets.train.dataroot_extra: folder {empty} holds no images'):
        build_dataset(train_set_opt(sr_dataset, dataroot_extra=str(empty)))
    small = write_images(tmp_path / 'small', {'ok.png': np.zeros((64, 64, 3), np.uint8),
                                              'tiny.png': np.zeros((20, 40, 3), np.uint8)})
    with pytest.raises(ValueError, match=r'dataroot_extra: .*tiny.png is 40x20, smaller than the 32x32 region'):
        build_dataset(train_set_opt(sr_dataset, dataroot_extra=str(small)))


def test_validation_phase_is_paired_image_dataset(sr_dataset):
    val = {k: str(v) if k.startswith('dataroot') else v
           for k, v in tiny_train_opt(sr_dataset, 'extra')['datasets']['val'].items()}
    val.update(phase='val', scale=2)
    ours = build_dataset(dict(val, type='ExtraInputsPairedImageDataset', extra_prob=2))  # ignored outside train
    theirs = build_dataset(dict(val, type='PairedImageDataset'))
    for i in range(len(theirs)):
        a, b = ours[i], theirs[i]
        assert a.keys() == b.keys() and torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt'])


def kd_opt(sr_dataset, teacher, name, **dataset):
    opt = use_teacher(tiny_train_opt(sr_dataset, name, model_type='DistillSRModel'), teacher)
    opt['datasets']['train'].update(type='ExtraInputsPairedImageDataset', **dataset)
    return opt


def student(opt, seed=0):
    torch.manual_seed(seed)
    return build_model(opt)


def test_unlabelled_samples_train_on_the_teacher_only(sr_dataset, random_teacher, tmp_path, monkeypatch,
                                                      one_thread):
    opt = parsed(kd_opt(sr_dataset, random_teacher, 'extra_step'), tmp_path, monkeypatch)
    random.seed(0)
    batch = default_collate([build_dataset(opt['datasets']['train'])[i] for i in range(4)])
    garbage_gt = torch.full_like(batch['gt'], float('nan'))
    unlabelled = dict(batch, gt=garbage_gt, labelled=torch.zeros(4, dtype=torch.bool))

    model = student(opt)
    distill_only = student(parsed(dict(opt, train=dict(opt['train'], pixel_opt=None)), tmp_path, monkeypatch))
    for m in (model, distill_only):
        m.feed_data(unlabelled)
        m.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_distill'}  # no pixel loss computed, none logged
    after, reference = model.net_g.state_dict(), distill_only.net_g.state_dict()
    assert all(torch.equal(after[k], reference[k]) for k in after)  # the same step as distillation alone

    # a mixed batch: the pixel loss is the mean over the labelled samples; NaN GTs elsewhere are never read
    labelled = torch.tensor([True, False, True, False])
    mixed = dict(batch, gt=torch.where(labelled.view(4, 1, 1, 1), batch['gt'], garbage_gt), labelled=labelled)
    model.feed_data(mixed)
    with torch.no_grad():
        expected = model.cri_pix(model.net_g(model.lq[labelled]), model.gt[labelled]).item()
    model.optimize_parameters(2)
    assert model.get_current_log()['l_pix'] == pytest.approx(expected, rel=1e-5)
    assert all(torch.isfinite(p).all() for p in model.net_g.parameters())


def test_ddp_logs_a_zero_pixel_loss(sr_dataset, random_teacher, tmp_path, monkeypatch, one_thread):
    """Under DDP, reduce_loss_dict stacks every rank's losses: each rank must log the same keys."""
    opt = parsed(kd_opt(sr_dataset, random_teacher, 'extra_ddp'), tmp_path, monkeypatch)
    random.seed(0)
    batch = default_collate([build_dataset(opt['datasets']['train'])[i] for i in range(2)])
    model = student(opt)
    model.feed_data(dict(batch, labelled=torch.zeros(2, dtype=torch.bool)))
    torch.distributed.init_process_group('gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    try:
        model.opt.update(dist=True, rank=0, world_size=1)
        model.optimize_parameters(1)
    finally:
        torch.distributed.destroy_process_group()
    assert list(model.get_current_log()) == ['l_distill', 'l_pix'] and model.get_current_log()['l_pix'] == 0


def test_unlabelled_samples_need_a_live_teacher(sr_dataset, random_teacher, tmp_path, monkeypatch):
    no_teacher = kd_opt(sr_dataset, random_teacher, 'extra_no_teacher')
    no_teacher['train']['distill_opt'] = None
    with pytest.raises(ValueError, match=r'ExtraInputsPairedImageDataset with extra_prob > 0 .*train.distill_opt '
                                         r'is empty'):
        build_model(parsed(no_teacher, tmp_path, monkeypatch))
    no_teacher['datasets']['train']['extra_prob'] = 0  # the same dataset as a scratch baseline: allowed
    assert build_model(parsed(no_teacher, tmp_path, monkeypatch)).cri_distill is None

    cached = kd_opt(sr_dataset, random_teacher, 'extra_cached', dataroot_teacher=str(tmp_path / 'cache'))
    cached['train']['teacher_cache'] = {'format': 'png'}
    with pytest.raises(ValueError, match='train.teacher_cache holds teacher outputs for the labelled training '
                                         'images only'):
        build_model(parsed(cached, tmp_path, monkeypatch))


def test_training_run_with_extra_inputs(sr_dataset, random_teacher, tmp_path):
    rng = np.random.default_rng(0)
    extra = write_images(tmp_path / 'extra', {
        'noise.png': rng.integers(0, 256, (48, 80, 3), dtype=np.uint8),
        'smooth.png': cv2.GaussianBlur(rng.integers(0, 256, (130, 90, 3), dtype=np.uint8), (9, 9), 3)})
    opt = kd_opt(sr_dataset, random_teacher, 'extra_run', extra_prob=0.5, dataroot_extra=str(extra))
    opt['train']['total_iter'] = 4
    run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'extra.yml', opt)], cwd=tmp_path)
    log = (tmp_path / 'experiments' / 'extra_run').glob('train_extra_run_*.log')
    iters = re.findall(r'iter:\s+(\d+).*l_distill', next(log).read_text())
    assert [int(i) for i in iters] == [1, 2, 3, 4]
    assert (tmp_path / 'experiments' / 'extra_run' / 'models' / 'net_g_latest.pth').is_file()
