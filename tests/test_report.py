"""``srcomp report``: two real BasicSR test runs (``python -m srcomp_plugin.test`` with the
benchmark option files, on data made by ``prepare_dataset``) collected into a table and plots,
and the results JSON that the test entry point writes beside BasicSR's log for every model
type and under ``--launcher pytorch``: its numbers are the log's."""
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
from helpers import run_module, run_torchrun, shared_dataset, tiny_train_opt, use_obproxsg, use_teacher, write_opt
from srcomp_plugin import cli
from srcomp_plugin.data.prepare import prepare_dataset
from srcomp_plugin.measure import count_macs, count_params
from srcomp_plugin.pipeline.report import ReportError, make_report
from srcomp_plugin.utils.atomic_json import write_json
from srcomp_plugin.utils.test_results import ResultsError, find_results, read_results

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
    assert_results_match_the_log(Path(workdir) / 'results' / opt['name'], opt, workdir)
    return net


def logged(log_text, set_name, metric):
    """``metric`` of ``set_name`` as BasicSR wrote it: 'Validation <set>' then '# <metric>: <value>'."""
    match = re.search(rf'Validation {set_name}\n(?:\t # .*\n)*?\t # {metric}: ([\d.]+)', log_text)
    return float(match.group(1))


def assert_results_match_the_log(results_dir, opt, workdir):
    """The newest run's JSON holds what BasicSR logged (to the log's 4 decimals) and the options it ran with."""
    (path, ) = find_results(results_dir)
    data, log_text = read_results(path), path.with_suffix('.log').read_text()
    assert list(data['results']) == [d['name'] for _, d in sorted(opt['datasets'].items())]
    for set_name, entry in data['results'].items():
        assert set(entry['metrics']) == set(opt['val']['metrics'])
        for metric, value in entry['metrics'].items():
            assert f'{value:.4f}' == f'{logged(log_text, set_name, metric):.4f}', (set_name, metric)
        assert f'Number of test images in {set_name}: {entry["images"]}' in log_text
    assert f'with parameters: {data["params"]:,}' in log_text
    assert (data['name'], data['scale'], data['network_g']) == (opt['name'], opt['scale'], opt['network_g'])
    assert data['metrics'] == opt['val']['metrics']
    assert Path(data['checkpoint']['path']).resolve() == Path(workdir, opt['path']['pretrain_network_g']).resolve()
    assert data['checkpoint']['param_key'] == opt['path'].get('param_key_g', 'params')
    for dataset in opt['datasets'].values():
        for key in ('dataroot_gt', 'dataroot_lq'):  # absolute: the JSON reads the same from anywhere
            path = Path(data['datasets'][dataset['name']][key])
            assert path.is_absolute() and path.resolve() == Path(workdir, dataset[key]).resolve()
    return data


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
            values = run['metrics'][set_name]
            assert set(values) == {'psnr', 'ssim'}
            for metric, value in values.items():  # BasicSR's numbers, which it logs to 4 decimals
                assert f'{value:.4f}' == f'{logged(log_text, set_name, metric):.4f}'
            assert f'| {values["psnr"]:.2f}/{values["ssim"]:.4f} |' in row
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


def test_newest_run_wins_and_protocol_differences_are_noted(two_runs, tmp_path):
    work, _ = two_runs
    run_dir = tmp_path / 'test_EDSRmini_x2'
    shutil.copytree(work / 'results' / 'test_EDSRmini_x2', run_dir)
    (path, ) = run_dir.glob('test_*.json')
    data = read_results(path)
    older = run_dir / 'test_test_EDSRmini_x2_20000101_000000.json'
    write_json(older, dict(data, results={'Set5': {'images': 5, 'metrics': {'psnr': 99.0, 'ssim': 1.0}}}))
    older.with_suffix('.log').write_text('an older run')
    summary = make_report([run_dir], tmp_path / 'r', sets=['Set5'])
    assert summary['runs'][0]['metrics']['Set5']['psnr'] == data['results']['Set5']['metrics']['psnr'] < 99

    data['metrics']['psnr']['test_y_channel'] = False
    write_json(path, data)
    notes = make_report([run_dir], tmp_path / 'r', sets=['Set5'])['runs'][0]['notes']
    assert any('not the Y channel' in note and 'val.metrics.psnr.test_y_channel' in note for note in notes)


def test_errors_name_the_problem(two_runs, tmp_path, capsys):
    work, _ = two_runs
    with pytest.raises(ResultsError, match='no such results folder'):
        make_report([tmp_path / 'missing'], tmp_path / 'r')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ResultsError, match='no test results'):
        make_report([tmp_path / 'empty'], tmp_path / 'r')
    assert cli.main(['report', str(work / 'results' / 'test_EDSRmini_x2'), '--sets', 'Urban100',
                     '--out', str(tmp_path / 'r')]) == 2
    err = capsys.readouterr().err
    assert 'Urban100' in err and 'Set5, Set14' in err
    with pytest.raises(ReportError, match='no run has PSNR'):
        make_report([work / 'results' / 'test_EDSRmini_x2'], tmp_path / 'r', sets=['Urban100'])


