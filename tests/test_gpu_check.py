"""``benchmarks/gpu_check.py --device cpu --smoke``: the GPU check's every part, tiny, on the CPU.

The GPU check runs only when a GPU is lent, for minutes; this keeps its code working in
between. Every part must be recorded, every correctness part must pass (ONNX export may be
skipped when onnx is not installed), and the speed parts must have measured something.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'gpu_check.py'
CORRECTNESS = ('stage1_resume', 'compress', 'distill_fp32', 'distill_bf16', 'distill_cache', 'distill_ddp', 'test',
               'export', 'fused_paths')
SPEED = ('latency', 'throughput', 'kd_step')


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('gpu_check')
    out = tmp / 'gpu_check.json'
    env = dict(os.environ, OMP_NUM_THREADS='1')  # one thread per process: steadier on 2 shared cores
    proc = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu', '--smoke', '--out', str(out),
                           '--work', str(tmp / 'work')], capture_output=True, text=True, env=env, timeout=600)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.mark.slow
def test_every_part_is_recorded_and_correctness_passes(smoke):
    proc, result = smoke
    assert set(result['parts']) == set(CORRECTNESS + SPEED)
    for name in CORRECTNESS:
        part = result['parts'][name]
        if name == 'export' and part['status'] == 'skipped':
            assert part['summary'] == 'skipped: onnx not installed'
            continue
        assert part['status'] == 'ok', (name, part)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result['finished'] and result['correctness_passed']
    for name in CORRECTNESS + SPEED:  # one line per part
        assert f'[gpu_check] {name} ' in proc.stdout


@pytest.mark.slow
def test_correctness_figures(smoke):
    parts = smoke[1]['parts']
    resume = parts['stage1_resume']
    assert resume['bit_identical'] and resume['max_abs_diff'] == 0.0  # the CPU is deterministic
    compress = parts['compress']
    assert compress['student']['type'] == 'EDSRmini' and compress['student_params'] < compress['teacher_params']
    assert parts['distill_cache']['cached_images'] > 0
    assert parts['test']['scores']['psnr'] > 0
    if parts['export']['status'] == 'ok':
        assert parts['export']['max_abs_diff'] <= 1e-4
    assert max(parts['fused_paths']['max_abs_diff'].values()) <= 1e-4


@pytest.mark.slow
def test_speed_rows(smoke):
    parts = smoke[1]['parts']
    rows = parts['latency']['rows']
    assert {(r['network'], r['variant']) for r in rows} == {
        (n, v) for n in ('EDSR', 'EDSRmini', 'SwinIR-light', 'SwinIRmini') for v in ('fp32', 'bf16', 'channels_last')}
    assert all(r['median_s'] > 0 and r['peak_mem_mb'] == 'n/a' for r in rows)  # no CUDA memory on the CPU
    assert all(r['images_per_s'] > 0 for r in parts['throughput']['rows'])
    modes = {row['mode'] for row in parts['kd_step']['tables']['EDSRmini']['rows']}
    assert modes == {'sr', 'teacher_fwd', 'kd', 'kd_cached', 'kd_bf16', 'kd_release'}
