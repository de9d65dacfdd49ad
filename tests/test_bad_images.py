"""A bad image in a dataset folder is named: before training when its header is bad (empty
file, not an image), when the loader reads it when only its data is cut short; LR and HR in
different formats are refused with the reason. Runs through ``srcomp_plugin.train``."""
import shutil

import pytest

from helpers import run_module, tiny_train_opt, write_opt


def _copy_dataset(sr_dataset, tmp_path):
    gt, lq = tmp_path / 'gt', tmp_path / 'lq'
    shutil.copytree(sr_dataset['train_gt'], gt)
    shutil.copytree(sr_dataset['train_lq_x2'], lq)
    return gt, lq


def _train(sr_dataset, tmp_path, gt, lq, total_iter=4):
    opt = tiny_train_opt(sr_dataset, 'bad_images', total_iter=total_iter)
    opt['datasets']['train'].update(dataroot_gt=str(gt), dataroot_lq=str(lq))
    return run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'opt.yml', opt)], cwd=tmp_path,
                      check=False)


@pytest.mark.parametrize('content', [b'', b'this is text, not a PNG'], ids=['empty', 'not_an_image'])
def test_a_file_without_an_image_header_is_named_before_training(content, sr_dataset, tmp_path):
    gt, lq = _copy_dataset(sr_dataset, tmp_path)
    bad = sorted(gt.iterdir())[1]
    bad.write_bytes(content)
    proc = _train(sr_dataset, tmp_path, gt, lq)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f'{bad} is not a readable image' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'experiments').exists()


def test_a_truncated_image_is_named_when_read(sr_dataset, tmp_path):
    gt, lq = _copy_dataset(sr_dataset, tmp_path)
    bad = sorted(lq.iterdir())[0]
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 3])  # the header (size) survives, the pixels do not
    proc = _train(sr_dataset, tmp_path, gt, lq, total_iter=8)  # every image is read within 8 iterations
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f'cannot decode {bad} (truncated or corrupt image)' in proc.stderr
    assert 'NoneType' not in proc.stderr and 'Traceback' not in proc.stderr


def test_lr_and_hr_in_different_formats_are_refused_with_the_reason(sr_dataset, tmp_path):
    import cv2

    gt, lq = _copy_dataset(sr_dataset, tmp_path)
    first = sorted(lq.iterdir())[0]
    cv2.imwrite(str(first.with_suffix('.bmp')), cv2.imread(str(first)))
    first.unlink()
    proc = _train(sr_dataset, tmp_path, gt, lq)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'pair by name but not by extension' in proc.stderr and first.with_suffix('.bmp').name in proc.stderr
