"""A run trains exactly ``train.total_iter`` iterations, and a training set too small for one
batch stops the run before anything is written (BasicSR alone trains fewer iterations on
small sets, and zero on a set smaller than a batch while still saving ``net_g_latest.pth``)."""
import re

from helpers import run_module, tiny_train_opt, write_opt


def test_total_iter_is_met_exactly_on_a_small_set(sr_dataset, tmp_path):
    # 4 training images, batch 3: one full batch per epoch; BasicSR's ceil(4/3) = 2 would plan
    # ceil(5/2) + 1 = 4 epochs, i.e. 4 iterations
    opt = tiny_train_opt(sr_dataset, 'exact', total_iter=5)
    opt['datasets']['train']['batch_size_per_gpu'] = 3
    proc = run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'exact.yml', opt)], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'Number of train images: 4' in out
    assert 'Iterations per epoch: 1 (the loader drops the last partial batch), so 5 epochs' in out
    iters = [int(m) for m in re.findall(r'iter:\s+(\d+),', out)]
    assert iters == [1, 2, 3, 4, 5]
    assert (tmp_path / 'experiments' / 'exact' / 'models' / 'net_g_5.pth').is_file()


def test_a_batch_larger_than_the_set_is_an_error_before_any_file(sr_dataset, tmp_path):
    opt = tiny_train_opt(sr_dataset, 'too_small')
    opt['datasets']['train']['batch_size_per_gpu'] = 5
    path = write_opt(tmp_path / 'small.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'datasets.train gives no full batch: 4 image(s) x dataset_enlarge_ratio 1 = 4 sample(s)' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['small.yml']
