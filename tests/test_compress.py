"""Stage 2 (``srcomp compress``): the shape rule reproduces the release's students, is
monotone in the ratio, writes a stage-3 option file that trains, and ``--init pruned``
slices a student that is exactly the teacher when the dropped parts are zero."""
import math
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import yaml

import srcomp_plugin  # noqa: F401  (fills the registries)
from helpers import run_module, tiny_train_opt, write_opt
from srcomp_plugin.compress import (CompressError, CompressWarning, check_distill_options, compress, derive_student,
                                    parse_ratio, pruned_state_dict, write_outputs)
from srcomp_plugin.compress.cli import main as compress_main
from srcomp_plugin.compress.shape_rule import arch_params, build_arch
from srcomp_plugin.measure.params import count_params

REPO = Path(__file__).resolve().parents[1]
PRUNE_OPTS = REPO / 'options' / 'prune'


def _network_g(name):
    return yaml.safe_load((PRUNE_OPTS / name).read_text())['network_g']


def _kwargs(opt):
    return {k: v for k, v in opt.items() if k != 'type'}


# ----------------------------------------------------------------------------- the rule


def test_reproduces_edsrmini_from_edsr_f64b16_x2():
    teacher = _network_g('train_EDSR_f64b16_x2_prune.yml')
    shape = derive_student(teacher, ratio='49603/1369859')
    assert shape.teacher_params == 1369859
    assert shape.student_type == 'EDSRmini'
    assert (shape.student_kwargs['num_feat'], shape.student_kwargs['num_block']) == (16, 8)
    assert shape.student_kwargs['res_scale'] == 2
    assert shape.student_params == 49603 and not shape.fallback
    # the options describe a network with exactly that count, and the next width is over budget
    assert count_params(build_arch('EDSRmini', _kwargs(shape.network_opt()))) == 49603
    assert shape.candidates[-1][0] == 20 and shape.candidates[-1][1] > 49603


def test_reproduces_swinirmini_from_swinir_light_x2():
    teacher = _network_g('train_SwinIR_light_x2_prune.yml')
    shape = derive_student(teacher, ratio='98868/910152')
    assert shape.teacher_params == 910152
    assert shape.student_type == 'SwinIRmini'
    assert shape.student_kwargs['embed_dim'] == 24
    assert shape.student_kwargs['depths'] == [4, 4, 4] and shape.student_kwargs['num_heads'] == [6, 6, 6]
    assert shape.student_params == 98868
    # the teacher's effective settings are inherited, not SwinIRmini's defaults
    for key in ('window_size', 'mlp_ratio', 'upsampler', 'resi_connection', 'img_size', 'img_range'):
        assert shape.student_kwargs[key] == teacher[key]


def test_explicit_kwargs_follow_the_teacher_not_the_preset_defaults():
    # BasicSR SwinIR defaults (window 7, mlp_ratio 4, no upsampler) differ from SwinIRmini's.
    teacher = {'type': 'SwinIR', 'upscale': 2, 'img_size': 14, 'embed_dim': 12, 'depths': [2, 2],
               'num_heads': [3, 3]}
    shape = derive_student(teacher, ratio=0.5)
    assert shape.student_kwargs['window_size'] == 7 and shape.student_kwargs['mlp_ratio'] == 4.0
    assert shape.student_kwargs['upsampler'] == ''
    assert shape.student_kwargs['embed_dim'] % 3 == 0


@pytest.mark.parametrize('depths,keep,expected', [([6, 6, 6, 6], 0.5, [4, 4, 4]), ([6, 6, 6, 6], 1.0, [6, 6, 6, 6]),
                                                  ([6, 6, 6, 6], 0.25, [3, 3]), ([2], 0.01, [1])])
def test_swinir_depth_split(depths, keep, expected):
    teacher = {'type': 'SwinIR', 'upscale': 2, 'img_size': 16, 'window_size': 4, 'embed_dim': 12,
               'depths': depths, 'num_heads': [3] * len(depths)}
    shape = derive_student(teacher, ratio=1, depth_keep=keep)
    assert shape.student_kwargs['depths'] == expected
    assert shape.student_kwargs['num_heads'] == [3] * len(expected)


@pytest.mark.parametrize('blocks,keep,expected', [(16, 0.5, 8), (5, 0.5, 3), (1, 0.5, 1), (4, 1.0, 4)])
def test_edsr_depth(blocks, keep, expected):
    teacher = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': blocks, 'upscale': 2}
    assert derive_student(teacher, ratio=1, depth_keep=keep).student_kwargs['num_block'] == expected


