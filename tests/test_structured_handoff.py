"""The stage 1 -> stage 2 handoff is lossless with ``train.sparsity.structured``: stage 1
decays exactly what ``srcomp compress --init pruned`` slices away, so the sliced student
computes what the stage-1 network computes; the choice survives ``--auto_resume``
bit-exactly; ``init_psnr`` measures a student's initialisation as BasicSR validates."""
import json
import re

import pytest
import torch
import yaml

import srcomp_plugin  # noqa: F401  (fills the registries)
from helpers import run_module, tiny_train_opt, use_obproxsg, write_opt
from srcomp_plugin.compress import compress, pruned_state_dict, write_outputs
from srcomp_plugin.compress.init_quality import init_psnr
from srcomp_plugin.compress.shape_rule import build_arch
from srcomp_plugin.compress.structured_decay import StructuredDecay, parse_structured
from srcomp_plugin.families.edsr import drop_masks as edsr_drop_masks
from test_resume_exact import KILL_AT, TOTAL, _run_pair

EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 4, 'upscale': 2,
        'res_scale': 1, 'img_range': 255., 'rgb_mean': [0.4488, 0.4371, 0.4040]}
STAGE1_EDSR = dict(EDSR, num_block=2)  # stage 1 keeps 1 of its 2 blocks and 4 of its 8 channels


def _kwargs(opt):
    return {k: v for k, v in opt.items() if k != 'type'}


