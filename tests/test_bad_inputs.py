"""Every bad input gets a clear error naming the option or file, and loses no data.

Cases covered elsewhere (named here so the list is complete): missing/corrupt teacher and
scale mismatch (test_distill_sr_model.py), OBProxSG settings (test_obproxsg.py), `measure`
patterns that match nothing (test_sparse_sr_model.py), compress ratio/budget
(test_compress.py), prepare's grayscale/RGBA/16-bit/unreadable inputs (test_prepare.py),
SwinIR sizes that are not a multiple of the window (test_archs.py: SwinIRmini pads).
"""
import errno
import os

import cv2
import numpy as np
import pytest
import torch

import srcomp_plugin  # noqa: F401
from helpers import HR_SIZE, run_module, tiny_train_opt, use_obproxsg, write_opt


def _fails(tmp_path, opt, name='bad'):
    path = write_opt(tmp_path / f'{name}.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', path], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def _sparse(sr_dataset, name, **kw):
    return use_obproxsg(tiny_train_opt(sr_dataset, name, **kw), epoch_size='auto', Np=1)


@pytest.mark.parametrize('section, key, value, expected', [
    ('network_g', 'type', 'EDSRMini', "network_g.type / network_t.type: unknown arch type 'EDSRMini'. Did you mean"),
    (None, 'model_type', 'SparseModel', "model_type: unknown model type 'SparseModel'"),
    ('pixel_opt', 'type', 'L1loss', "unknown loss type 'L1loss'. Did you mean L1Loss"),
])
def test_unknown_types_list_the_registered_ones(sr_dataset, tmp_path, section, key, value, expected):
    opt = tiny_train_opt(sr_dataset, 'unknown_type')
    target = opt if section is None else (opt['train'][section] if section == 'pixel_opt' else opt[section])
    target[key] = value
    out = _fails(tmp_path, opt)
    assert expected in out and 'Registered' in out


@pytest.mark.parametrize('option, value, words', [
    ('lr', -0.005, 'error: OBProxSG: lr must be >= 0, got -0.005.'),
    ('measure', ['trunk.*.weight'], "error: train.sparsity.measure ['trunk.*.weight'] matches no parameter"),
])
def test_option_errors_found_by_a_model_are_one_line(sr_dataset, tmp_path, option, value, words):
    """Options that only the model can check (optimizer, sparsity) end as one line and exit 2."""
    opt = _sparse(sr_dataset, 'model_option')
    target = opt['train']['optim_g'] if option == 'lr' else opt['train']['sparsity']
    target[option] = value
    proc = run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'opt.yml', opt)], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr


def test_pretrained_checkpoint_missing_corrupt_or_with_wrong_keys(sr_dataset, tmp_path):
    opt = _sparse(sr_dataset, 'bad_ckpt')
    opt['path']['pretrain_network_g'] = str(tmp_path / 'nope.pth')
    assert f'path.pretrain_network_g: checkpoint {tmp_path / "nope.pth"} does not exist' in _fails(tmp_path, opt)

    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'\x80\x02 definitely not a checkpoint')
    opt['path']['pretrain_network_g'] = str(corrupt)
    assert 'is not a readable PyTorch checkpoint' in _fails(tmp_path, opt)

    from basicsr.archs.edsr_arch import EDSR
    wrong = tmp_path / 'wrong_key.pth'
    torch.save({'model': EDSR(3, 3, 8, 1, 2).state_dict()}, wrong)
    opt['path']['pretrain_network_g'] = str(wrong)
    out = _fails(tmp_path, opt)
    assert 'has no "params" entry' in out and "['model']" in out and 'path.param_key_g' in out

    bigger = tmp_path / 'bigger.pth'
    torch.save({'params': EDSR(3, 3, 16, 1, 2).state_dict()}, bigger)
    opt['path']['pretrain_network_g'] = str(bigger)
    out = _fails(tmp_path, opt)
    assert 'does not fit the EDSR built from network_g' in out and 'path.strict_load_g: false' in out


def _copy_dataset(sr_dataset, tmp_path):
    import shutil

    for part in ('gt', 'lq'):
        shutil.copytree(sr_dataset[f'train_{part}'], tmp_path / f'train_{part}')
    return tmp_path / 'train_gt', tmp_path / 'train_lq'


def test_dataset_folder_errors(sr_dataset, tmp_path):
    gt, lq = _copy_dataset(sr_dataset, tmp_path)
    opt = tiny_train_opt(sr_dataset, 'bad_data')
    opt['datasets']['train'].update(dataroot_gt=str(gt), dataroot_lq=str(lq))

    empty = tmp_path / 'empty'
    empty.mkdir()
    opt['datasets']['train']['dataroot_lq'] = str(empty)
    assert f'datasets.train (tiny_train).dataroot_lq: folder {empty} holds no images' in _fails(tmp_path, opt)

    opt['datasets']['train']['dataroot_lq'] = str(lq)
    os.rename(lq / 'coffeex2.png', lq / 'coffee_x2.png')
    out = _fails(tmp_path, opt)
    assert 'HR and LR names do not pair' in out and 'coffee.png -> coffeex2.*' in out and 'coffee_x2.png' in out
    os.rename(lq / 'coffee_x2.png', lq / 'coffeex2.png')

    opt['scale'] = 3  # LR made for x2
    opt['network_g']['upscale'] = 3
    out = _fails(tmp_path, opt)
    assert 'astronaut.png is 96x96 but its LR astronautx2.png is 48x48; scale 3 needs exactly 144x144' in out


