"""``benchmarks/quality.py --smoke``: the quality ablation's every step, tiny, on real photographs.

The ablation runs for hours across sessions; this keeps its harness working: data
preparation, the teacher, both stage-1 kinds, ``srcomp compress`` for both recipes, one run
per arm through BasicSR's train and test pipelines, the JSON records, the table, and the
skip of finished runs on a restart.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'benchmarks' / 'quality.py'
SHARED = REPO.parent / 'shared' / 'datasets'
ARMS = ('scratch', 'paper', 'kd_scratch', 'sliced', 'sliced_kd', 'srcomp', 'srcomp_extra', 'srcomp_lean')

pytestmark = pytest.mark.skipif(not (SHARED / 'Set5').is_dir() or not (SHARED / 'Set14').is_dir(),
                                reason='needs ../shared/datasets (Set5, Set14) beside the repository')


def _run(work):
    proc = subprocess.run([sys.executable, str(SCRIPT), '--smoke', '--work', str(work)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp('quality')
    return work, _run(work)


@pytest.mark.slow
def test_every_arm_is_recorded_once(smoke):
    work, _ = smoke
    records = json.loads((work / 'quality.json').read_text())
    teacher = [r for r in records if r['arm'] == 'teacher']
    records = [r for r in records if r['arm'] != 'teacher']
    assert len(teacher) == 1 and set(teacher[0]['psnr']) == {'Set5', 'Set14'}
    assert sorted(r['arm'] for r in records) == sorted(ARMS)
    for r in records:
        assert (r['family'], r['iters'], r['seed']) == ('edsr', 4, 0)
        assert set(r['psnr']) == set(r['ssim']) == {'Set5', 'Set14'}
        assert all(0 < v < 100 for v in r['psnr'].values()) and all(0 < v <= 1 for v in r['ssim'].values())
    table = (work / 'QUALITY.md').read_text()
    assert all(f'| {arm} |' in table for arm in ARMS)
    assert 'Teacher (6 it): Set5+14 ' in table and '| teacher |' not in table


@pytest.mark.slow
def test_arms_differ_only_where_they_should(smoke):
    work, _ = smoke
    opts = {arm: yaml.safe_load((work / 'options' / f'q_edsr_{arm}_4_s0.yml').read_text()) for arm in ARMS}
    assert {opts[a]['model_type'] for a in ('scratch', 'sliced')} == {'SRModel'}
    assert opts['paper']['train']['distill_opt']['type'] == 'MultiLapLoss'
    assert opts['paper']['train']['pixel_opt']['loss_weight'] == 0.1
    for arm in ('kd_scratch', 'sliced_kd', 'srcomp', 'srcomp_extra'):
        assert opts[arm]['train']['distill_opt']['type'] == 'L1Loss'
    for arm in ('scratch', 'paper', 'kd_scratch'):
        assert opts[arm]['path']['pretrain_network_g'] is None
    assert opts['srcomp_lean']['model_type'] == 'SRModel' and 'network_t' not in opts['srcomp_lean']
    assert '_lean_4_f25_' in opts['srcomp_lean']['path']['pretrain_network_g']  # the lean stage 1's slice
    plain = opts['sliced']['path']['pretrain_network_g']
    structured = opts['srcomp']['path']['pretrain_network_g']
    assert 'plain' in plain and opts['sliced_kd']['path']['pretrain_network_g'] == plain
    assert 'structured' in structured and opts['srcomp_extra']['path']['pretrain_network_g'] == structured
    assert opts['srcomp_extra']['datasets']['train']['type'] == 'ExtraInputsPairedImageDataset'
    networks = {yaml.safe_dump(o['network_g']) for o in opts.values()}
    assert len(networks) == 1  # one student shape for every arm
    records = {r['arm']: r for r in json.loads((work / 'quality.json').read_text())}
    for arm, o in opts.items():  # every schedule ends at the run's stage-3 length (the budget but for lean)
        scheduler, iters = o['train']['scheduler'], records[arm]['cost']['stage3']['iters']
        assert o['train']['total_iter'] == iters and (arm == 'srcomp_lean' or iters == 4)
        assert scheduler.get('periods', [iters]) == [iters] and all(m <= 4 for m in scheduler.get('milestones', []))


@pytest.mark.slow
def test_every_record_carries_its_cost(smoke):
    """MACs per stage in scratch-step equivalents, measured seconds, and the equal-compute table and plot."""
    work, _ = smoke
    records = {r['arm']: r for r in json.loads((work / 'quality.json').read_text()) if r['arm'] != 'teacher'}
    for arm, r in records.items():
        cost = r['cost']
        stages = [cost[k] for k in ('stage1', 'teacher_cache', 'stage3') if cost[k]]
        assert cost['macs'] == sum(st['macs'] for st in stages)
        assert all(st['seconds'] > 0 for st in stages) and cost['seconds'] == pytest.approx(
            sum(st['seconds'] for st in stages), abs=0.2)
        assert cost['stage3']['live_teacher'] == (arm in ('paper', 'kd_scratch', 'sliced_kd', 'srcomp', 'srcomp_extra'))
        assert (cost['stage1'] is None) == (arm in ('scratch', 'paper', 'kd_scratch'))
    unit = records['scratch']['cost']['macs'] / 4
    assert records['scratch']['cost']['scratch_steps'] == 4  # the unit: one step of the scratch arm
    assert records['kd_scratch']['cost']['macs'] > records['scratch']['cost']['macs']  # + the teacher's forwards
    assert records['srcomp']['cost']['stage1'] == records['srcomp_extra']['cost']['stage1']  # shared, charged to both
    lean = records['srcomp_lean']['cost']
    assert lean['stage3']['iters'] == 4 - round(lean['stage1']['macs'] / unit)  # stage 3 gets what stage 1 left
    assert lean['stage3']['macs'] == lean['stage3']['iters'] * unit
    table = (work / 'QUALITY.md').read_text()
    assert '## edsr at equal compute' in table and '| srcomp_lean |' in table.split('at equal compute')[1]
    assert (work / 'quality_compute_edsr.png').stat().st_size > 10_000


@pytest.mark.slow
def test_a_restart_skips_finished_runs(smoke):
    work, _ = smoke
    before = (work / 'quality.json').read_text()
    out = _run(work)
    assert '[quality] 0 runs to do (9 records already in' in out
    assert (work / 'quality.json').read_text() == before
