"""``srcomp report``: two real BasicSR test runs (``python -m srcomp_plugin.test`` with the
benchmark option files, on data made by ``prepare_dataset``) collected into a table and plots."""
import json
import re
import shutil
from pathlib import Path

import cv2
import pytest
import torch
import yaml

import srcomp_plugin  # noqa: F401
from basicsr.archs import build_network
from helpers import run_module, shared_dataset, write_opt
from srcomp_plugin import cli
from srcomp_plugin.data.prepare import prepare_dataset
from srcomp_plugin.measure import count_macs, count_params
from srcomp_plugin.pipeline.report import ReportError, make_report, parse_option_dump

OPTIONS = Path(__file__).resolve().parents[1] / 'options' / 'test'
TINY_EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2,
             'res_scale': 1, 'img_range': 255.}


def benchmark_opt(option_file, sets, name=None, network_g=None, weights=None):
    """An options/test file cut down to ``sets`` (names kept, paths untouched), optionally renamed."""
    opt = yaml.safe_load((OPTIONS / option_file).read_text())
    opt['datasets'] = {key: d for key, d in opt['datasets'].items() if d['name'] in sets}
    if name:
        opt['name'] = name
    if network_g:
        opt['network_g'] = network_g
    if weights:
        opt['path']['pretrain_network_g'] = weights
    return opt


def save_random_weights(opt, workdir, seed):
    """A randomly initialised ``network_g`` saved where the option file loads it from."""
    torch.manual_seed(seed)
    net = build_network(dict(opt['network_g']))
    path = Path(workdir) / opt['path']['pretrain_network_g']
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'params_ema': net.state_dict()}, path)
    return net


def run_test(opt, workdir, seed):
    net = save_random_weights(opt, workdir, seed)
    opt_path = write_opt(Path(workdir) / 'options' / f'{opt["name"]}.yml', opt)
    run_module('srcomp_plugin.test', ['-opt', opt_path], cwd=workdir)
    return net


def logged(log_text, set_name, metric):
    """``metric`` of ``set_name`` as BasicSR wrote it: 'Validation <set>' then '# <metric>: <value>'."""
    match = re.search(rf'Validation {set_name}\n(?:\t # .*\n)*?\t # {metric}: ([\d.]+)', log_text)
    return float(match.group(1))


@pytest.fixture(scope='module')
def two_runs(sr_dataset, tmp_path_factory):
    """Set5 and Set14 in the EDSR benchmark layout (tiny photos), tested with two networks."""
    work = tmp_path_factory.mktemp('bench')
    for set_name, split in (('Set5', 'val'), ('Set14', 'train')):
        shutil.copytree(sr_dataset['root'] / split, work / 'datasets' / 'benchmark' / set_name)
    runs = {}
    opt = benchmark_opt('test_EDSR_f64b16_x2.yml', ['Set5', 'Set14'], name='test_tiny_EDSR_x2', network_g=TINY_EDSR,
                        weights='experiments/pretrained_models/tiny_EDSR_f8b1_x2.pth')
    runs['tiny_EDSR_x2'] = run_test(opt, work, seed=0)
    runs['EDSRmini_x2'] = run_test(benchmark_opt('test_EDSRmini_x2.yml', ['Set5', 'Set14']), work, seed=1)
    return work, runs


def test_table_and_numbers_equal_the_logs(two_runs):
    work, nets = two_runs
    dirs = [work / 'results' / 'test_tiny_EDSR_x2', work / 'results' / 'test_EDSRmini_x2']
    summary = make_report(dirs, work / 'report', sets=['Set5', 'Set14'])
    assert [run['label'] for run in summary['runs']] == ['tiny_EDSR_x2', 'EDSRmini_x2']
    table = summary['table'].splitlines()
    assert table[0].startswith('| model | arch | scale | params | MACs')
    assert 'Set5 PSNR/SSIM' in table[0] and 'Set14 PSNR/SSIM' in table[0]
    assert len(table) == 4
    for run, row in zip(summary['runs'], table[2:]):
        net = nets[run['label']]
        log_text = Path(run['log']).read_text()
        assert f'with parameters: {count_params(net):,}' in log_text
        assert run['params'] == count_params(net)
        assert run['macs'] == count_macs(net, 2)
        assert run['scale'] == 2 and run['notes'] == []
        for set_name in ('Set5', 'Set14'):
            psnr, ssim = logged(log_text, set_name, 'psnr'), logged(log_text, set_name, 'ssim')
            assert run['metrics'][set_name] == {'psnr': psnr, 'ssim': ssim}
            assert f'| {psnr:.2f}/{ssim:.4f} |' in row
        mean = (run['metrics']['Set5']['psnr'] + run['metrics']['Set14']['psnr']) / 2
        assert row.startswith(f'| {run["label"]} | {run["arch"]} | x2 | {run["params"]:,} |')
        assert row.endswith(f'| {mean:.2f} |')
    # Different networks, different results: the rows are not one run read twice.
    assert summary['runs'][0]['metrics'] != summary['runs'][1]['metrics']
    assert set(summary['bicubic']) == {'x2'} and 10 < summary['bicubic']['x2'] < 60