def _random_teacher(network_g):
    """A teacher whose every weight and bias is random (BasicSR initialises biases to 0)."""
    torch.manual_seed(0)
    net = build_arch(network_g['type'], _kwargs(network_g)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return net


def _selected(network_g, ratio=0.3):
    teacher = _random_teacher(network_g)
    decay = StructuredDecay(parse_structured({'ratio': ratio}, network_g, total_iter=10))
    decay.select(teacher.named_parameters())
    return teacher, decay


def _zeroed(state, masks):
    return {k: v.masked_fill(masks[k], 0) if k in masks else v.clone() for k, v in state.items()}


def _slice(decay, state):
    shape = decay.shape
    return pruned_state_dict('EDSR', state, shape.teacher_kwargs, shape.student_type, shape.student_kwargs)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_masks_cover_exactly_what_the_slicer_drops(scale):
    teacher, decay = _selected(dict(EDSR, upscale=scale))
    state = teacher.state_dict()
    sliced, selection = _slice(decay, state)
    assert selection == decay.selection and len(selection['blocks']) == 2 and len(selection['stream']) == 4
    # the slicer reads no masked entry: zeroing them changes neither the choice nor a value
    sliced_zeroed, selection_zeroed = _slice(decay, _zeroed(state, decay.masks))
    assert selection_zeroed == selection
    for key, value in sliced.items():
        assert torch.equal(sliced_zeroed[key], value), key
    # ... and it reads every unmasked entry (index_select never reads an entry twice)
    student_params = {n for n, _ in build_arch(decay.shape.student_type, decay.shape.student_kwargs).named_parameters()}
    assert sum(int((~m).sum()) for m in decay.masks.values()) == sum(sliced[k].numel() for k in student_params)
    assert set(decay.masks) == {n for n, _ in teacher.named_parameters()}


@pytest.mark.parametrize('scale, teacher_type, res_scale',
                         [(2, 'EDSR', 1), (3, 'EDSR', 1), (4, 'EDSR', 1), (2, 'EDSRmini', 2)])
def test_zeroed_teacher_slices_to_an_identical_student(scale, teacher_type, res_scale):
    teacher, decay = _selected(dict(EDSR, type=teacher_type, upscale=scale, res_scale=res_scale))
    assert decay.shape.student_kwargs['res_scale'] == 2  # res_scale 1 -> 2 rescales each kept conv2
    teacher.load_state_dict(_zeroed(teacher.state_dict(), decay.masks))
    student = build_arch(decay.shape.student_type, decay.shape.student_kwargs).eval()
    student.load_state_dict(_slice(decay, teacher.state_dict())[0], strict=True)
    x = torch.rand(2, 3, 11, 9)
    with torch.no_grad():
        assert (student(x) - teacher(x)).abs().max() < 1e-4


def test_decay_schedule_with_adam_reaches_and_keeps_zero():
    teacher, _ = _selected(EDSR)
    decay = StructuredDecay(parse_structured({'ratio': 0.3, 'start': 0.2, 'end': 0.6}, EDSR, total_iter=10))
    assert (decay.plan.start_iter, decay.plan.end_iter) == (2, 6)
    assert [decay.keep_fraction(t) for t in range(8)] == [1, 1, 1, 0.75, 0.5, 0.25, 0, 0]
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    named = list(teacher.named_parameters())
    x = torch.rand(1, 3, 8, 8)
    kept_before = None
    for it in range(1, 11):
        if decay.due(it):
            assert it == 3  # chosen on the weights after iteration start_iter = 2
            decay.select(named)
            assert 0 < decay.dropped_l1(named) < 1
            kept_before = {n: p.detach()[~decay.masks[n]].clone() for n, p in named}
        optimizer.zero_grad()
        teacher(x).square().mean().backward()
        optimizer.step()
        decay.apply(named, it)
        if 3 <= it < 6:
            assert decay.dropped_l1(named) > 0, it
        elif it >= 6:  # exactly zero from the end on, although Adam's momentum keeps pushing them
            assert all(bool((p[decay.masks[n]] == 0).all()) for n, p in named), it
    assert any(not torch.equal(p.detach()[~decay.masks[n]], kept_before[n]) for n, p in named)  # still training


@pytest.mark.parametrize('structured, network_g, message', [
    ({'ratio': 0.3, 'start': 0.7, 'end': 0.7}, EDSR, r'structured.start must be in \[0, 1\) and < end'),
    ({'ratio': 0.3, 'start': -0.1}, EDSR, r'structured.start must be in \[0, 1\)'),
    ({'ratio': 0.3, 'end': 1.5}, EDSR, r'structured.end must be in \(0, 1\]'),
    ({'ratio': 0.3, 'start': 'soon'}, EDSR, 'structured.start must be a number'),
    ({'ratio': 0.3, 'depth_keep': 0}, EDSR, r'structured.depth_keep must be in \(0, 1\]'),
    ({'start': 0.1}, EDSR, 'exactly one of ratio'),
    ({'ratio': 0.3, 'params': 1000}, EDSR, 'exactly one of ratio'),
    ({'ratio': 1.5}, EDSR, r'structured.ratio: the compression ratio must lie in \(0, 1\]'),
    ({'params': -3}, EDSR, 'structured.params must be a positive integer'),
    ({'ratio': 0.3, 'stop': 0.9}, EDSR, 'unknown key'),
    (0.3, EDSR, 'must be a mapping'),
    ({'ratio': 1e-5}, EDSR, 'smaller than the smallest valid student'),
    ({'ratio': 0.3}, {'type': 'SwinIR', 'upscale': 2, 'img_size': 8, 'window_size': 4, 'embed_dim': 12,
                      'depths': [2], 'num_heads': [3]}, 'EDSR-family teachers only'),
])
def test_option_errors_name_the_key(structured, network_g, message):
    with pytest.raises(ValueError, match=message):
        parse_structured(structured, network_g, total_iter=10)


def test_model_checks_the_options_before_training(sr_dataset):
    from basicsr.models import build_model

    opt = _stage1_opt(sr_dataset, 'unit', start=0.5, end=0.25)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    with pytest.raises(ValueError, match=r'train.sparsity.structured.start must be in \[0, 1\) and < end'):
        build_model(opt)


# ----------------------------------------------------------------------------- through BasicSR


def _stage1_opt(sr_dataset, name, start, end, total_iter=TOTAL):
    opt = use_obproxsg(tiny_train_opt(sr_dataset, name, network_g=STAGE1_EDSR, total_iter=total_iter),
                       lambda_=1e-3, epoch_size=2, Np=2)
    opt['train']['sparsity']['structured'] = {'ratio': 0.3, 'depth_keep': 0.5, 'start': start, 'end': end}
    return opt


@pytest.fixture(scope='module')
def stage1(sr_dataset, tmp_path_factory):
    """8 iterations; chosen after iteration 2, dropped weights x 3/4, 2/4, 1/4, 0 at iterations 3-6."""
    root = tmp_path_factory.mktemp('structured')
    opt = _stage1_opt(sr_dataset, 'structured', start=0.25, end=0.75)
    opt['train']['ema_decay'] = 0  # BasicSR then validates net_g itself, the network that is sliced
    path = write_opt(root / 'prune.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=root)
    return {'root': root, 'opt_path': path, 'exp': root / 'experiments' / 'structured',
            'out': proc.stdout + proc.stderr}


def test_real_run_ends_with_the_dropped_weights_exactly_zero(stage1):
    out = stage1['out']
    assert 'structured decay: EDSRmini sub-network chosen on the weights after iteration 2' in out
    progress = [float(v) for v in re.findall(r'structured_progress: (\S+)', out)]
    assert progress == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1, 1, 1])
    state = torch.load(stage1['exp'] / 'training_states' / f'{TOTAL}.state', map_location='cpu', weights_only=False)
    saved = state['optimizers'][0]['srcomp_structured']
    assert (saved['start_iter'], saved['end_iter']) == (2, 6)
    params = torch.load(stage1['exp'] / 'models' / f'net_g_{TOTAL}.pth', map_location='cpu')['params']
    masks = edsr_drop_masks({k: v.shape for k, v in params.items()}, saved['selection'], _kwargs(STAGE1_EDSR))
    assert all(bool((params[k][m] == 0).all()) for k, m in masks.items())
    assert all(bool((params[k][~m] != 0).any()) for k, m in masks.items() if (~m).any())

    report = json.loads((stage1['exp'] / 'models' / f'sparsity_{TOTAL}.json').read_text())['structured']
    assert report['dropped_all_zero'] is True and report['dropped_l1'] == 0 and report['keep_fraction'] == 0
    assert report['student'] == saved['student'] and report['student']['num_feat'] == 4
    assert report['selection']['stream'] == saved['selection']['stream']
    assert {int(k): v for k, v in report['selection']['inner'].items()} == saved['selection']['inner']


