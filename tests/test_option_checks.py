"""A wrong BasicSR option file stops ``srcomp_plugin.train``/``.test`` at once: one line naming
the file and the option, exit code 2, no traceback, no folder created or archived."""
from pathlib import Path

import pytest

from helpers import run_module, tiny_train_opt, write_opt
from srcomp_plugin.utils.option_checks import check_options
from srcomp_plugin.utils.safe_yaml import load_options

REPO = Path(__file__).resolve().parents[1]


def _drop(key):
    def edit(opt):
        opt.pop(key)
    return edit


def _set(*keys, value):
    def edit(opt):
        target = opt
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


BAD = {  # case: (edit of a valid option dict, words the error must contain)
    'no_datasets': (_drop('datasets'), 'missing top-level option(s) datasets'),
    'no_network_g': (_drop('network_g'), 'missing top-level option(s) network_g'),
    'quoted_scale': (_set('scale', value='2'), 'scale must be a positive integer'),
    'zero_iterations': (_set('train', 'total_iter', value=0), 'train.total_iter must be a positive integer'),
    'negative_iterations': (_set('train', 'total_iter', value=-5), 'train.total_iter must be a positive integer'),
    'no_train_set': (lambda opt: opt['datasets'].pop('train'), 'datasets.train is missing'),
    'parent_name': (_set('name', value='../escaped'), "name '../escaped' must be a single folder name"),
    'path_name': (_set('name', value='a/b'), "name 'a/b' must be a single folder name"),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_option_file_is_one_line_and_creates_nothing(case, sr_dataset, tmp_path):
    edit, words = BAD[case]
    opt = tiny_train_opt(sr_dataset, 'bad')
    edit(opt)
    path = write_opt(tmp_path / 'opt.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert words in proc.stderr and str(path) in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['opt.yml']


def test_absolute_name_leaves_that_folder_alone(sr_dataset, tmp_path):
    victim = tmp_path / 'precious'
    victim.mkdir()
    (victim / 'data.txt').write_text('keep me')
    path = write_opt(tmp_path / 'opt.yml', tiny_train_opt(sr_dataset, str(victim)))
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and 'must be a single folder name' in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['opt.yml', 'precious']
    assert (victim / 'data.txt').read_text() == 'keep me'


def test_test_pipeline_checks_too(sr_dataset, tmp_path):
    opt = tiny_train_opt(sr_dataset, 'bad')
    opt.pop('network_g')
    path = write_opt(tmp_path / 'opt.yml', opt)
    proc = run_module('srcomp_plugin.test', ['-opt', path], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and 'missing top-level option(s) network_g' in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize('path', sorted(p.relative_to(REPO) for p in (REPO / 'options').rglob('*.yml')
                                        if p.parent.name in ('train', 'prune', 'distill', 'teacher', 'test')
                                        and not p.name.startswith('recipe_')), ids=str)
def test_shipped_option_files_pass(path):
    check_options(load_options(REPO / path), str(path), is_train=path.parent.name != 'test')


def test_a_second_run_with_the_same_name_fails_at_once(sr_dataset, tmp_path):
    from srcomp_plugin.utils import experiment_lock

    path = write_opt(tmp_path / 'opt.yml', tiny_train_opt(sr_dataset, 'busy'))
    lock = experiment_lock.acquire(str(tmp_path), 'busy')  # this test process is "the first run"
    try:
        proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path, check=False)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert 'experiments/busy is in use by a running training (pid ' in proc.stderr
        assert not (tmp_path / 'experiments' / 'busy').exists()
    finally:
        experiment_lock.release(lock)
    # the lock file stays behind, as after a killed run: the next run takes it over
    assert (tmp_path / 'experiments' / '.busy.lock').is_file()
    run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path)
    assert (tmp_path / 'experiments' / 'busy' / 'models' / 'net_g_latest.pth').is_file()


def test_a_checkpoint_of_another_shape_is_explained_for_sr_model(sr_dataset, tmp_path):
    import torch

    from srcomp_plugin.compress.shape_rule import build_arch

    other = build_arch('EDSR', {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 2, 'upscale': 2})
    torch.save({'params': other.state_dict()}, tmp_path / 'other.pth')
    opt = tiny_train_opt(sr_dataset, 'shape')  # EDSR f8b1, model_type SRModel
    opt['path']['pretrain_network_g'] = str(tmp_path / 'other.pth')
    opt['datasets'] = {'test_1': opt['datasets']['val']}
    proc = run_module('srcomp_plugin.test', ['-opt', write_opt(tmp_path / 'test.yml', opt)], cwd=tmp_path,
                      check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'other.pth does not fit the EDSR built from network_g' in proc.stderr and 'Traceback' not in proc.stderr