def test_a_log_without_results_json_says_to_test_again(two_runs, tmp_path, capsys):
    """A folder tested before the JSON existed (a log only), or whose newest run has no JSON:
    an error naming the folder and the command, not the numbers of an older run."""
    work, _ = two_runs
    old = tmp_path / 'old' / 'test_EDSRmini_x2'
    shutil.copytree(work / 'results' / 'test_EDSRmini_x2', old)
    (path, ) = old.glob('test_*.json')
    (old / 'test_test_EDSRmini_x2_29990101_000000.log').write_text('a newer run that stopped')
    for results in (old, old.parent):
        assert cli.main(['report', str(results), '--out', str(tmp_path / 'r')]) == 2
        err = capsys.readouterr().err
        assert f'{old}: the test run test_test_EDSRmini_x2_29990101_000000.log has no' in err
        assert 'python -m srcomp_plugin.test -opt' in err and 'Traceback' not in err
    path.unlink()
    with pytest.raises(ResultsError, match='has no test_test_EDSRmini_x2_.*json beside it'):
        make_report([path.with_suffix('.log')], tmp_path / 'r')


@pytest.mark.parametrize('model_type', ['SparseSRModel', 'DistillSRModel'])
def test_the_plugin_models_write_results_too(sr_dataset, random_teacher, tmp_path, model_type):
    """The stage-1 and stage-3 model types, tested with the options they trained with, write the JSON."""
    opt = tiny_train_opt(sr_dataset, f'tiny_{model_type}')
    opt = use_obproxsg(opt) if model_type == 'SparseSRModel' else use_teacher(opt, random_teacher)
    opt['path'] = {'pretrain_network_g': 'net.pth', 'param_key_g': 'params_ema', 'strict_load_g': True}
    net = save_random_weights(opt, tmp_path, seed=0)
    opt['datasets'] = {'test_1': dict(opt['datasets']['val'], name='tiny_val')}
    del opt['train']
    run_module('srcomp_plugin.test', ['-opt', write_opt(tmp_path / 'test.yml', opt)], cwd=tmp_path)
    data = assert_results_match_the_log(tmp_path / 'results' / opt['name'], opt, tmp_path)
    assert data['model_type'] == model_type and data['params'] == count_params(net)


def test_results_under_torchrun_come_from_rank_0(sr_dataset, random_teacher, tmp_path):
    """``--launcher pytorch`` with two processes: one JSON, the log's numbers, as a single process gets."""
    opt = {'name': 'tiny_dist', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
           'datasets': {'test_1': {'name': 'tiny_val', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                                   'dataroot_gt': str(sr_dataset['val_gt']), 'dataroot_lq': str(sr_dataset['val_lq']),
                                   'filename_tmpl': '{}x2'}},
           'network_g': dict(TINY_EDSR, num_feat=12), 'dist_params': {'backend': 'gloo', 'port': 29500},
           'path': {'pretrain_network_g': str(random_teacher), 'param_key_g': 'params', 'strict_load_g': True},
           'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2,
                                                           'test_y_channel': True}}}}
    run_torchrun(2, 'srcomp_plugin.test', ['-opt', write_opt(tmp_path / 'dist.yml', opt)], cwd=tmp_path)
    assert len(list((tmp_path / 'results' / 'tiny_dist').glob('test_*.json'))) == 1
    dist = assert_results_match_the_log(tmp_path / 'results' / 'tiny_dist', opt, tmp_path)
    single = dict(opt, name='tiny_single')
    run_module('srcomp_plugin.test', ['-opt', write_opt(tmp_path / 'single.yml', single)], cwd=tmp_path)
    alone = assert_results_match_the_log(tmp_path / 'results' / 'tiny_single', single, tmp_path)
    assert [(v['images'], v['metrics']) for v in dist['results'].values()] == [
        (v['images'], v['metrics']) for v in alone['results'].values()]


@pytest.mark.slow
def test_report_on_shared_set5_and_set14(tmp_path):
    """The documented use: a report from Set5 (published LR) and Set14 (prepared) of shared/datasets."""
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
    assert {k: v['images'] for k, v in read_results(run['results'])['results'].items()} == {'Set5': 5, 'Set14': 14}
    assert run['params'] == 49_603 and run['macs'] == count_macs(build_network({'type': 'EDSRmini'}), 2)
    assert cv2.imread(summary['files']['psnr_vs_params']) is not None
    # the bicubic reference, computed on the same pairs: the published x2 values are 33.66 and 30.24
    assert abs(summary['bicubic']['x2'] - (33.66 + 30.24) / 2) < 0.1, summary['bicubic']
    assert 'Bicubic (MATLAB imresize) on the same images' in Path(summary['files']['report']).read_text()
