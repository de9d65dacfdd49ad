"""DistillSRModel: a frozen teacher, both loss terms, BasicSR's pipeline (train, resume,
torchrun) and clear errors for a missing teacher or a scale mismatch."""
import copy
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import srcomp_plugin  # noqa: F401  (fills the registries)
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.options import parse_options
from helpers import run_module, run_torchrun, write_opt
from srcomp_plugin.accel.edsr_fused_convs import use_eager_convs
from srcomp_plugin.models.distill_sr_model import apply_release_aliases

REPO = Path(__file__).resolve().parents[1]
TINY_OPT = REPO / 'tests' / 'data' / 'options' / 'train_EDSRmini_x2_distill_tiny_cpu.yml'


def _load_tiny():
    return yaml.safe_load(TINY_OPT.read_text())


def _teacher_net(upscale=2, **changes):
    opt = dict(_load_tiny()['network_t'], upscale=upscale, **changes)
    return build_network(opt)


def _train_teacher(sr_dataset, steps=120):
    """A few Adam steps of the tiny teacher on the training photos, so it is a real SR model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: extra threads only contend on a shared CPU
    try:
        return _fit_teacher(sr_dataset, steps)
    finally:
        torch.set_num_threads(threads)


def _fit_teacher(sr_dataset, steps):
    torch.manual_seed(0)
    net = _teacher_net()
    pairs = []
    for hr_path in sorted(Path(sr_dataset['train_gt']).glob('*.png')):
        lq_path = Path(sr_dataset['train_lq']) / f'{hr_path.stem}x2.png'
        hr = torch.from_numpy(cv2.imread(str(hr_path))[..., ::-1].copy()).permute(2, 0, 1).float() / 255
        lq = torch.from_numpy(cv2.imread(str(lq_path))[..., ::-1].copy()).permute(2, 0, 1).float() / 255
        pairs.append((lq, hr))
    optim = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        lqs, hrs = [], []
        for lq, hr in pairs:
            y, x = rng.integers(0, lq.shape[1] - 16 + 1, size=2)
            lqs.append(lq[:, y:y + 16, x:x + 16])
            hrs.append(hr[:, 2 * y:2 * y + 32, 2 * x:2 * x + 32])
        loss = (net(torch.stack(lqs)) - torch.stack(hrs)).abs().mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    return net


@pytest.fixture(scope='module')
def teacher_ckpt(sr_dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp('teacher') / 'teacher_x2.pth'
    torch.save({'params': _train_teacher(sr_dataset).state_dict()}, path)
    return path


def tiny_opt(sr_dataset, teacher_path, name, total_iter=20):
    """The tiny CPU option file, pointed at the test data and the test teacher."""
    opt = _load_tiny()
    opt['name'] = name
    train, val = opt['datasets']['train'], opt['datasets']['val']
    train['dataroot_gt'], train['dataroot_lq'] = str(sr_dataset['train_gt']), str(sr_dataset['train_lq'])
    val['dataroot_gt'], val['dataroot_lq'] = str(sr_dataset['val_gt']), str(sr_dataset['val_lq'])
    opt['path']['pretrain_network_t'] = str(teacher_path)
    opt['train']['total_iter'] = total_iter
    return opt


def parsed(opt, tmp_path, monkeypatch):
    """The option dict as BasicSR's own ``parse_options`` turns it into a model's ``opt``."""
    path = write_opt(tmp_path / f'{opt["name"]}.yml', opt)
    monkeypatch.setattr(sys, 'argv', ['train', '-opt', str(path)])
    parsed_opt, _ = parse_options(str(tmp_path), is_train=True)
    return parsed_opt


def batches(opt, n):
    dataset = build_dataset(opt['datasets']['train'])
    loader = torch.utils.data.DataLoader(dataset, batch_size=opt['datasets']['train']['batch_size_per_gpu'],
                                         shuffle=True, drop_last=True)
    out = []
    while len(out) < n:
        out.extend(loader)
    return out[:n]


def _losses(log, key):
    return [float(v) for v in re.findall(rf'{key}: ([0-9.e+-]+)', log)]


def test_kd_run_through_train_pipeline(sr_dataset, teacher_ckpt, tmp_path):
    opt = tiny_opt(sr_dataset, teacher_ckpt, 'kd_tiny', total_iter=30)
    opt['val']['val_freq'] = 15
    opt['logger']['save_checkpoint_freq'] = 15
    before = torch.load(teacher_ckpt)['params']
    proc = run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'kd.yml', opt)], cwd=tmp_path)
    log = proc.stdout + proc.stderr

    distill, pix = _losses(log, 'l_distill'), _losses(log, 'l_pix')
    assert len(distill) == len(pix) == 30  # both terms logged every iteration
    assert np.mean(distill[-5:]) < 0.7 * np.mean(distill[:5]), distill
    assert log.count('# psnr:') >= 2  # validation at 15, 30 and after the end

    # the teacher file is untouched and the student checkpoint holds student keys only
    after = torch.load(teacher_ckpt)['params']
    assert all(torch.equal(before[k], after[k]) for k in before)
    ckpt = torch.load(tmp_path / 'experiments' / 'kd_tiny' / 'models' / 'net_g_30.pth')
    student_keys = set(build_network(opt['network_g']).state_dict())
    assert set(ckpt) == {'params', 'params_ema'}
    assert set(ckpt['params']) == set(ckpt['params_ema']) == student_keys
    assert student_keys != set(before)  # the two architectures really differ


def test_teacher_is_frozen_and_untouched(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    opt = parsed(tiny_opt(sr_dataset, teacher_ckpt, 'kd_frozen'), tmp_path, monkeypatch)
    model = build_model(opt)
    teacher = model.net_t
    snapshot = {k: v.clone() for k, v in teacher.state_dict().items()}
    grad_modes = []
    teacher.register_forward_pre_hook(lambda mod, inp: grad_modes.append(torch.is_grad_enabled()))
    student_before = {k: v.clone() for k, v in model.net_g.state_dict().items()}

    for batch in batches(opt, 3):
        model.feed_data(batch)
        model.optimize_parameters(1)
        assert set(model.get_current_log()) == {'l_distill', 'l_pix'}

    assert grad_modes == [False] * 3  # the teacher ran once per step, without autograd
    assert not teacher.training and type(teacher).__name__ == 'FusedEDSR'  # eval mode, fused convs, not wrapped
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(torch.equal(snapshot[k], v) for k, v in teacher.state_dict().items())
    optimised = {id(p) for group in model.optimizer_g.param_groups for p in group['params']}
    assert not optimised & {id(p) for p in teacher.parameters()}
    assert any(not torch.equal(student_before[k], v) for k, v in model.net_g.state_dict().items())
    assert set(model.net_g_ema.state_dict()) == set(student_before)


def test_defaults_and_loss_combinations(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    base = tiny_opt(sr_dataset, teacher_ckpt, 'kd_combos')
    default = dict(base, train={k: v for k, v in base['train'].items() if k != 'distill_opt'})
    model = build_model(parsed(default, tmp_path, monkeypatch))
    assert type(model.cri_distill).__name__ == 'MultiLapLoss' and model.cri_distill.loss_weight == 1.0

    only_distill = dict(base, train=dict(base['train'], pixel_opt=None))
    opt = parsed(only_distill, tmp_path, monkeypatch)
    model = build_model(opt)
    assert model.cri_pix is None and model.opt['train']['pixel_opt'] is None
    model.feed_data(batches(opt, 1)[0])
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_distill'}

    no_distill = dict(base, train=dict(base['train'], distill_opt=None))
    model = build_model(parsed(no_distill, tmp_path, monkeypatch))
    assert model.cri_distill is None and model.net_t is None

    neither = dict(base, train=dict(base['train'], distill_opt=None, pixel_opt=None))
    with pytest.raises(ValueError, match='train.distill_opt .* train.pixel_opt'):
        build_model(parsed(neither, tmp_path, monkeypatch))


def test_release_key_names_are_aliases(sr_dataset, teacher_ckpt, tmp_path, monkeypatch, caplog):
    opt = tiny_opt(sr_dataset, teacher_ckpt, 'kd_release_keys')
    opt['tea_network_g'] = opt.pop('network_t')
    opt['tea_path'] = {'pretrain_network_g': opt['path'].pop('pretrain_network_t'), 'strict_load_g': True}
    opt['path'].pop('param_key_t')
    opt['path'].pop('strict_load_t')
    opt['train']['dis_opt'] = opt['train'].pop('distill_opt')
    opt['train']['stu_opt'] = opt['train'].pop('pixel_opt')
    with caplog.at_level('WARNING', logger='basicsr'):
        model = build_model(parsed(opt, tmp_path, monkeypatch))
    assert model.net_t is not None and model.cri_pix.loss_weight == 0.1
    assert sum('deprecated' in r.message for r in caplog.records) == 4

    clash = {'network_t': {'type': 'EDSR'}, 'tea_network_g': {'type': 'EDSR'}}
    with pytest.raises(ValueError, match='tea_network_g and network_t are both set'):
        apply_release_aliases(clash)


def test_missing_or_bad_teacher_checkpoint(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    opt = tiny_opt(sr_dataset, tmp_path / 'nowhere.pth', 'kd_missing')
    with pytest.raises(FileNotFoundError, match=r'path.pretrain_network_t: .*nowhere.pth does not exist'):
        build_model(parsed(opt, tmp_path, monkeypatch))

    opt['path']['pretrain_network_t'] = None
    with pytest.raises(ValueError, match='needs path.pretrain_network_t'):
        build_model(parsed(opt, tmp_path, monkeypatch))

    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    opt['path']['pretrain_network_t'] = str(garbage)
    with pytest.raises(RuntimeError, match='path.pretrain_network_t: .*garbage.pth is not a readable PyTorch'):
        build_model(parsed(opt, tmp_path, monkeypatch))

    opt['path']['pretrain_network_t'] = str(teacher_ckpt)
    opt['network_t']['num_feat'] = 8  # does not match the checkpoint
    with pytest.raises(RuntimeError, match=r'path.pretrain_network_t: .*does not fit the EDSR built from network_t'):
        build_model(parsed(opt, tmp_path, monkeypatch))

    opt['network_t']['num_feat'] = 16
    opt['path']['param_key_t'] = 'params_ema'  # absent: falls back to 'params' like BasicSR
    assert build_model(parsed(opt, tmp_path, monkeypatch)).net_t is not None


def test_scale_mismatch_fails_on_first_batch(sr_dataset, tmp_path, monkeypatch):
    ckpt = tmp_path / 'teacher_x3.pth'
    torch.save({'params': _teacher_net(upscale=3).state_dict()}, ckpt)
    opt = tiny_opt(sr_dataset, ckpt, 'kd_scale')
    opt['network_t']['upscale'] = 3
    opt = parsed(opt, tmp_path, monkeypatch)
    model = build_model(opt)
    model.feed_data(batches(opt, 1)[0])
    with pytest.raises(ValueError, match=r'network_t.upscale \(3\) and network_g.upscale \(2\) must both equal '
                                         r'scale \(2\)'):
        model.optimize_parameters(1)


def test_auto_resume_keeps_the_teachers_checkpoint_and_key(sr_dataset, tmp_path):
    """BasicSR's resume points every pretrain_network_* at models/ and turns params_ema into params;
    the teacher keeps both, so a resumed run distils from the same weights."""
    ckpt = tmp_path / 'teacher_ema.pth'
    torch.save({'params': _teacher_net(num_feat=8).state_dict(), 'params_ema': _teacher_net().state_dict()}, ckpt)
    opt = tiny_opt(sr_dataset, ckpt, 'kd_resume', total_iter=4)
    opt['path']['param_key_t'] = 'params_ema'  # 'params' would not even load into network_t
    opt['logger']['save_checkpoint_freq'] = 2
    opt['val']['val_freq'] = 100
    first = write_opt(tmp_path / 'first.yml', dict(opt, train=dict(opt['train'], total_iter=2)))
    run_module('srcomp_plugin.train', ['-opt', first], cwd=tmp_path)
    proc = run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'second.yml', opt), '--auto_resume'],
                      cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'Resuming training from epoch' in out and 'iter: 2' in out
    assert f'Loading EDSR model from {ckpt}, with param key: [params_ema]' in out
    assert 'l_distill' in out and (tmp_path / 'experiments' / 'kd_resume' / 'models' / 'net_g_4.pth').is_file()
    assert not (tmp_path / 'experiments' / 'kd_resume' / 'teacher.json').exists()  # no side file


def test_torchrun_two_processes(sr_dataset, teacher_ckpt, tmp_path):
    opt = tiny_opt(sr_dataset, teacher_ckpt, 'kd_ddp', total_iter=2)
    opt['datasets']['train']['batch_size_per_gpu'] = 2
    opt['val']['val_freq'] = 2
    opt['logger']['save_checkpoint_freq'] = 2
    proc = run_torchrun(2, 'srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'ddp.yml', opt)], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'World size (gpu number): 2' in out and 'l_distill' in out
    ckpt = torch.load(tmp_path / 'experiments' / 'kd_ddp' / 'models' / 'net_g_2.pth')
    assert set(ckpt['params']) == set(build_network(opt['network_g']).state_dict())


# Parameter counts at x2 from docs/method.md (measured on BasicSR's architectures).
RELEASE_PARAMS_X2 = {'EDSRmini': (49603, 1369859), 'SwinIRmini': (98868, 910152)}


@pytest.mark.parametrize('student', ['EDSRmini', 'SwinIRmini'])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_release_option_files(student, scale):
    opt = yaml.safe_load((REPO / 'options' / 'distill' / f'train_{student}_x{scale}_distill.yml').read_text())
    assert opt['model_type'] == 'DistillSRModel' and opt['scale'] == scale
    assert opt['network_g']['upscale'] == opt['network_t']['upscale'] == scale
    train = opt['train']
    assert train['distill_opt'] == {'type': 'MultiLapLoss', 'loss_weight': 1.0}
    assert train['pixel_opt']['type'] == 'L1Loss' and train['pixel_opt']['loss_weight'] == 0.1
    assert float(train['optim_g']['lr']) == 1e-4 and train['ema_decay'] == 0.999 and train['total_iter'] == 800000
    gt_size = opt['datasets']['train']['gt_size']
    assert gt_size % 16 == 0 and gt_size % scale == 0  # MultiLapLoss and the paired crop
    if student == 'SwinIRmini':
        assert (gt_size // scale) % opt['network_t']['window_size'] == 0  # BasicSR's SwinIR needs it
    assert opt['path']['pretrain_network_g'] is None and opt['path']['pretrain_network_t']
    if scale == 2:
        n_student = sum(p.numel() for p in build_network(opt['network_g']).parameters())
        n_teacher = sum(p.numel() for p in build_network(opt['network_t']).parameters())
        assert (n_student, n_teacher) == RELEASE_PARAMS_X2[student]


def test_fast_teacher_options_give_close_float32_targets(sr_dataset, teacher_ckpt, tmp_path, monkeypatch):
    """train.teacher_precision: bf16 / teacher_channels_last: float32 targets close to the fp32 teacher's."""
    exact = build_model(parsed(tiny_opt(sr_dataset, teacher_ckpt, 'kd_fp32'), tmp_path, monkeypatch))
    fast_opt = tiny_opt(sr_dataset, teacher_ckpt, 'kd_bf16')
    fast_opt['train'].update(teacher_precision='bf16', teacher_channels_last=True)
    fast = build_model(parsed(fast_opt, tmp_path, monkeypatch))
    batch = next(iter(batches(parsed(fast_opt, tmp_path, monkeypatch), 1)))
    exact.feed_data(batch)
    fast.feed_data(batch)
    a, b = exact.teacher_targets(), fast.teacher_targets()
    with torch.no_grad():  # the fp32 teacher runs the fused convolutions: BasicSR's output to rounding
        basicsr_targets = use_eager_convs(copy.deepcopy(exact.net_t))(exact.lq)
    assert exact.net_t.fused_convs and torch.allclose(a, basicsr_targets, atol=1e-5)
    assert b.dtype == torch.float32 and b.shape == a.shape
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    assert 0 < mse and 10 * np.log10(1 / mse) > 35  # bf16 changes the values, but only slightly
    fast.optimize_parameters(1)
    assert set(fast.get_current_log()) == {'l_distill', 'l_pix'}

    bad = tiny_opt(sr_dataset, teacher_ckpt, 'kd_fp8')
    bad['train']['teacher_precision'] = 'fp8'
    with pytest.raises(ValueError, match="train.teacher_precision must be fp32 or bf16, got 'fp8'"):
        build_model(parsed(bad, tmp_path, monkeypatch))