@pytest.mark.parametrize('teacher', [
    {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'upscale': 2},
    {'type': 'SwinIRmini', 'upscale': 3, 'img_size': 16, 'window_size': 4, 'embed_dim': 36, 'depths': [4, 4],
     'num_heads': [6, 6]},
])
def test_larger_ratio_never_gives_a_smaller_student(teacher):
    teacher_params = arch_params(teacher['type'], _kwargs(teacher))
    previous = (0, 0)
    for ratio in [Fraction(k, 40) for k in range(1, 41)]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', CompressWarning)
                shape = derive_student(teacher, ratio=ratio, teacher_params=teacher_params)
        except CompressError:
            assert previous == (0, 0), 'a budget that failed after a smaller one succeeded'
            continue
        current = (shape.width, shape.student_params)
        assert current >= previous
        if not shape.fallback:
            assert shape.student_params <= ratio * teacher_params
        previous = current
    assert previous[0] > 0


def test_params_budget_equals_the_same_ratio():
    teacher = _network_g('train_EDSR_f64b16_x2_prune.yml')
    by_params = derive_student(teacher, params=49603)
    assert by_params.student_params == 49603
    assert by_params.ratio == Fraction(49603, 1369859)


def test_a_typed_decimal_of_the_exact_ratio_gives_the_same_student():
    teacher = _network_g('train_EDSR_f64b16_x2_prune.yml')
    decimal = str(49603 / 1369859)  # '0.03621029609616756': 1e-12 short of the fraction
    assert Fraction(decimal) < Fraction(49603, 1369859)
    shape = derive_student(teacher, ratio=decimal)
    assert (shape.width, shape.student_params) == (16, 49603)
    # the tolerance is relative 1e-9, not a rounding of any ratio: 1e-6 short is a different budget
    assert derive_student(teacher, ratio=Fraction(49603, 1369859) * (1 - Fraction(1, 10 ** 6))).width < 16


def test_ratio_parsing_is_exact_and_checked():
    assert parse_ratio('49603/1369859') == Fraction(49603, 1369859)
    assert parse_ratio('0.25') == Fraction(1, 4)
    for bad in ('0', '-0.1', '1.5', 'half', '3/0'):
        with pytest.raises(CompressError, match='ratio|fraction'):
            parse_ratio(bad)


def test_fallback_and_budget_errors():
    teacher = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 32, 'num_block': 16, 'upscale': 2}
    smallest_any = arch_params('EDSRmini', dict(_kwargs(teacher), num_feat=4, num_block=1))
    smallest_kept = arch_params('EDSRmini', dict(_kwargs(teacher), num_feat=4, num_block=8))
    # between the two: only a shallower student would fit -> smallest width at the kept depth, warned
    with pytest.warns(CompressWarning, match='fell back'):
        shape = derive_student(teacher, params=(smallest_any + smallest_kept) // 2)
    assert shape.fallback and shape.width == 4 and shape.student_params == smallest_kept
    # below the smallest student of any depth: an error with the ratio that would do
    with pytest.raises(CompressError, match='smaller than the smallest valid student'):
        derive_student(teacher, params=smallest_any - 1)


def test_unknown_arch_is_a_clear_error():
    supported = r"cannot compress arch 'MSRResNet'.*EDSR -> EDSRmini.*SwinIR -> SwinIRmini"
    with pytest.raises(CompressError, match=supported):
        derive_student({'type': 'MSRResNet', 'num_feat': 64}, ratio=0.1)
    with pytest.raises(CompressError, match='depth-keep'):
        derive_student(_network_g('train_EDSR_f64b16_x2_prune.yml'), ratio=0.1, depth_keep=0)


# ----------------------------------------------------------------------------- pruned init, EDSR


def _upsample_stages(scale):
    return [('upsample.0', 3)] if scale == 3 else [(f'upsample.{2 * i}', 2) for i in range(int(math.log2(scale)))]


def _zeroed_edsr_teacher(scale):
    """EDSR f8b4 whose dropped stream channels, inner channels, blocks and upsampler groups are exactly zero.

    Kept: stream {1, 2, 5, 6}; inner channels {0, 3, 4, 7} in block 1 and {1, 2, 4, 6} in
    block 3; blocks 0 and 2 are entirely zero; upsampler groups {0, 2, 3, 5} in the first
    stage and {1, 4, 6, 7} in the second (x4).
    """
    torch.manual_seed(0)
    kwargs = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=4, upscale=scale, res_scale=1, img_range=255.,
                  rgb_mean=[0.4488, 0.4371, 0.4040])
    sd = build_arch('EDSR', kwargs).state_dict()
    keep = {'stream': [1, 2, 5, 6], 'inner': {1: [0, 3, 4, 7], 3: [1, 2, 4, 6]}, 'blocks': [1, 3],
            'upsample': [[0, 2, 3, 5], [1, 4, 6, 7]][:len(_upsample_stages(scale))]}
    drop = [c for c in range(8) if c not in keep['stream']]
    with torch.no_grad():
        for key in ('conv_first', 'conv_after_body') + tuple(f'body.{i}.conv2' for i in range(4)):
            sd[f'{key}.weight'][drop] = 0
            sd[f'{key}.bias'][drop] = 0
        for block in (0, 2):
            for key in list(sd):
                if key.startswith(f'body.{block}.'):
                    sd[key].zero_()
        for block, inner in keep['inner'].items():
            gone = [c for c in range(8) if c not in inner]
            sd[f'body.{block}.conv1.weight'][gone] = 0
            sd[f'body.{block}.conv1.bias'][gone] = 0
            sd[f'body.{block}.conv2.weight'][:, gone] = 0
        for (prefix, r), groups in zip(_upsample_stages(scale), keep['upsample']):
            rows = [g * r * r + i for g in range(8) if g not in groups for i in range(r * r)]
            sd[f'{prefix}.weight'][rows] = 0
            sd[f'{prefix}.bias'][rows] = 0
    return kwargs, sd, keep


