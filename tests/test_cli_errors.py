"""A user's mistake on any ``srcomp`` sub-command ends as one line on stderr and exit code 2.

Each case runs the real command in a subprocess and checks the code, the words that name
the input at fault, and that no traceback was printed.
"""
import os

import pytest
import torch
import yaml

import srcomp_plugin  # noqa: F401  (the torchvision alias before BasicSR)
from basicsr.archs.edsr_arch import EDSR

from helpers import MkdirWhenUnpickled, run_module

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(tmp_path):
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    torch.save({'params': MkdirWhenUnpickled(str(tmp_path / 'marker'))}, tmp_path / 'evil.pth')
    (tmp_path / 'regular').write_text('a file')
    prune = yaml.safe_load(open(os.path.join(REPO, 'options', 'prune', 'train_EDSR_f64b16_x2_prune.yml')))
    (tmp_path / 'prune.yml').write_text(yaml.safe_dump(prune))
    tiny = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    (tmp_path / 'tiny.yml').write_text(yaml.safe_dump({'scale': 2, 'network_g': tiny}))
    torch.save({'params': EDSR(3, 3, num_feat=8, num_block=1, upscale=2).state_dict()}, tmp_path / 'tiny.pth')


CASES = {  # name: (argv, words in stderr)
    'profile_scale': (['profile', '--arch', 'EDSRmini', '--scale', '7', '--no-latency'],
                      'scale 7 is not supported'),
    'profile_arch': (['profile', '--arch', 'EDSRMini', '--no-latency'], "unknown arch 'EDSRMini'"),
    'sparsity_text': (['sparsity', 'text.pth'], 'text.pth: not a PyTorch checkpoint of tensors'),
    'sparsity_code': (['sparsity', 'evil.pth'], 'evil.pth: not a PyTorch checkpoint of tensors'),
    'demo_workdir': (['demo', '--workdir', 'regular', '--quick'], '--workdir regular is a file'),
    'compress_params': (['compress', '-opt', 'prune.yml', '--checkpoint', 'text.pth', '--params', '99999999',
                         '--out', 'd.yml'], 'text.pth'),
    'unknown_command': (['prun'], "unknown command 'prun'"),
    'compress_out_exists': (['compress', '-opt', 'prune.yml', '--checkpoint', 'text.pth', '--ratio', '0.5',
                             '--out', 'regular'], '--out regular: would replace regular'),
    'export_unwritable': (['export', '-opt', 'tiny.yml', '--checkpoint', 'tiny.pth', '--format', 'torchscript',
                           '--output', 'regular/model.pt'], '--output regular/model.pt: cannot write to regular'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_user_error_is_one_line_and_exit_2(case, tmp_path):
    _files(tmp_path)
    argv, words = CASES[case]
    proc = run_module('srcomp_plugin.cli', argv, cwd=tmp_path, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert words in proc.stderr, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'marker').exists()
    assert (tmp_path / 'regular').read_text() == 'a file'


def test_params_above_the_teacher_is_said_plainly():
    from srcomp_plugin.compress import CompressError, derive_student

    teacher = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'upscale': 2}
    with pytest.raises(CompressError, match=r"--params 99,999,999 is more than the teacher's 1,369,859 parameters"):
        derive_student(teacher, params=99999999)