def test_grayscale_rgba_16bit_images_at_test_time(sr_dataset, tmp_path):
    """BasicSR reads images with IMREAD_COLOR: these load as 8-bit BGR and are tested normally."""
    gt, lq = tmp_path / 'gt', tmp_path / 'lq'
    gt.mkdir(), lq.mkdir()
    hr = cv2.imread(str(sr_dataset['val_gt'] / 'immunohistochemistry.png'))
    lr = cv2.imread(str(sr_dataset['val_lq'] / 'immunohistochemistryx2.png'))
    variants = {'gray': cv2.COLOR_BGR2GRAY, 'rgba': cv2.COLOR_BGR2BGRA, 'deep': None}
    for name, code in variants.items():
        for folder, img, suffix in ((gt, hr, ''), (lq, lr, 'x2')):
            out = img.astype(np.uint16) * 257 if code is None else cv2.cvtColor(img, code)
            cv2.imwrite(str(folder / f'{name}{suffix}.png'), out)
    from basicsr.archs.edsr_arch import EDSR
    ckpt = tmp_path / 'net.pth'
    torch.save({'params': EDSR(3, 3, 8, 1, 2).state_dict()}, ckpt)
    opt = {'name': 'odd_images', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
           'datasets': {'test_1': {'name': 'odd', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt),
                                   'dataroot_lq': str(lq), 'filename_tmpl': '{}x2', 'io_backend': {'type': 'disk'}}},
           'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                         'upscale': 2},
           'path': {'pretrain_network_g': str(ckpt), 'strict_load_g': True},
           'val': {'save_img': True, 'suffix': None,
                   'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}}}
    run_module('srcomp_plugin.test', ['-opt', write_opt(tmp_path / 'test.yml', opt)], cwd=tmp_path)
    saved = sorted((tmp_path / 'results' / 'odd_images' / 'visualization' / 'odd').glob('*.png'))
    assert len(saved) == 3 and all(cv2.imread(str(p)).shape == (HR_SIZE, HR_SIZE, 3) for p in saved)


def test_nan_loss_stops_without_overwriting_good_checkpoints(sr_dataset, tmp_path):
    opt = _sparse(sr_dataset, 'nan_run', total_iter=6)
    opt['logger']['save_checkpoint_freq'] = 2
    path = write_opt(tmp_path / 'nan.yml', opt)
    script = tmp_path / 'nan_at_3.py'
    script.write_text(
        'import sys, torch\nimport srcomp_plugin\nfrom basicsr.losses.basic_loss import L1Loss\n'
        'calls = [0]\nreal = L1Loss.forward\n'
        'def forward(self, pred, target, weight=None, **kw):\n'
        '    calls[0] += 1\n'
        '    loss = real(self, pred, target, weight, **kw)\n'
        '    return loss * float("nan") if calls[0] == 3 else loss\n'
        'L1Loss.forward = forward\nfrom srcomp_plugin.train import main\nmain()\n')
    proc = run_module('nan_at_3', ['-opt', path], cwd=tmp_path, check=False, env={'PYTHONPATH': str(tmp_path)})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'non-finite loss (l_pix=nan) at iteration 3' in out and 'training_states/2.state' in out
    models = tmp_path / 'experiments' / 'nan_run' / 'models'
    assert sorted(p.name for p in models.glob('net_g_*.pth')) == ['net_g_2.pth']
    good = torch.load(models / 'net_g_2.pth', map_location='cpu')
    assert all(torch.isfinite(v).all() for v in good['params'].values())


def test_disk_full_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch):
    from srcomp_plugin.models import checkpoint_safety

    target = tmp_path / 'net_g_10.pth'
    target.write_bytes(b'previous good checkpoint')

    def full_disk(obj, path):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(checkpoint_safety.torch, 'save', full_disk)
    with pytest.raises(OSError, match=r'could not write checkpoint .*net_g_10.pth: .*No space left on device'):
        checkpoint_safety.atomic_torch_save({'params': {}}, str(target))
    assert target.read_bytes() == b'previous good checkpoint'
    assert not (tmp_path / 'net_g_10.pth.tmp').exists()


def test_existing_experiment_folder_is_archived_not_deleted(sr_dataset, tmp_path):
    opt = write_opt(tmp_path / 'twice.yml', tiny_train_opt(sr_dataset, 'twice', total_iter=1))
    run_module('srcomp_plugin.train', ['-opt', opt], cwd=tmp_path)
    marker = tmp_path / 'experiments' / 'twice' / 'my_notes.txt'
    marker.write_text('keep')
    run_module('srcomp_plugin.train', ['-opt', opt], cwd=tmp_path)
    archived = list((tmp_path / 'experiments').glob('twice_archived_*'))
    assert len(archived) == 1 and (archived[0] / 'my_notes.txt').read_text() == 'keep'
    assert (archived[0] / 'models' / 'net_g_latest.pth').is_file()