def _hand_slice(sd, keep, scale, res_factor):
    s = torch.tensor(keep['stream'])
    out = {'conv_first.weight': sd['conv_first.weight'][s], 'conv_first.bias': sd['conv_first.bias'][s]}
    for j, i in enumerate(keep['blocks']):
        inner = torch.tensor(keep['inner'][i])
        out[f'body.{j}.conv1.weight'] = sd[f'body.{i}.conv1.weight'][inner][:, s]
        out[f'body.{j}.conv1.bias'] = sd[f'body.{i}.conv1.bias'][inner]
        out[f'body.{j}.conv2.weight'] = sd[f'body.{i}.conv2.weight'][s][:, inner] * res_factor
        out[f'body.{j}.conv2.bias'] = sd[f'body.{i}.conv2.bias'][s] * res_factor
    out['conv_after_body.weight'] = sd['conv_after_body.weight'][s][:, s]
    out['conv_after_body.bias'] = sd['conv_after_body.bias'][s]
    inputs = s
    for (prefix, r), groups in zip(_upsample_stages(scale), keep['upsample']):
        rows = torch.tensor([g * r * r + i for g in groups for i in range(r * r)])
        out[f'{prefix}.weight'] = sd[f'{prefix}.weight'][rows][:, inputs]
        out[f'{prefix}.bias'] = sd[f'{prefix}.bias'][rows]
        inputs = torch.tensor(groups)
    out['conv_last.weight'] = sd['conv_last.weight'][:, inputs]
    out['conv_last.bias'] = sd['conv_last.bias']
    return out


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_edsr_pruned_init_is_lossless_on_a_zeroed_teacher(tmp_path, scale):
    kwargs, sd, keep = _zeroed_edsr_teacher(scale)
    teacher = build_arch('EDSR', kwargs).eval()
    teacher.load_state_dict(sd)
    ckpt = tmp_path / 'sparse.pth'
    torch.save({'params': sd}, ckpt)
    prune_opt = {'scale': scale, 'network_g': {'type': 'EDSR', **kwargs},
                 'path': {'pretrain_network_g': str(tmp_path / 'dense.pth')},
                 'datasets': {'train': {'gt_size': 96}}}
    budget = arch_params('EDSRmini', dict(kwargs, num_feat=4, num_block=2, res_scale=2))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', CompressWarning)
        result = compress(prune_opt, ckpt, tmp_path / 'distill.yml', params=budget, init='pruned', macs=False)
    write_outputs(result)
    student_opt = result.distill_opt['network_g']
    assert (student_opt['num_feat'], student_opt['num_block'], student_opt['res_scale']) == (4, 2, 2)
    assert result.distill_opt['path']['pretrain_network_g'] == str(result.init_checkpoint)

    student = build_arch('EDSRmini', _kwargs(student_opt)).eval()
    loaded = torch.load(result.init_checkpoint, map_location='cpu', weights_only=True)['params']
    student.load_state_dict(loaded, strict=True)
    expected = _hand_slice(sd, keep, scale, res_factor=1 / 2)
    assert set(expected) == set(loaded)
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(student(x), teacher(x), rtol=0, atol=1e-5)
    assert result.report['pruned_selection']['stream'] == keep['stream']


