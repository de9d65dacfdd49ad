"""Stage 1 through BasicSR's real training pipeline: ``SparseSRModel`` (OBProx-SG) on
scikit-image photographs on CPU, its density logs, tensorboard scalars and JSON reports,
``--auto_resume``, a 2-process torchrun job, the option files and ``srcomp sparsity``."""
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from helpers import run_module, run_torchrun, write_opt
from srcomp_plugin.cli import main as srcomp_main
from srcomp_plugin.measure.sparsity import default_measure_patterns, density_report, select_params

OPTIONS = Path(__file__).resolve().parents[1] / 'options' / 'prune'
TINY = Path(__file__).resolve().parent / 'data' / 'options' / 'tiny_cpu_EDSR_x2_prune.yml'
MSG_LINE = re.compile(r'iter:\s*([\d,]+),.*density: (\S+) orthant_phase: (\S+)')


def tiny_prune_opt(sr_dataset, name, total_iter, save_every, **optim):
    """The tiny CPU option file, pointed at the test photographs."""
    opt = yaml.safe_load(TINY.read_text())
    opt['name'] = name
    for split in ('train', 'val'):
        opt['datasets'][split]['dataroot_gt'] = sr_dataset[f'{split}_gt']
        opt['datasets'][split]['dataroot_lq'] = sr_dataset[f'{split}_lq']
    opt['train']['total_iter'] = total_iter
    opt['train']['optim_g'].update(optim)
    opt['logger'].update(print_freq=5, save_checkpoint_freq=save_every)
    opt['val']['val_freq'] = 10 ** 6
    return opt


def logged_curve(text):
    """(iter, density, orthant_phase) from BasicSR's MessageLogger lines."""
    return [(int(m[1].replace(',', '')), float(m[2]), float(m[3])) for m in MSG_LINE.finditer(text)]


def body_zeros(state_dict):
    return {k: v == 0 for k, v in state_dict.items() if k in select_params(state_dict, ['body.*.weight'])}


