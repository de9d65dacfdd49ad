"""options/test/*.yml: they parse as BasicSR parses them, test the five benchmarks in the EDSR
layout that ``srcomp prepare`` writes, follow the Y-channel / crop = scale protocol, and build
the network they name at the scale they name."""
import re
from pathlib import Path

import pytest
import torch
import yaml

import srcomp_plugin  # noqa: F401
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.utils.options import ordered_yaml
from helpers import write_hr_crops
from srcomp_plugin.data.prepare import prepare_dataset
from srcomp_plugin.measure import count_params

OPTIONS = Path(__file__).resolve().parents[1] / 'options' / 'test'
SETS = ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
# model prefix -> (arch type, parameters at x2, x3, x4 from docs/method.md)
MODELS = {
    'EDSR_f64b16': ('EDSR', {2: 1_369_859, 3: 1_554_499, 4: 1_517_571}),
    'EDSRmini': ('EDSRmini', {2: 49_603, 3: 61_203, 4: 58_883}),
    'SwinIR_light': ('SwinIRmini', {2: 910_152, 3: 918_267, 4: 929_628}),
    'SwinIRmini': ('SwinIRmini', {2: 98_868, 3: 102_123, 4: 106_680}),
}
FILES = [(model, s) for model in MODELS for s in (2, 3, 4)]


def load(model, scale):
    """The option file as BasicSR's parse_options reads it (its ordered YAML loader)."""
    path = OPTIONS / f'test_{model}_x{scale}.yml'
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def test_one_file_per_model_and_scale():
    expected = {f'test_{model}_x{s}.yml' for model, s in FILES}
    assert {p.name for p in OPTIONS.glob('*.yml')} == expected


@pytest.mark.parametrize('model, scale', FILES, ids=[f'{m}_x{s}' for m, s in FILES])
def test_sets_layout_and_protocol(model, scale):
    opt = load(model, scale)
    assert opt['name'] == f'test_{model}_x{scale}'
    assert opt['scale'] == scale
    assert opt['model_type'] == 'SRModel'
    assert list(opt['datasets']) == [f'test_{i}' for i in range(1, 6)]
    for dataset, set_name in zip(opt['datasets'].values(), SETS):
        assert dataset['name'] == set_name
        assert dataset['type'] == 'PairedImageDataset'
        assert dataset['dataroot_gt'] == f'datasets/benchmark/{set_name}/HR'
        assert dataset['dataroot_lq'] == f'datasets/benchmark/{set_name}/LR_bicubic/X{scale}'
        assert dataset['filename_tmpl'] == f'{{}}x{scale}'
        assert dataset['io_backend']['type'] == 'disk'
    metrics = opt['val']['metrics']
    assert {m['type'] for m in metrics.values()} == {'calculate_psnr', 'calculate_ssim'}
    for metric in metrics.values():
        assert metric['crop_border'] == scale
        assert metric['test_y_channel'] is True
    path = opt['path']
    assert path['pretrain_network_g'].startswith('experiments/pretrained_models/')
    assert path['param_key_g'] == 'params_ema'
    assert path['strict_load_g'] is True
    header = (OPTIONS / f'test_{model}_x{scale}.yml').read_text().split('\nname:')[0]
    assert 'PLACEHOLDER' in header and 'pretrain_network_g' in header


@pytest.mark.parametrize('model, scale', FILES, ids=[f'{m}_x{s}' for m, s in FILES])
def test_network_matches_name_and_scale(model, scale):
    opt = load(model, scale)
    arch, params = MODELS[model]
    assert opt['network_g']['type'] == arch
    assert opt['network_g']['upscale'] == scale
    net = build_network(dict(opt['network_g'])).eval()
    assert count_params(net) == params[scale]
    # Benchmark LR sizes are arbitrary; 13 x 10 is a multiple of neither the window nor 2.
    with torch.no_grad():
        out = net(torch.rand(1, 3, 13, 10))
    assert out.shape == (1, 3, 13 * scale, 10 * scale)


def test_documented_layout_is_what_prepare_writes(tmp_path, monkeypatch):
    """``srcomp prepare --out datasets/benchmark/<Set>`` gives folders every test file reads."""
    write_hr_crops(tmp_path / 'src', ['astronaut', 'coffee'], 60)
    monkeypatch.chdir(tmp_path)
    for set_name in SETS:
        prepare_dataset(tmp_path / 'src', Path('datasets/benchmark') / set_name, scales=(2, 3, 4), progress=False)
    for model, scale in FILES:
        for dataset_opt in load(model, scale)['datasets'].values():
            dataset_opt = dict(dataset_opt, phase='test', scale=scale)
            dataset = build_dataset(dataset_opt)
            assert len(dataset) == 2
            item = dataset[0]
            assert re.search(rf'x{scale}\.png$', item['lq_path'])
            assert item['gt'].shape[-2:] == tuple(scale * n for n in item['lq'].shape[-2:])
