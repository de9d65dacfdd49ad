"""Kill and resume: a run SIGKILLed right after (or in the middle of writing) a checkpoint
and restarted with ``--auto_resume`` ends bit-identical to an uninterrupted run.

Covers stage 1 (SparseSRModel/OBProxSG across the Prox-SG -> orthant switch) and stage 3
(DistillSRModel with a live teacher and with the teacher cache). Deterministic CPU
settings: one thread, ``num_worker_per_gpu: 0``.
"""
import textwrap

import pytest
import torch

from helpers import run_module, tiny_train_opt, use_obproxsg, use_teacher, write_opt

TOTAL, KILL_AT = 8, 3  # 4 images, batch 2: 2 iterations per epoch, so iteration 3 is mid-epoch

KILLER = textwrap.dedent('''
    """Run srcomp_plugin.train, SIGKILL the process right after / while writing checkpoint KILL_AT."""
    import os, signal, sys
    import srcomp_plugin  # noqa
    import srcomp_plugin.models.checkpoint_safety as cs

    kill_at, mode = int(sys.argv.pop(1)), sys.argv.pop(1)
    if mode == 'after':
        save = cs.CheckpointSafetyMixin.save

        def save_then_die(self, epoch, it):
            save(self, epoch, it)
            if it == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        cs.CheckpointSafetyMixin.save = save_then_die
    else:  # die half-way through writing the training state
        import io
        import torch
        real_save = torch.save

        def half_save(obj, path, *args, **kwargs):
            if str(path).endswith(f'{kill_at}.state.tmp'):
                buf = io.BytesIO()
                real_save(obj, buf)
                with open(path, 'wb') as f:
                    f.write(buf.getvalue()[:len(buf.getvalue()) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, path, *args, **kwargs)
        torch.save = half_save
    from srcomp_plugin.train import main
    main()
''')


def _sparse_opt(sr_dataset, name):
    # Prox-SG steps 1-4, orthant steps 5-8
    return use_obproxsg(tiny_train_opt(sr_dataset, name, total_iter=TOTAL), lambda_=5e-2, epoch_size=2, Np=2)


def _distill_opt(sr_dataset, name, teacher, cache_dir=None):
    opt = use_teacher(tiny_train_opt(sr_dataset, name, total_iter=TOTAL), teacher)
    if cache_dir is not None:
        opt['datasets']['train'].update(type='DistillPairedImageDataset', dataroot_teacher=str(cache_dir))
        opt['train']['teacher_cache'] = {'format': 'png'}
    return opt


def _assert_same(a, b, where=''):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, (where, a, b)


def _run_pair(tmp_path, opt_fn, mode):
    """An uninterrupted run and a killed + resumed one; compare the final checkpoints bit for bit."""
    full = write_opt(tmp_path / 'full.yml', opt_fn('full'))
    if opt_fn('full')['train'].get('teacher_cache'):
        run_module('srcomp_plugin.cli', ['teacher-cache', '-opt', full], cwd=tmp_path)
    run_module('srcomp_plugin.train', ['-opt', full], cwd=tmp_path)

    opt = opt_fn('killed')
    opt['logger']['save_checkpoint_freq'] = 1  # checkpoints at every iteration, so also at KILL_AT and TOTAL
    killed = write_opt(tmp_path / 'killed.yml', opt)
    (tmp_path / 'killer.py').write_text(KILLER)
    proc = run_module('killer', [KILL_AT, mode, '-opt', killed], cwd=tmp_path, check=False,
                      env={'PYTHONPATH': str(tmp_path)})
    assert proc.returncode == -9, proc.stderr[-3000:]
    states = tmp_path / 'experiments' / 'killed' / 'training_states'
    if mode == 'during':
        assert (states / f'{KILL_AT}.state.tmp').is_file() and not (states / f'{KILL_AT}.state').exists()
    resumed = run_module('srcomp_plugin.train', ['-opt', killed, '--auto_resume'], cwd=tmp_path)
    expected_from = KILL_AT - 1 if mode == 'during' else KILL_AT
    assert f'iter: {expected_from}.' in resumed.stdout + resumed.stderr

    exp = tmp_path / 'experiments'
    a = torch.load(exp / 'full' / 'models' / f'net_g_{TOTAL}.pth', map_location='cpu')
    b = torch.load(exp / 'killed' / 'models' / f'net_g_{TOTAL}.pth', map_location='cpu')
    _assert_same(a, b, 'net_g')
    sa = torch.load(exp / 'full' / 'training_states' / f'{TOTAL}.state', map_location='cpu', weights_only=False)
    sb = torch.load(exp / 'killed' / 'training_states' / f'{TOTAL}.state', map_location='cpu', weights_only=False)
    _assert_same(sa['optimizers'], sb['optimizers'], 'optimizers')
    _assert_same(sa['schedulers'], sb['schedulers'], 'schedulers')
    return a


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['after', 'during'])
def test_sparse_model_kill_and_resume_is_exact(sr_dataset, tmp_path, mode):
    final = _run_pair(tmp_path, lambda name: _sparse_opt(sr_dataset, name), mode)
    assert any((v == 0).any() for k, v in final['params'].items() if k.startswith('body'))


@pytest.mark.slow
def test_basicsr_sr_model_kill_and_resume_is_exact(sr_dataset, tmp_path):
    # model_type SRModel (teachers, scratch baselines) through srcomp_plugin.train
    _run_pair(tmp_path, lambda name: tiny_train_opt(sr_dataset, name, total_iter=TOTAL), 'during')


@pytest.mark.slow
@pytest.mark.parametrize('cache', [False, True], ids=['live_teacher', 'teacher_cache'])
def test_distill_model_kill_and_resume_is_exact(sr_dataset, tmp_path, random_teacher, cache):
    cache_dir = tmp_path / 'cache' if cache else None
    _run_pair(tmp_path, lambda name: _distill_opt(sr_dataset, name, random_teacher, cache_dir), 'after')
