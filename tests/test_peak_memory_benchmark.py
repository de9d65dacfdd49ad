"""``benchmarks/peak_memory.py``: the resident-memory growth of one forward, teacher against student.

Each network is measured in its own fresh process; the memory must grow with the input,
cover at least the output, and the student/teacher ratio must be the one printed.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import write_opt

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'peak_memory.py'
# A teacher with EDSRmini's layout but 64 channels: four times the feature maps of the student.
TEACHER = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 2, 'upscale': 2}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """``{lr size: (stdout, the pair's JSON)}`` of two runs of the script, on one thread."""
    tmp = tmp_path_factory.mktemp('peak_memory')
    opt = write_opt(tmp / 'distill.yml', {'scale': 2, 'network_g': {'type': 'EDSRmini'}, 'network_t': TEACHER})
    results = {}
    for lr_size in ('24x20', '256x256'):
        out = tmp / f'{lr_size}.json'
        proc = subprocess.run([sys.executable, str(SCRIPT), str(opt), '--lr-size', lr_size, '--threads', '1',
                               '--json-out', str(out), '--quiet'], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results[lr_size] = proc.stdout, json.loads(out.read_text())['pairs'][0]
    return results


def test_peak_memory_grows_with_the_input(runs):
    small, big = runs['24x20'][1]['student'], runs['256x256'][1]['student']
    for mem in (small, big):
        assert mem['forward_peak_bytes'] >= mem['output_bytes'] > 0
        assert mem['threads'] == 1
    assert small['output_bytes'] == 3 * 48 * 40 * 4
    # 136x the pixels: the feature maps alone are 16 x 256 x 256 floats (4 MiB) each.
    assert big['forward_peak_bytes'] > small['forward_peak_bytes'] + 4 * 2**20
    assert big['output_bytes'] == 3 * 512 * 512 * 4


def test_teacher_and_student_side_by_side(runs):
    stdout, pair = runs['256x256']
    teacher, student = pair['teacher'], pair['student']
    assert (teacher['network_opt']['type'], student['network_opt']['type']) == ('EDSR', 'EDSRmini')
    assert teacher['input_shape'] == student['input_shape'] == [1, 3, 256, 256]
    assert teacher['scale'] == student['scale'] == 2
    assert teacher['forward_peak_bytes'] > student['forward_peak_bytes']
    assert pair['forward_peak_ratio'] == student['forward_peak_bytes'] / teacher['forward_peak_bytes'] < 1
    assert f"student's forward peaks at {pair['forward_peak_ratio']:.3f} x the teacher's" in stdout
