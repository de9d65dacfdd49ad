"""`srcomp demo --quick` end to end, and `srcomp pipeline` skipping finished stages and
resuming an interrupted one (the demo's own pipeline, rerun)."""
import json
import re

import pytest
import torch
import yaml

from helpers import run_module

NAME = 'demo_edsr_x2_quick'


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp('demo')
    proc = run_module('srcomp_plugin.cli', ['demo', '--quick', '--workdir', work, '--no-latency'], cwd=work,
                      timeout=1200)
    return work, proc.stdout + proc.stderr


def _pipeline(work):
    return run_module('srcomp_plugin.cli', ['pipeline', '-opt', work / 'experiments' / NAME / 'pipeline.yml'],
                      cwd=work)


@pytest.mark.slow
def test_demo_quick_prints_the_comparison_table(demo):
    work, out = demo
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r'^\| (bicubic|teacher|student from scratch|student via paper recipe|student via srcomp) \| ([^|]+) \| '
        r'([^|]+) \| [^|]+ \| ([^|]+) \| ([\d.]+) \| ([\d.]+) \|$', out, re.M)}
    assert set(rows) == {'bicubic', 'teacher', 'student from scratch', 'student via paper recipe',
                         'student via srcomp'}
    teacher_params = int(rows['teacher'][0].replace(',', ''))
    student_params = int(rows['student via srcomp'][0].replace(',', ''))
    assert rows['student from scratch'][0] == rows['student via paper recipe'][0] == rows['student via srcomp'][0]
    assert 0 < student_params <= 0.2 * teacher_params  # the demo's target: 0.04 (shipped teacher) or 0.2
    assert float(rows['student via srcomp'][1]) < float(rows['teacher'][1])  # fewer MACs
    assert all(0 < float(r[3]) < 100 and 0 < float(r[4]) <= 1 for r in rows.values())
    # training compute, in steps of the scratch student: stage 1 and every teacher forward are counted
    compute = {role: r[2].strip() for role, r in rows.items()}
    assert compute['bicubic'] == compute['teacher'] == '-' and compute['student from scratch'] == '40'
    assert compute['student via srcomp'] == compute['student via paper recipe']
    assert float(compute['student via srcomp'].replace(',', '')) > 10 * 40  # 10 teacher steps of ~24x plus KD
    assert 'training compute: MACs of every forward and backward' in out
    table = {r['role']: r for r in json.loads((work / f'{NAME}_table.json').read_text())}
    ratio = table['srcomp']['compute'] / table['scratch']['compute']
    assert f'The srcomp student took {ratio:.1f}x the compute of the student from scratch' in out
    home = work / 'experiments' / NAME
    for stage in ('prune', 'distill', 'test'):  # every generated option file is kept
        assert (home / 'options' / f'{stage}.yml').is_file()
    assert (work / 'experiments' / f'{NAME}_prune' / 'models' / 'sparsity_latest.json').is_file()
    ckpt = torch.load(work / 'experiments' / f'{NAME}_distill' / 'models' / 'net_g_latest.pth', map_location='cpu')
    assert set(ckpt) == {'params', 'params_ema'}
    assert 'they end below bicubic, as expected of a smoke run' in out
    assert 'teacher: EDSR (shipped)' in out and 'target ratio 0.04' in out  # the default teacher and target
    # quiet by default: BasicSR's option and network dumps go to one log per run, not the terminal
    assert 'INFO: Network' not in out and len(out.splitlines()) < 200, len(out.splitlines())
    assert 'INFO: Network' in (work / 'logs' / f'{NAME}_scratch.log').read_text()
    assert (work / 'logs' / f'{NAME}_prune.log').is_file() and (work / 'logs' / f'{NAME}_test.log').is_file()


@pytest.mark.slow
def test_demo_writes_the_table_as_json(demo):
    work, out = demo
    records = json.loads((work / f'{NAME}_table.json').read_text())
    assert [r['role'] for r in records] == ['bicubic', 'teacher', 'scratch', 'paper', 'srcomp']
    for r in records:
        assert set(r) >= {'role', 'psnr', 'ssim', 'params', 'macs'}
        assert isinstance(r['psnr'], float) and isinstance(r['ssim'], float)
        assert (r['params'] is None) == (r['macs'] is None) == (r['role'] == 'bicubic')
    by_role = {r['role']: r for r in records}
    for role in ('teacher', 'scratch', 'paper', 'srcomp'):  # the JSON is the printed table
        assert f"| {by_role[role]['psnr']:.2f} | {by_role[role]['ssim']:.4f} |" in out
    assert by_role['scratch']['params'] == by_role['paper']['params'] == by_role['srcomp']['params']


