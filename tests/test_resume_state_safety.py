"""Resume states are read without running code, and a bad newest state is not the end of a run.

A ``.state`` file that asks the unpickler for a Python callable (here ``os.mkdir``,
which would create a marker folder) is refused: ``--auto_resume`` names it, keeps it and
resumes from the previous state; an explicit ``path.resume_state`` pointing at it is an
error that names the file. The marker never appears. Runs go through
``python -m srcomp_plugin.train`` with SparseSRModel, whose states hold the numpy RNG state
that exact resume needs.
"""
import re

import pytest
import torch

from helpers import MkdirWhenUnpickled, run_module, tiny_train_opt, use_obproxsg, write_opt
from srcomp_plugin.utils.resume_state import ResumeStateError, load_state


def _crafted_state(path, marker):
    torch.save({'iter': 4, 'epoch': 0, 'optimizers': [], 'schedulers': [], 'payload': MkdirWhenUnpickled(marker)}, path)


@pytest.fixture(scope='module')
def run_with_states(sr_dataset, tmp_path_factory):
    """A 4-iteration stage-1 run with training states at 2 and 4; the state at 4 replaced by a crafted one."""
    work = tmp_path_factory.mktemp('resume_safety')
    opt = use_obproxsg(tiny_train_opt(sr_dataset, 'safety', total_iter=4))
    opt['logger']['save_checkpoint_freq'] = 2
    path = write_opt(work / 'safety.yml', opt)
    run_module('srcomp_plugin.train', ['-opt', path], cwd=work)
    states = work / 'experiments' / 'safety' / 'training_states'
    assert sorted(p.name for p in states.iterdir()) == ['2.state', '4.state']
    assert load_state(states / '2.state')['iter'] == 2  # the run's own state loads with weights_only=True
    _crafted_state(states / '4.state', work / 'marker')
    return work, opt, states


def test_crafted_state_is_refused_by_name(tmp_path):
    marker = tmp_path / 'marker'
    _crafted_state(tmp_path / '7.state', marker)
    with pytest.raises(ResumeStateError, match=r'7\.state: refused to unpickle'):
        load_state(tmp_path / '7.state')
    assert not marker.exists()


def test_truncated_state_is_named(tmp_path):
    torch.save({'iter': 3, 'numpy': __import__('numpy').arange(1000)}, tmp_path / '3.state')
    data = (tmp_path / '3.state').read_bytes()
    (tmp_path / '3.state').write_bytes(data[:len(data) // 2])
    with pytest.raises(ResumeStateError, match=r'3\.state: not a readable training state'):
        load_state(tmp_path / '3.state')


def test_auto_resume_skips_a_refused_newest_state(run_with_states):
    work, opt, states = run_with_states
    opt = dict(opt, train=dict(opt['train'], total_iter=6))
    path = write_opt(work / 'safety_more.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path, '--auto_resume'], cwd=work)
    out = proc.stdout + proc.stderr
    assert '--auto_resume skips' in out and '4.state (kept as it is)' in out
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', out)
    assert (work / 'experiments' / 'safety' / 'models' / 'net_g_6.pth').is_file()
    assert (states / '4.state').is_file() and not (work / 'marker').exists()


def test_explicit_resume_state_that_is_refused_is_an_error(run_with_states, tmp_path):
    work, opt, states = run_with_states
    crafted = tmp_path / '4.state'
    _crafted_state(crafted, tmp_path / 'marker')
    opt = dict(opt, name='safety_explicit', path=dict(opt['path'], resume_state=str(crafted)))
    proc = run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'explicit.yml', opt)], cwd=work,
                      check=False)
    assert proc.returncode != 0
    assert f'{crafted}: refused to unpickle' in proc.stderr
    assert not (tmp_path / 'marker').exists()