def test_edsr_pruned_init_keeps_blocks_by_remaining_mass():
    kwargs, sd, keep = _zeroed_edsr_teacher(2)
    student_kwargs = dict(kwargs, num_feat=4, num_block=1, res_scale=2)
    with torch.no_grad():
        sd['body.3.conv2.weight'] *= 100  # block 3 now carries far more mass than block 1
    _, selection = pruned_state_dict('EDSR', sd, kwargs, 'EDSRmini', student_kwargs)
    assert selection['blocks'] == [3]


# ----------------------------------------------------------------------------- pruned init, SwinIR


def _swinir_teacher(**overrides):
    kwargs = dict(upscale=2, in_chans=3, img_size=16, window_size=4, img_range=1., embed_dim=12, depths=[2, 2],
                  num_heads=[3, 3], mlp_ratio=2, upsampler='pixelshuffledirect', resi_connection='1conv')
    kwargs.update(overrides)
    torch.manual_seed(0)
    return kwargs, build_arch('SwinIR', kwargs).eval()


@pytest.mark.parametrize('overrides', [{}, {'resi_connection': '3conv', 'upsampler': 'pixelshuffle', 'ape': True},
                                       {'upsampler': '', 'upscale': 1}])
def test_swinir_pruned_init_loads_strictly_and_drops_zeroed_layers_losslessly(overrides):
    kwargs, teacher = _swinir_teacher(**overrides)
    sd = teacher.state_dict()
    with torch.no_grad():  # the odd layer of each stage adds nothing: attention and MLP outputs are zero
        for stage in range(2):
            for key in ('attn.proj.weight', 'attn.proj.bias', 'mlp.fc2.weight', 'mlp.fc2.bias'):
                sd[f'layers.{stage}.residual_group.blocks.1.{key}'].zero_()
    teacher.load_state_dict(sd)
    same_width = dict(kwargs, depths=[1, 1], num_heads=[3, 3])
    state, selection = pruned_state_dict('SwinIR', sd, kwargs, 'SwinIRmini', same_width)
    assert selection['layers'] == {0: [0], 1: [0]}
    student = build_arch('SwinIRmini', same_width).eval()
    student.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(student(x), teacher(x), rtol=0, atol=1e-5)

    narrow = dict(kwargs, embed_dim=6, depths=[1], num_heads=[3])
    state, _ = pruned_state_dict('SwinIR', sd, kwargs, 'SwinIRmini', narrow)
    small = build_arch('SwinIRmini', narrow).eval()
    small.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert small(x).shape == teacher(x).shape


def test_swinir_attention_slice_keeps_scores_per_head():
    """Zero the dropped query/key/value dims of each head: the sliced attention computes the same thing.

    Checks the per-head indexing of qkv and proj and the query rescaling for the smaller head_dim.
    """
    from basicsr.archs.swinir_arch import SwinTransformerBlock

    from srcomp_plugin.families.swinir import _slice_swin_layer

    torch.manual_seed(0)
    big, small, heads = 12, 6, 3
    teacher = SwinTransformerBlock(big, (4, 4), heads, window_size=4, mlp_ratio=2).eval()
    student = SwinTransformerBlock(small, (4, 4), heads, window_size=4, mlp_ratio=2).eval()
    sd = teacher.state_dict()
    keep = torch.arange(big)[::2]  # stream channels 0, 2, ..., 10
    kept_dims = [0, 3]  # of each head's 4 dims
    gone = [h * 4 + d for h in range(heads) for d in range(4) if d not in kept_dims]
    with torch.no_grad():
        for part in range(3):  # q, k, v
            rows = [part * big + g for g in gone]
            sd['attn.qkv.weight'][rows] = 0
            sd['attn.qkv.bias'][rows] = 0
        sd['attn.qkv.weight'][:, [c for c in range(big) if c not in keep]] = 0
    teacher.load_state_dict(sd)
    part = {}
    _slice_swin_layer({f'x.{k}': v for k, v in sd.items()}, 'x', 'y', keep, big, small, heads, int(small * 2),
                      math.sqrt(small / big), part)
    student.load_state_dict({k[2:]: v for k, v in part.items()}, strict=False)
    tokens = torch.rand(2, 16, big)
    tokens[..., [c for c in range(big) if c not in keep]] = 0
    with torch.no_grad():
        full = teacher.attn(tokens)
        sliced = student.attn(tokens[..., keep])
    torch.testing.assert_close(sliced, full[..., keep], rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- end to end


def _tiny_prune_opt(sr_dataset, teacher_path):
    opt = tiny_train_opt(sr_dataset, 'tiny_prune', model_type='SparseSRModel')
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2, 'upscale': 2,
                        'res_scale': 1, 'img_range': 255., 'rgb_mean': [0.4488, 0.4371, 0.4040]}
    opt['path']['pretrain_network_g'] = str(teacher_path)
    opt['train']['sparsity'] = {'measure': ['body.*.weight']}
    return opt