@pytest.mark.slow
def test_demo_srcomp_student_starts_from_the_structured_prune(demo):
    """The default recipe: stage 1 decays what the slicer drops to zero, stage 3 starts from the slice."""
    work, _ = demo
    distill = yaml.safe_load((work / 'experiments' / NAME / 'options' / 'distill.yml').read_text())
    assert distill['train']['distill_opt']['type'] == 'L1Loss'
    assert distill['path']['pretrain_network_g'].endswith('_pruned_init.pth')
    report = json.loads((work / 'experiments' / f'{NAME}_prune' / 'models' / 'sparsity_latest.json').read_text())
    assert report['structured']['dropped_all_zero'] is True
    paper = yaml.safe_load((work / 'options' / f'{NAME}_paper.yml').read_text())
    assert paper['train']['distill_opt']['type'] == 'MultiLapLoss' and paper['path']['pretrain_network_g'] is None


@pytest.mark.slow
def test_pipeline_rerun_skips_finished_stages(demo):
    work, _ = demo
    before = sorted(p.name for p in (work / 'experiments').iterdir())
    out = _pipeline(work).stdout
    for stage in ('prune', 'compress', 'distill', 'test'):
        assert f'[srcomp pipeline] {stage}: already done, skipped' in out
    assert sorted(p.name for p in (work / 'experiments').iterdir()) == before  # nothing archived or rerun


@pytest.mark.slow
def test_interrupted_stage_resumes(demo):
    """A distill run killed after its last checkpoint has training states but no
    net_g_latest.pth; the rerun skips prune and compress and resumes distill."""
    work, _ = demo
    exp = work / 'experiments' / f'{NAME}_distill'
    (exp / 'models' / 'net_g_latest.pth').unlink()
    for run in (work / 'results' / f'{NAME}_test').glob('test_*'):  # the log and its results JSON
        run.unlink()
    proc = _pipeline(work)
    out = proc.stdout + proc.stderr
    assert '[srcomp pipeline] prune: already done, skipped' in out
    assert '[srcomp pipeline] compress: already done, skipped' in out
    assert 'distill: unfinished experiment found, resuming (--auto_resume)' in out
    assert 'Resuming training from epoch' in out
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    assert '[srcomp pipeline] test: done' in out
    assert not list((work / 'experiments').glob(f'{NAME}_distill_archived_*'))


def test_shipped_teacher_is_a_small_edsr_checkpoint():
    """The demo's stand-in teacher: BasicSR's EDSR f64b8 x2, EMA weights only, a few MB, loads strictly."""
    from srcomp_plugin.pipeline.demo import shipped_teacher  # noqa: I100  (the plugin before BasicSR)
    from basicsr.archs.edsr_arch import EDSR

    path, network = shipped_teacher('edsr', 2)
    assert path.stat().st_size < 4 * 2 ** 20
    state = torch.load(path, map_location='cpu', weights_only=True)
    assert list(state) == ['params_ema']
    EDSR(**{k: v for k, v in network.items() if k != 'type'}).load_state_dict(state['params_ema'], strict=True)
    assert shipped_teacher('edsr', 3) is None and shipped_teacher('swinir', 2) is None


def test_a_given_edsr_teacher_is_read_from_its_weights(tmp_path):
    """``srcomp demo --teacher CKPT`` without ``--teacher-opt``: the EDSR record reads the network back."""
    from srcomp_plugin.pipeline.demo import DemoError, infer_edsr_network, shipped_teacher

    path, network = shipped_teacher('edsr', 2)
    assert infer_edsr_network(path) == network
    other = tmp_path / 'swinir.pth'
    torch.save({'params': {'layers.0.residual_group.blocks.0.norm1.weight': torch.ones(6)}}, other)
    with pytest.raises(DemoError, match='not a BasicSR EDSR checkpoint'):
        infer_edsr_network(other)
