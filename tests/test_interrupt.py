"""Ctrl-C (SIGINT) or SIGTERM stops training cleanly: exit code 130, the resume command on
stderr, no traceback, and the checkpoints written so far intact and resumable."""
import signal
import subprocess
import sys
import time

import pytest

from helpers import run_module, subprocess_env, tiny_train_opt, write_opt


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_a_signal_stops_training_with_a_resume_hint(sig, sr_dataset, tmp_path):
    opt = tiny_train_opt(sr_dataset, 'stopped', total_iter=100000)
    opt['logger']['save_checkpoint_freq'] = 2
    path = write_opt(tmp_path / 'opt.yml', opt)
    # SIGINT at its default in the child, as in a terminal: a shell without job control starts
    # background commands (pytest too) with SIGINT ignored, and Python keeps an ignored SIGINT
    proc = subprocess.Popen([sys.executable, '-m', 'srcomp_plugin.train', '-opt', str(path)], cwd=tmp_path,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        states = tmp_path / 'experiments' / 'stopped' / 'training_states'
        deadline = time.time() + 120
        while not (states / '2.state').is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (states / '2.state').is_file(), 'training did not reach its first checkpoint'
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a 100k-iteration run behind a failed assertion
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert 'Traceback' not in err
    assert f'python -m srcomp_plugin.train -opt {path} --auto_resume' in err
    # what was written is usable: the run resumes from it (one more iteration past the newest state)
    newest = max(int(p.stem) for p in states.glob('*.state'))
    opt['train']['total_iter'] = newest + 1
    write_opt(path, opt)
    resumed = run_module('srcomp_plugin.train', ['-opt', path, '--auto_resume'], cwd=tmp_path)
    assert f'iter: {newest}.' in resumed.stdout + resumed.stderr