def test_latency_plot_times_each_network(two_runs):
    work, _ = two_runs
    summary = make_report([work / 'results'], work / 'report_latency', sets=['Set5', 'Set14'], latency=True)
    assert all(run['latency_s'] > 0 for run in summary['runs'])
    assert cv2.imread(summary['files']['psnr_vs_latency']) is not None

    report_md = Path(summary['files']['report']).read_text()
    assert summary['table'] in report_md
    for key in ('psnr_vs_params', 'psnr_vs_macs'):
        path = Path(summary['files'][key])
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        img = cv2.imread(str(path))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 200
        assert (img < 250).any()  # something was drawn
        assert f']({path.name})' in report_md


def test_cli_collects_a_parent_folder_and_prints_json(two_runs, tmp_path, capsys):
    work, _ = two_runs
    assert cli.main(['report', str(work / 'results'), '--out', str(tmp_path / 'r'), '--sets', 'Set5', '--json']) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(run['name'] for run in summary['runs']) == ['test_EDSRmini_x2', 'test_tiny_EDSR_x2']
    assert summary['sets'] == ['Set5']
    assert (tmp_path / 'r' / 'psnr_vs_macs.png').is_file()

    assert cli.main(['report', str(work / 'results'), '--out', str(tmp_path / 'r2')]) == 0
    out = capsys.readouterr().out
    assert '| tiny_EDSR_x2 | EDSR | x2 |' in out and 'mean PSNR (Set5, Set14)' in out


def test_newest_log_wins_and_protocol_differences_are_noted(two_runs, tmp_path):
    work, _ = two_runs
    run_dir = tmp_path / 'test_EDSRmini_x2'
    shutil.copytree(work / 'results' / 'test_EDSRmini_x2', run_dir)
    (log, ) = run_dir.glob('test_*.log')
    text = log.read_text()
    older = re.sub(r'# psnr: [\d.]+', '# psnr: 99.0000', text)
    (run_dir / 'test_test_EDSRmini_x2_20000101_000000.log').write_text(older)
    summary = make_report([run_dir], tmp_path / 'r', sets=['Set5'])
    assert summary['runs'][0]['metrics']['Set5']['psnr'] == logged(text, 'Set5', 'psnr')

    log.write_text(text.replace('test_y_channel: True', 'test_y_channel: False'))
    notes = make_report([run_dir], tmp_path / 'r', sets=['Set5'])['runs'][0]['notes']
    assert any('not the Y channel' in note and 'val.metrics.psnr.test_y_channel' in note for note in notes)


def test_errors_name_the_problem(two_runs, tmp_path, capsys):
    work, _ = two_runs
    with pytest.raises(ReportError, match='no such results folder'):
        make_report([tmp_path / 'missing'], tmp_path / 'r')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ReportError, match='no BasicSR test log'):
        make_report([tmp_path / 'empty'], tmp_path / 'r')
    assert cli.main(['report', str(work / 'results' / 'test_EDSRmini_x2'), '--sets', 'Urban100',
                     '--out', str(tmp_path / 'r')]) == 2
    err = capsys.readouterr().err
    assert 'Urban100' in err and 'Set5, Set14' in err


def test_option_dump_round_trip():
    """``parse_option_dump`` inverts BasicSR's ``dict2str`` for the value types option files use."""
    from basicsr.utils.options import dict2str

    opt = {'name': 'x', 'scale': 3, 'network_g': {'type': 'SwinIRmini', 'depths': [4, 4, 4], 'mlp_ratio': 2.0,
                                                  'resi_connection': '1conv', 'img_range': 1.0},
           'val': {'suffix': None, 'metrics': {'psnr': {'crop_border': 3, 'test_y_channel': True}}},
           'datasets': {'test_1': {'filename_tmpl': '{}x3', 'dataroot_gt': 'datasets/benchmark/Set5/HR'},
                        'train': {'filename_tmpl': '{}', 'gt_size': 96, 'use_rot': False}}}
    assert parse_option_dump(dict2str(opt).splitlines()) == opt


@pytest.mark.slow
def test_report_on_shared_set5_and_set14(tmp_path):
    """The issue's check: a report from Set5 (published LR) and Set14 (prepared) of shared/datasets."""
    set5, set14 = shared_dataset('Set5'), shared_dataset('Set14')
    bench = tmp_path / 'datasets' / 'benchmark'
    bench.mkdir(parents=True)
    (bench / 'Set5').symlink_to(set5, target_is_directory=True)
    prepare_dataset(set14 / 'HR', bench / 'Set14', scales=(2, ), progress=False)
    run_test(benchmark_opt('test_EDSRmini_x2.yml', ['Set5', 'Set14']), tmp_path, seed=0)
    summary = make_report([tmp_path / 'results'], tmp_path / 'report')
    (run, ) = summary['runs']
    assert set(run['metrics']) == {'Set5', 'Set14'}
    log_text = Path(run['log']).read_text()
    assert 'Number of test images in Set5: 5' in log_text and 'Number of test images in Set14: 14' in log_text
    assert run['params'] == 49_603 and run['macs'] == count_macs(build_network({'type': 'EDSRmini'}), 2)
    assert cv2.imread(summary['files']['psnr_vs_params']) is not None
    # the bicubic reference, computed on the same pairs: the published x2 values are 33.66 and 30.24
    assert abs(summary['bicubic']['x2'] - (33.66 + 30.24) / 2) < 0.1, summary['bicubic']
    assert 'Bicubic (MATLAB imresize) on the same images' in Path(summary['files']['report']).read_text()