def test_compress_slices_a_student_identical_to_the_stage1_network(stage1, tmp_path):
    ckpt = stage1['exp'] / 'models' / f'net_g_{TOTAL}.pth'
    result = compress(stage1['opt_path'], ckpt, tmp_path / 'distill.yml', ratio='0.3', depth_keep=0.5,
                      init='pruned', teacher_checkpoint=ckpt, macs=False)
    write_outputs(result)
    student_opt = result.distill_opt['network_g']
    student_sd = torch.load(result.init_checkpoint, map_location='cpu', weights_only=True)['params']
    student = build_arch(student_opt['type'], _kwargs(student_opt)).eval()
    student.load_state_dict(student_sd, strict=True)
    teacher = build_arch('EDSR', _kwargs(STAGE1_EDSR)).eval()
    teacher.load_state_dict(torch.load(ckpt, map_location='cpu')['params'])
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        assert (student(x) - teacher(x)).abs().max() < 1e-4

    # init_psnr measures the student as BasicSR measured the stage-1 network at its last validation
    logged = float(re.findall(r'# psnr: ([\d.]+)', stage1['out'])[-1])
    val_opt = yaml.safe_load(stage1['opt_path'].read_text())['datasets']['val']
    assert init_psnr(student_opt, student_sd, val_opt, 2) == pytest.approx(logged, abs=2e-3)


def test_resume_in_the_middle_of_the_decay_is_bit_exact(sr_dataset, tmp_path):
    # chosen after iteration 1, zero at 6: the kill at iteration 3 is mid-decay
    assert 1 < KILL_AT < 6
    final = _run_pair(tmp_path, lambda name: _stage1_opt(sr_dataset, name, start=0.125, end=0.75), 'after')
    state = torch.load(tmp_path / 'experiments' / 'killed' / 'training_states' / f'{KILL_AT}.state',
                       map_location='cpu', weights_only=False)
    assert state['optimizers'][0]['srcomp_structured']['selection'] is not None
    resumed_log = max((tmp_path / 'experiments' / 'killed').glob('train_killed_*.log'),
                      key=lambda p: p.stat().st_mtime).read_text()
    assert 'structured decay resumed with the sub-network chosen at iteration 1' in resumed_log
    assert 'sub-network chosen on the weights' not in resumed_log  # restored, not chosen again
    assert sum(int((v == 0).sum()) for v in final['params'].values()) > 0


def test_adam_stage1_decays_and_compress_reads_the_structured_target(sr_dataset, tmp_path):
    """The srcomp recipe's stage 1: Adam (no L1) with structured decay; compress needs no --ratio."""
    opt = _stage1_opt(sr_dataset, 'adam_structured', start=0.25, end=0.75)
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]}
    path = write_opt(tmp_path / 'prune.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'Stage 1 with Adam and structured decay: no L1 term' in out
    exp = tmp_path / 'experiments' / 'adam_structured'
    report = json.loads((exp / 'models' / f'sparsity_{TOTAL}.json').read_text())
    assert report['optimizer']['type'] == 'Adam' and report['structured']['dropped_all_zero'] is True

    ckpt = exp / 'models' / f'net_g_{TOTAL}.pth'
    result = compress(path, ckpt, tmp_path / 'distill.yml', teacher_checkpoint=ckpt, macs=False)
    write_outputs(result)
    assert result.report['target']['source'].startswith('train.sparsity.structured')
    assert result.distill_opt['network_g']['num_feat'] == report['structured']['student']['num_feat']
    student = build_arch(result.distill_opt['network_g']['type'], _kwargs(result.distill_opt['network_g'])).eval()
    student.load_state_dict(torch.load(result.init_checkpoint, weights_only=True)['params'], strict=True)
    teacher = build_arch('EDSR', _kwargs(STAGE1_EDSR)).eval()
    teacher.load_state_dict(torch.load(ckpt, weights_only=True)['params'])
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert (student(x) - teacher(x)).abs().max() < 1e-4


def test_adam_without_structured_decay_is_refused(sr_dataset):
    from basicsr.models import build_model

    opt = _stage1_opt(sr_dataset, 'adam_plain', start=0.25, end=0.75)
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': 1e-3}
    opt['train']['sparsity'].pop('structured')
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    with pytest.raises(ValueError, match='Adam is accepted only together with train.sparsity.structured'):
        build_model(opt)