@pytest.fixture(scope='module')
def pruned(sr_dataset, tmp_path_factory):
    """60 iterations from scratch: epoch_size auto (= 1 iteration), Np 20 -> orthant from iter 21."""
    root = tmp_path_factory.mktemp('prune')
    opt = tiny_prune_opt(sr_dataset, 'tiny_prune', total_iter=60, save_every=30)
    opt['logger']['use_tb_logger'] = True
    path = write_opt(root / 'prune.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=root)
    exp = root / 'experiments' / 'tiny_prune'
    return {'root': root, 'exp': exp, 'opt': opt, 'out': proc.stdout + proc.stderr}


def test_density_falls_and_phase_switches_in_a_real_run(pruned):
    from basicsr.archs import build_network

    out = pruned['out']
    assert 'OBProx-SG epoch_size auto = 1 (4 samples / (batch 4 x world size 1)' in out
    initial = build_network(dict(pruned['opt']['network_g'])).state_dict()
    assert density_report(initial, ['body.*.weight'])['num_zero'] == 0  # training starts with no zeros

    curve = logged_curve(out)
    assert [it for it, _, _ in curve] == list(range(5, 61, 5))
    assert curve[0][1] > 0.95 and curve[-1][1] < 0.75  # from ~0 to a clearly positive fraction of zeros
    assert all(phase == 0 for it, _, phase in curve if it <= 20)
    assert all(phase == 1 for it, _, phase in curve if it > 20)
    assert 'OBProx-SG: orthant steps from iter 21 (optimizer step 20, phase epoch 20)' in out
    orthant = [d for it, d, phase in curve if phase == 1]
    assert orthant == sorted(orthant, reverse=True)  # orthant steps never revive a zero

    # tensorboard got the same scalars (BasicSR's MessageLogger writes the log dict)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(pruned['root'] / 'tb_logger' / 'tiny_prune'))
    events.Reload()
    tb_density = [(e.step, e.value) for e in events.Scalars('density')]
    assert [s for s, _ in tb_density] == [it for it, _, _ in curve]
    assert [v for _, v in tb_density] == pytest.approx([d for _, d, _ in curve], abs=1e-4)
    assert [e.value for e in events.Scalars('orthant_phase')] == [p for _, _, p in curve]


def test_report_json_matches_the_saved_weights(pruned):
    models = pruned['exp'] / 'models'
    report = json.loads((models / 'sparsity_60.json').read_text())
    ckpt = torch.load(models / 'net_g_60.pth', map_location='cpu')
    assert set(ckpt) == {'params', 'params_ema'}
    params = ckpt['params']
    measured = sorted(k for k in params if re.fullmatch(r'body\.\d+\.conv[12]\.weight', k))
    assert sorted(report['tensors']) == measured

    zeros = sum(int((params[k] == 0).sum()) for k in measured)
    numel = sum(params[k].numel() for k in measured)
    assert (report['num_zero'], report['num_measured']) == (zeros, numel)
    assert report['global_density'] == pytest.approx(1 - zeros / numel)
    assert report['global_density'] == pytest.approx(logged_curve(pruned['out'])[-1][1], abs=1e-4)
    for name in measured:
        w = params[name]
        entry = report['tensors'][name]
        assert entry['zeros'] == int((w == 0).sum()) and entry['shape'] == list(w.shape)
        assert entry['per_channel'] == pytest.approx((w != 0).float().flatten(1).mean(1).tolist())
    for block in ('body.0', 'body.1'):
        names = [k for k in measured if k.startswith(block + '.')]
        nz = sum(int((params[k] != 0).sum()) for k in names)
        assert report['blocks'][block] == pytest.approx(nz / sum(params[k].numel() for k in names))
    assert set(report['blocks']) == {'body.0', 'body.1'}
    assert report['optimizer']['phase'] == 'orthant' and report['optimizer']['num_steps'] == 60
    assert report['ranks_in_sync'] is True

    # density is measured on the trained weights: the EMA copy is not sparse
    ema = density_report(ckpt['params_ema'], ['body.*.weight'])
    assert ema['global_density'] > report['global_density']
    # orthant phase (iter 21 on): every zero at iter 30 is still zero at iter 60
    before = body_zeros(torch.load(models / 'net_g_30.pth', map_location='cpu')['params'])
    after = body_zeros(params)
    assert all(bool((after[k] | ~before[k]).all()) for k in before)
    assert sum(int(v.sum()) for v in after.values()) > sum(int(v.sum()) for v in before.values())


def test_auto_resume_continues_in_the_orthant_phase(pruned, tmp_path):
    shutil.copytree(pruned['exp'], tmp_path / 'experiments' / 'tiny_prune')
    opt = dict(pruned['opt'], logger=dict(pruned['opt']['logger'], use_tb_logger=False, save_checkpoint_freq=10))
    opt['train'] = dict(opt['train'], total_iter=70)
    path = write_opt(tmp_path / 'resume.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path, '--auto_resume'], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'Resuming training from epoch' in out and 'iter: 60' in out
    assert 'OBProx-SG resumed at optimizer step 60' in out
    assert 'OBProx-SG: orthant steps from iter 61 (optimizer step 60' in out
    assert 'prox-sg steps from iter' not in out  # a reset counter would restart Prox-SG here
    assert [it for it, _, phase in logged_curve(out) if phase == 1] == [65, 70]

    models = tmp_path / 'experiments' / 'tiny_prune' / 'models'
    state = torch.load(tmp_path / 'experiments' / 'tiny_prune' / 'training_states' / '70.state',
                       map_location='cpu', weights_only=False)
    assert state['iter'] == 70 and state['optimizers'][0]['obproxsg']['num_steps'] == 70
    report = json.loads((models / 'sparsity_70.json').read_text())
    assert report['optimizer']['phase'] == 'orthant' and report['optimizer']['num_steps'] == 70
    before = body_zeros(torch.load(models / 'net_g_60.pth', map_location='cpu')['params'])
    after = body_zeros(torch.load(models / 'net_g_70.pth', map_location='cpu')['params'])
    assert all(bool((after[k] | ~before[k]).all()) for k in before)


def test_torchrun_ranks_take_identical_steps(sr_dataset, tmp_path):
    """2 gloo processes, 1 image each per step: epoch_size auto = ceil(4 / (1 x 2)) = 2, Np 1."""
    opt = tiny_prune_opt(sr_dataset, 'tiny_prune_ddp', total_iter=6, save_every=6, Np=1)
    opt['datasets']['train']['batch_size_per_gpu'] = 1
    proc = run_torchrun(2, 'srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'ddp.yml', opt)], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'World size (gpu number): 2' in out and 'OBProx-SG epoch_size auto = 2' in out
    models = tmp_path / 'experiments' / 'tiny_prune_ddp' / 'models'
    report = json.loads((models / 'sparsity_6.json').read_text())
    assert report['optimizer']['phase'] == 'orthant'
    ranks = report['ranks']
    assert [r['rank'] for r in ranks] == [0, 1] and report['ranks_in_sync'] is True
    assert ranks[0]['num_zero'] > 0 and ranks[0]['num_steps'] == ranks[1]['num_steps'] == 6
    # rank 1's weights equal rank 0's, and rank 0's fingerprint is that of the saved weights
    params = [p.double() for p in torch.load(models / 'net_g_6.pth', map_location='cpu')['params'].values()]
    for r in ranks:
        assert r['num_zero'] == sum(int((p == 0).sum()) for p in params)
        assert r['sum'] == pytest.approx(sum(float(p.sum()) for p in params), rel=1e-12)
        assert r['abs_sum'] == pytest.approx(sum(float(p.abs().sum()) for p in params), rel=1e-12)


def test_srcomp_sparsity_command(pruned, capsys):
    ckpt = pruned['exp'] / 'models' / 'net_g_60.pth'
    saved = json.loads((pruned['exp'] / 'models' / 'sparsity_60.json').read_text())
    assert srcomp_main(['sparsity', str(ckpt), '--json', '-opt', str(pruned['root'] / 'prune.yml')]) == 0
    printed = json.loads(capsys.readouterr().out)
    for key in ('global_density', 'num_measured', 'num_zero', 'blocks', 'tensors'):
        assert printed[key] == saved[key]
    assert printed['key'] == 'params'

    assert srcomp_main(['sparsity', str(ckpt)]) == 0  # no option file: EDSR recognised from the keys
    table = capsys.readouterr().out
    assert f"global density {saved['global_density']:.4f}" in table and 'body.1.conv2.weight' in table

    assert srcomp_main(['sparsity', str(ckpt), '--json', '--key', 'params_ema']) == 0
    assert json.loads(capsys.readouterr().out)['global_density'] > saved['global_density']

    assert srcomp_main(['sparsity', str(ckpt), '--measure', 'conv_last.*', '--json']) == 0
    assert list(json.loads(capsys.readouterr().out)['tensors']) == ['conv_last.weight', 'conv_last.bias']

    assert srcomp_main(['sparsity', str(ckpt), '--measure', 'nothing.*']) == 2
    assert 'match none' in capsys.readouterr().err


# ---------------------------------------------------------------- in-process, no training
def _model_opt(sr_dataset, network_g=None, **train):
    """The parsed form of the tiny option file, as BasicSR's parse_options leaves it."""
    opt = tiny_prune_opt(sr_dataset, 'unit', total_iter=1, save_every=1)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    for phase, dataset in opt['datasets'].items():
        dataset.update(phase=phase.split('_')[0], scale=2)
    if network_g:
        opt['network_g'] = network_g
    for key, value in train.items():
        if isinstance(value, dict):
            opt['train'][key] = dict(opt['train'].get(key) or {}, **value)
        else:
            opt['train'][key] = value
    return opt


def _build(opt):
    from basicsr.models import build_model

    return build_model(opt)


def test_l1_on_chosen_group_and_epoch_size_units(sr_dataset):
    model = _build(_model_opt(sr_dataset, sparsity={'regularize': ['body.*']},
                              optim_g={'epoch_size': 'auto', 'auto_epoch_unit': 'samples'}))
    l1, free = model.optimizer_g.param_groups
    names = {id(p): n for n, p in model.net_g.named_parameters()}
    assert {names[id(p)] for p in l1['params']} == {n for n, _ in model.net_g.named_parameters()
                                                    if n.startswith('body.')}
    assert l1['lambda_'] == 0.1 and free['lambda_'] == 0.0 and len(free['params']) > 0
    assert model.optimizer_g.epoch_size == 4  # the release's behaviour: samples counted as steps

    opt = _model_opt(sr_dataset, optim_g={'lambda': 0.01})
    del opt['train']['optim_g']['lambda_']
    opt['datasets']['train']['batch_size_per_gpu'] = 3
    model = _build(opt)
    assert model.optimizer_g.epoch_size == 2  # ceil(4 images / batch 3) iterations
    assert [g['lambda_'] for g in model.optimizer_g.param_groups] == [0.01]  # 'all': one group


@pytest.mark.parametrize('network_g, train, message', [
    ({'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
      'scale': 2}, {'sparsity': {'regularize': 'all'}}, 'train.sparsity.measure'),
    (None, {'sparsity': {'measure': ['head.*', 'body.*'], 'prune': True}}, 'unknown key'),
    (None, {'sparsity': {'measure': 'trunk.*'}}, 'matches no parameter'),
    (None, {'optim_g': {'type': 'Adam'}}, 'OBProxSG'),
    (None, {'optim_g': {'auto_epoch_unit': 'images'}}, 'auto_epoch_unit'),
])
def test_option_errors_name_the_key(sr_dataset, network_g, train, message):
    opt = _model_opt(sr_dataset, network_g, **train)
    if 'sparsity' in train:  # replace the tiny file's sparsity block, not merge into it
        opt['train']['sparsity'] = dict(train['sparsity'])
    with pytest.raises(ValueError, match=message):
        _build(opt)


def test_density_report_on_a_known_state_dict():
    state = {
        'head.0.weight': torch.zeros(4, 3, 3, 3),
        'body.0.conv1.weight': torch.tensor([[1., 0.], [0., 0.]]),
        'body.0.conv1.bias': torch.zeros(2),
        'body.1.conv1.weight': torch.tensor([[1., 2.], [3., 0.]]),
        'layers.0.residual_group.blocks.1.norm1.weight': torch.tensor([0., 1.]),
    }
    report = density_report(state, ['body.*.weight'], 'EDSR')
    assert (report['num_measured'], report['num_zero']) == (8, 4)
    assert report['global_density'] == 0.5
    assert report['tensors']['body.0.conv1.weight']['per_channel'] == [0.5, 0.0]
    assert report['tensors']['body.0.conv1.weight']['zero_channels'] == 1
    assert report['blocks'] == {'body.0': 0.25, 'body.1': 0.75}
    swin = density_report(state, 'layers.*weight', 'SwinIRmini')
    assert swin['blocks'] == {'layers.0': 0.5, 'layers.0.residual_group.blocks.1': 0.5}
    assert select_params(list(state), 'all') == list(state)
    with pytest.raises(ValueError, match='match none'):
        density_report(state, ['tail.*'])
    assert default_measure_patterns({'type': 'EDSRmini'}) == ['body.*.weight']
    assert default_measure_patterns('SwinIR') == ['layers.*weight']


METHOD_PARAMS = {  # docs/method.md, measured on BasicSR's own archs
    'EDSR_f64b16': {2: 1369859, 3: 1554499, 4: 1517571},
    'SwinIR_light': {2: 910152, 3: 918267, 4: 929628},
}


@pytest.mark.parametrize('arch, scale', [(a, s) for a in METHOD_PARAMS for s in (2, 3, 4)])
def test_release_option_files(arch, scale):
    from basicsr.archs import build_network
    from basicsr.utils.options import ordered_yaml

    path = OPTIONS / f'train_{arch}_x{scale}_prune.yml'
    opt = yaml.load(path.read_text(), Loader=ordered_yaml()[0])  # exactly as BasicSR reads it
    assert opt['model_type'] == 'SparseSRModel' and opt['scale'] == scale
    optim = opt['train']['optim_g']
    assert optim['type'] == 'OBProxSG' and optim['No'] == 'inf' and False not in optim  # 'No' stays a key
    assert (optim['lr'], optim['lambda_'], optim['eps']) == (5e-3, 1e-4, 1e-4)
    assert optim['Np'] == (60 if arch.startswith('EDSR') else 25)
    assert opt['train']['total_iter'] == (100000 if arch.startswith('EDSR') else 500000)
    assert opt['train']['ema_decay'] == 0.999 and opt['train']['pixel_opt']['type'] == 'CharbonnierLoss'
    assert opt['train']['sparsity']['regularize'] == 'all'
    assert opt['train']['sparsity']['measure'] == default_measure_patterns(opt['network_g'])
    assert opt['datasets']['train']['batch_size_per_gpu'] == 16
    assert opt['val']['metrics']['psnr']['crop_border'] == scale and opt['val']['metrics']['psnr']['test_y_channel']
    net = build_network(dict(opt['network_g']))
    assert sum(p.numel() for p in net.parameters()) == METHOD_PARAMS[arch][scale]
