"""``import srcomp_plugin`` leaves BasicSR's functions its own; ``basicsr_patches.install()``
replaces exactly the names that ``PATCHES`` lists (checked in a fresh interpreter)."""
import json
import subprocess
import sys

from helpers import run_module, write_opt

PROBE = r'''
import json
import srcomp_plugin
import basicsr.models.base_model as base_model
import basicsr.test as bt
import basicsr.train as tr
import basicsr.utils.options as opts
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.registry import ARCH_REGISTRY


def owners():
    return {
        'ordered_yaml': opts.ordered_yaml.__module__,
        'init_dist': opts.init_dist.__module__,
        'model_to_device': base_model.BaseModel.model_to_device.__module__,
        'validation': base_model.BaseModel.validation.__module__,  # the test pipeline's results JSON
        'load_resume_state': tr.load_resume_state.__module__,
        'train.parse_options': tr.parse_options.__module__,
        'test.parse_options': bt.parse_options.__module__,  # option checks, then the progress bar
        'EnlargedSampler': tr.EnlargedSampler.__module__,
        'create_train_val_dataloader': tr.create_train_val_dataloader.__module__,
        'train.build_model': tr.build_model.__module__,
        'test.build_model': bt.build_model.__module__,
        'train.build_dataset': tr.build_dataset.__module__,
        'PairedImageDataset.__getitem__': PairedImageDataset.__getitem__.__module__,
        'ARCH_REGISTRY.get': getattr(ARCH_REGISTRY.get, '__module__', None) or 'basicsr.utils.registry',
    }


before = owners()
from srcomp_plugin import basicsr_patches
basicsr_patches.install()
basicsr_patches.install()  # idempotent
print(json.dumps({'before': before, 'after': owners()}))
'''


def test_import_changes_nothing_and_install_changes_every_listed_name():
    proc = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    owners = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(m.startswith('basicsr') for m in owners['before'].values()), owners['before']
    assert all(m.startswith('srcomp_plugin') for m in owners['after'].values()), owners['after']


def test_the_test_entry_point_shows_per_image_progress(sr_dataset, random_teacher, tmp_path):
    """``val.pbar`` defaults to true through ``srcomp_plugin.test``: a bar counts the images."""
    network = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 12, 'num_block': 1, 'upscale': 2}
    opt = {'name': 'progress', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0,
           'datasets': {'test_1': {'name': 'tiny_val', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                                   'dataroot_gt': str(sr_dataset['val_gt']), 'dataroot_lq': str(sr_dataset['val_lq']),
                                   'filename_tmpl': '{}x2'}},
           'network_g': network, 'path': {'pretrain_network_g': str(random_teacher), 'strict_load_g': True},
           'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}}}
    proc = run_module('srcomp_plugin.test', ['-opt', write_opt(tmp_path / 'test.yml', opt)], cwd=tmp_path)
    assert '2/2' in proc.stderr and 'image' in proc.stderr, proc.stderr[-2000:]
    opt['val']['pbar'] = False  # the option file still decides
    proc = run_module('srcomp_plugin.test', ['-opt', write_opt(tmp_path / 'quiet.yml', opt)], cwd=tmp_path)
    assert '2/2' not in proc.stderr