def test_written_options_train_for_two_iterations(sr_dataset, tmp_path):
    torch.manual_seed(0)
    prune_opt = _tiny_prune_opt(sr_dataset, tmp_path / 'dense.pth')
    teacher = build_arch('EDSR', _kwargs(prune_opt['network_g']))
    torch.save({'params': teacher.state_dict()}, tmp_path / 'dense.pth')
    sparse = teacher.state_dict()
    with torch.no_grad():
        for key in sparse:
            if key.startswith('body.') and key.endswith('weight'):
                sparse[key][sparse[key].abs() < sparse[key].abs().median()] = 0  # about half the weights zero
    torch.save({'params': sparse, 'params_ema': teacher.state_dict()}, tmp_path / 'sparse.pth')
    opt_path = write_opt(tmp_path / 'prune.yml', prune_opt)
    out = tmp_path / 'opts' / 'tiny_distill.yml'

    run_module('srcomp_plugin.cli', ['compress', '-opt', opt_path, '--checkpoint', tmp_path / 'sparse.pth', '--recipe',
                                     'paper', '--init', 'pruned', '--total-iter', '2', '--out', out, '--no-macs'],
               cwd=tmp_path)
    report = yaml.safe_load(out.with_name('tiny_distill_compress_report.json').read_text())
    assert report['target']['source'] == 'measured global density'
    assert 0.45 < report['density']['global'] < 0.55
    assert report['student']['params'] <= report['target']['budget_params']
    distill = yaml.safe_load(out.read_text())
    check_distill_options(distill)
    assert distill['model_type'] == 'DistillSRModel'
    assert distill['network_t'] == prune_opt['network_g']
    assert distill['path']['pretrain_network_t'] == str(tmp_path / 'dense.pth')  # the dense teacher, not the sparse
    assert distill['datasets'] == _plain(prune_opt['datasets'])
    assert distill['train']['distill_opt'] == {'type': 'MultiLapLoss', 'loss_weight': 1.0}
    assert distill['train']['pixel_opt']['type'] == 'L1Loss' and distill['train']['pixel_opt']['loss_weight'] == 0.1
    assert distill['path']['pretrain_network_g'] == report['outputs']['pruned_init']  # --init overrides the recipe
    assert 0 < report['init_psnr']['psnr'] < 100  # the sliced student, measured on datasets.val

    run_module('srcomp_plugin.train', ['-opt', out], cwd=tmp_path)
    models = tmp_path / 'experiments' / 'tiny_distill' / 'models'
    saved = torch.load(models / 'net_g_latest.pth', map_location='cpu', weights_only=True)['params']
    student = build_arch(distill['network_g']['type'], _kwargs(distill['network_g']))
    student.load_state_dict(saved, strict=True)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def test_a_dense_checkpoint_without_a_target_is_warned(sr_dataset, tmp_path, capsys):
    opt = _tiny_prune_opt(sr_dataset, tmp_path / 'dense.pth')
    torch.save({'params': build_arch('EDSR', _kwargs(opt['network_g'])).state_dict()}, tmp_path / 'dense.pth')
    opt_path = write_opt(tmp_path / 'prune.yml', opt)
    args = ['-opt', str(opt_path), '--checkpoint', str(tmp_path / 'dense.pth'), '--no-macs']
    assert compress_main(args + ['--out', str(tmp_path / 'a.yml')]) == 0
    assert 'dense.pth is not sparse (measured density 1.000)' in capsys.readouterr().err
    assert compress_main(args + ['--ratio', '0.5', '--out', str(tmp_path / 'b.yml')]) == 0  # a target: no warning
    assert 'not sparse' not in capsys.readouterr().err


def test_command_errors(tmp_path, capsys):
    opt = {'scale': 2, 'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2,
                                     'upscale': 2},
           'path': {'pretrain_network_g': None}}
    opt_path = write_opt(tmp_path / 'prune.yml', opt)
    other = build_arch('EDSR', dict(_kwargs(opt['network_g']), num_feat=16))
    torch.save({'params': other.state_dict()}, tmp_path / 'wrong.pth')
    right = build_arch('EDSR', _kwargs(opt['network_g']))
    torch.save({'params': right.state_dict()}, tmp_path / 'right.pth')
    out = tmp_path / 'd.yml'

    assert compress_main(['-opt', str(opt_path), '--checkpoint', str(tmp_path / 'wrong.pth'), '--out', str(out)]) == 2
    assert 'does not match' in capsys.readouterr().err
    assert compress_main(['-opt', str(opt_path), '--checkpoint', str(tmp_path / 'right.pth'), '--ratio', '1.2',
                          '--out', str(out)]) == 2
    assert '(0, 1]' in capsys.readouterr().err
    assert compress_main(['-opt', str(opt_path), '--checkpoint', str(tmp_path / 'right.pth'), '--out', str(out)]) == 2
    assert 'pretrain_network_g is empty' in capsys.readouterr().err
    write_opt(opt_path, dict(opt, network_g={'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3}))
    assert compress_main(['-opt', str(opt_path), '--checkpoint', str(tmp_path / 'right.pth'), '--out', str(out)]) == 2
    assert "cannot compress arch 'RRDBNet'" in capsys.readouterr().err
    assert not out.exists()


def test_head_dims_are_chosen_inside_each_head():
    from srcomp_plugin.families.swinir import _head_dims

    mass = torch.tensor([9., 8., 7., 6., 0.1, 0.3, 0.2, 0.0])  # two heads of 4 dims; head 0 is heavier throughout
    assert _head_dims(mass, heads=2, keep_per_head=2).tolist() == [0, 1, 5, 6]


def _recipe_template(name):
    path = Path(__file__).resolve().parents[1] / 'options' / 'distill' / f'recipe_{name}.yml'
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize('recipe, init, scheduler_key',
                         [('srcomp', 'pruned', 'periods'), ('paper', 'scratch', 'milestones')])
def test_recipes_write_their_template_keys(sr_dataset, tmp_path, recipe, init, scheduler_key):
    """Each recipe is nothing but its template's option keys (schedule rescaled) and its start."""
    prune_opt = _tiny_prune_opt(sr_dataset, tmp_path / 'dense.pth')
    teacher = build_arch('EDSR', _kwargs(prune_opt['network_g']))
    torch.save({'params': teacher.state_dict()}, tmp_path / 'dense.pth')
    result = compress(write_opt(tmp_path / 'prune.yml', prune_opt), tmp_path / 'dense.pth', tmp_path / f'{recipe}.yml',
                      ratio=0.5, recipe=recipe, total_iter=1000, macs=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['dense.pth', 'prune.yml']  # compress() writes nothing
    write_outputs(result)
    template = _recipe_template(recipe)
    assert (template['recipe']['name'], template['recipe']['init']) == (recipe, init)
    train, expected = result.distill_opt['train'], template['train']
    for key in ('optim_g', 'distill_opt', 'pixel_opt', 'ema_decay'):
        assert train[key] == expected[key]
    assert train['total_iter'] == 1000
    assert train['scheduler']['type'] == expected['scheduler']['type']
    scaled = [max(1, round(v * 1000 / expected['total_iter'])) for v in expected['scheduler'][scheduler_key]]
    assert train['scheduler'][scheduler_key] == scaled
    if recipe == 'srcomp':
        assert scaled == [1000]  # the cosine schedule ends with the run
    init_path = result.distill_opt['path']['pretrain_network_g']
    assert (init_path is not None) == (init == 'pruned')
    assert result.report['recipe'] == recipe and result.report['init'] == init
    written = yaml.safe_load((tmp_path / f'{recipe}.yml').read_text())
    assert written['train'] == _plain(train)


def test_unknown_recipe_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compress_main(['-opt', str(tmp_path / 'p.yml'), '--checkpoint', 'x.pth', '--out', 'o.yml', '--recipe', 'fast'])
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(CompressError, match=r"--recipe must be one of \['srcomp', 'paper'\]"):
        compress(tmp_path / 'p.yml', 'x.pth', tmp_path / 'o.yml', recipe='fast')
