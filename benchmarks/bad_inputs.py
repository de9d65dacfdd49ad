"""Try the plugin with bad inputs, as a new user would, and report how each one ends.

    python benchmarks/bad_inputs.py                  # every case; table on stdout
    python benchmarks/bad_inputs.py --only name_abs yaml_python_tag
    python benchmarks/bad_inputs.py --json benchmarks/results/bad_inputs.json

Each case builds its input in a fresh folder of one scratch workspace (tiny photographs from
scikit-image, tiny checkpoints), runs one real entry point in a subprocess
(``python -m srcomp_plugin.train`` / ``.test``, or ``srcomp COMMAND``) and checks:

* **ends as expected**: an error exits non-zero; a warning or an accepted input exits 0;
* **no traceback**: a user's mistake prints a message, never a Python traceback;
* **names the culprit**: the output holds the option or file at fault (a fixed substring);
* **nothing lost**: every file present before (dataset, checkpoints, earlier runs) still
  exists with its content afterwards, at its path or archived (content checksums);
* case-specific checks (e.g. a YAML tag or a pickled ``.state`` did not run its command).

The exit status is 1 when any case fails a check. The tests cover the same classes one by
one; this script is the whole inventory in one run (about 2 minutes on 2 cores).
"""
import argparse
import copy
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PHOTOS = {'train': ('astronaut', 'coffee', 'chelsea', 'rocket'), 'val': ('immunohistochemistry', )}
HR = 48
CASES = {}


@dataclass
class Case:
    """One bad input: the command to run and what a good ending looks like."""
    cmd: list
    names: str  # a substring the output must hold (the option or file at fault)
    expect: str = 'error'  # 'error' (non-zero exit) or 'ok' (exit 0, e.g. a warning)
    cwd: Path = None
    check: object = None  # callable(output) -> problem string or None
    hold_lock: Path = None  # a file flock-ed by this script while the command runs


@dataclass
class Outcome:
    name: str
    what: str
    exit: int
    problems: list = field(default_factory=list)
    message: str = ''


def case(name, what):
    """Register a case builder ``fn(ws, folder) -> Case`` under ``name``."""
    def register(fn):
        CASES[name] = (what, fn)
        return fn
    return register


# ----------------------------------------------------------------------------- workspace


class Workspace:
    """Tiny paired data, checkpoints and option dicts shared by all cases (built once)."""

    def __init__(self, root):
        import cv2
        import numpy as np
        import torch
        from skimage import data as photos

        import srcomp_plugin  # noqa: F401  (the torchvision alias before BasicSR)
        from basicsr.archs.edsr_arch import EDSR
        from srcomp_plugin.archs.swinir_mini_arch import SwinIRmini

        self.root = root
        for split, names in PHOTOS.items():
            for sub in ('HR', 'LR'):
                (root / 'data' / split / sub).mkdir(parents=True)
            for name in names:
                img = getattr(photos, name)()
                img = np.stack([img] * 3, 2) if img.ndim == 2 else img[..., :3]
                hr = np.ascontiguousarray(img[:HR, :HR, ::-1])
                cv2.imwrite(str(root / 'data' / split / 'HR' / f'{name}.png'), hr)
                lr = cv2.resize(hr, (HR // 2, HR // 2), interpolation=cv2.INTER_CUBIC)
                cv2.imwrite(str(root / 'data' / split / 'LR' / f'{name}x2.png'), lr)
        torch.manual_seed(0)
        self.edsr = root / 'ckpt' / 'edsr_f8b1.pth'
        self.edsr.parent.mkdir()
        torch.save({'params': EDSR(3, 3, num_feat=8, num_block=1, upscale=2).state_dict()}, self.edsr)
        self.edsr_x4 = root / 'ckpt' / 'edsr_f8b1_x4.pth'
        torch.save({'params': EDSR(3, 3, num_feat=8, num_block=1, upscale=4).state_dict()}, self.edsr_x4)
        self.swinir = root / 'ckpt' / 'swinirmini.pth'
        torch.save({'params': SwinIRmini(upscale=2, embed_dim=12, depths=(1, ), num_heads=(2, )).state_dict()},
                   self.swinir)
        self.text = root / 'ckpt' / 'notes.txt'
        self.text.write_text('not a checkpoint\n')
        self.truncated = root / 'ckpt' / 'truncated.pth'
        self.truncated.write_bytes(self.edsr.read_bytes()[:300])

    def data(self, split, sub):
        return self.root / 'data' / split / sub

    def copy_data(self, folder, split='train'):
        """A private copy of a split (for cases that spoil the data)."""
        dst = folder / 'data' / split
        shutil.copytree(self.root / 'data' / split, dst)
        return dst

    def train_opt(self, name='run', total_iter=2, train_root=None):
        train_root = train_root or self.root / 'data' / 'train'
        val_root = self.root / 'data' / 'val'
        return {
            'name': name, 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
            'datasets': {
                'train': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(train_root / 'HR'),
                          'dataroot_lq': str(train_root / 'LR'), 'filename_tmpl': '{}x2',
                          'io_backend': {'type': 'disk'}, 'gt_size': 32, 'use_hflip': True, 'use_rot': True,
                          'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1,
                          'prefetch_mode': None},
                'val': {'name': 'tiny_val', 'type': 'PairedImageDataset', 'dataroot_gt': str(val_root / 'HR'),
                        'dataroot_lq': str(val_root / 'LR'), 'filename_tmpl': '{}x2', 'io_backend': {'type': 'disk'}},
            },
            'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                          'upscale': 2},
            'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
            'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': total_iter, 'warmup_iter': -1,
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                      'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
            'val': {'val_freq': 10 ** 6, 'save_img': False,
                    'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
            'logger': {'print_freq': 1, 'save_checkpoint_freq': total_iter, 'use_tb_logger': False},
        }

    def distill_opt(self, name='run'):
        opt = self.train_opt(name)
        opt['model_type'] = 'DistillSRModel'
        opt['network_t'] = dict(opt['network_g'])
        opt['path']['pretrain_network_t'] = str(self.edsr)
        opt['train']['distill_opt'] = {'type': 'MultiLapLoss', 'loss_weight': 1.0}
        return opt

    def prune_opt(self, name='run'):
        opt = self.train_opt(name)
        opt['model_type'] = 'SparseSRModel'
        opt['train']['optim_g'] = {'type': 'OBProxSG', 'lr': 1e-2, 'lambda_': 1e-2, 'epoch_size': 1, 'Np': 1,
                                   'No': 'inf', 'eps': 1e-4}
        opt['train']['sparsity'] = {'regularize': 'all', 'measure': ['body.*.weight']}
        return opt


def write_yaml(path, opt):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def train(opt_path, *extra):
    return [sys.executable, '-m', 'srcomp_plugin.train', '-opt', str(opt_path), *extra]


def srcomp(*args):
    return [sys.executable, '-m', 'srcomp_plugin.cli', *map(str, args)]


def no_file(path):
    """A check that ``path`` was not created (a command smuggled into a file did not run)."""
    return lambda out: f'{path.name} was created: the smuggled command ran' if path.exists() else None


# ----------------------------------------------------------------------------- option files


@case('yaml_python_tag', 'option value with !!python/object/apply:os.system')
def _(ws, d):
    (d / 'opt.yml').write_text(f'name: !!python/object/apply:os.system ["touch {d / "PWNED"}"]\n')
    return Case(train(d / 'opt.yml'), 'would build a Python object', check=no_file(d / 'PWNED'))


@case('yaml_syntax', 'option file that is not valid YAML')
def _(ws, d):
    (d / 'opt.yml').write_text('name: run\ndatasets: [unclosed\n')
    return Case(train(d / 'opt.yml'), 'opt.yml')


@case('opt_missing', 'option file path that does not exist')
def _(ws, d):
    return Case(train(d / 'nope.yml'), 'nope.yml')


@case('opt_empty', 'empty option file')
def _(ws, d):
    (d / 'opt.yml').write_text('')
    return Case(train(d / 'opt.yml'), 'opt.yml')


@case('no_network_g', 'option file without network_g')
def _(ws, d):
    opt = ws.train_opt()
    del opt['network_g']
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'network_g')


@case('no_datasets', 'option file without datasets')
def _(ws, d):
    opt = ws.train_opt()
    del opt['datasets']
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'datasets')


@case('scale_quoted', 'scale: "2" (a string)')
def _(ws, d):
    opt = ws.train_opt()
    opt['scale'] = '2'
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'scale')


@case('scale_unsupported', 'scale: 7 with an EDSR (no x7 upsampler)')
def _(ws, d):
    opt = ws.train_opt()
    opt['scale'], opt['network_g']['upscale'] = 7, 7
    return Case(train(write_yaml(d / 'opt.yml', opt)), '7')


@case('total_iter_zero', 'train.total_iter: 0')
def _(ws, d):
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(total_iter=0))), 'total_iter')


@case('total_iter_negative', 'train.total_iter: -5')
def _(ws, d):
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(total_iter=-5))), 'total_iter')


@case('name_absolute', 'name: an absolute path')
def _(ws, d):
    victim = d / 'victim'
    victim.mkdir()
    (victim / 'keep.txt').write_text('precious')
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(name=str(victim)))), 'single folder name',
                check=lambda out: None if (victim / 'keep.txt').is_file() else 'the named folder was moved')


@case('name_dotdot', 'name: ../escape')
def _(ws, d):
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(name='../escape'))), 'single folder name')


@case('batch_too_large', 'batch larger than the training set')
def _(ws, d):
    opt = ws.train_opt()
    opt['datasets']['train']['batch_size_per_gpu'] = 9
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'no full batch')


@case('unknown_top_key_type', 'model_type typo (SRModle)')
def _(ws, d):
    opt = ws.train_opt()
    opt['model_type'] = 'SRModle'
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'SRModel')


@case('arch_typo', 'network_g.type typo (EDSRMini)')
def _(ws, d):
    opt = ws.train_opt()
    opt['network_g']['type'] = 'EDSRMini'
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'EDSRmini')


@case('loss_typo', 'pixel_opt.type typo (L1loss)')
def _(ws, d):
    opt = ws.train_opt()
    opt['train']['pixel_opt']['type'] = 'L1loss'
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'L1Loss')


@case('dataset_type_typo', 'datasets.train.type typo')
def _(ws, d):
    opt = ws.train_opt()
    opt['datasets']['train']['type'] = 'PairedImageDatset'
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'PairedImageDataset')


@case('metric_typo', 'val.metrics psnr type typo')
def _(ws, d):
    opt = ws.train_opt()
    opt['val']['metrics']['psnr']['type'] = 'calculate_psrn'
    opt['val']['val_freq'] = 1
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'calculate_psnr')


@case('filename_tmpl_unquoted', 'filename_tmpl: {}x2 written without quotes')
def _(ws, d):
    text = yaml.safe_dump(ws.train_opt(), sort_keys=False).replace("filename_tmpl: '{}x2'", 'filename_tmpl: {}x2')
    (d / 'opt.yml').write_text(text)
    return Case(train(d / 'opt.yml'), 'filename_tmpl')


# ----------------------------------------------------------------------------- datasets


@case('dataroot_missing', 'datasets.train.dataroot_gt does not exist')
def _(ws, d):
    opt = ws.train_opt()
    opt['datasets']['train']['dataroot_gt'] = str(d / 'no_such_folder')
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'no_such_folder')


@case('dataroot_empty', 'datasets.train.dataroot_lq is an empty folder')
def _(ws, d):
    (d / 'empty').mkdir()
    opt = ws.train_opt()
    opt['datasets']['train']['dataroot_lq'] = str(d / 'empty')
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'empty')


@case('names_do_not_pair', "filename_tmpl '{}' on LR files named '<name>x2'")
def _(ws, d):
    opt = ws.train_opt()
    opt['datasets']['train']['filename_tmpl'] = '{}'
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'do not pair')


@case('lr_size_wrong', 'LR images are HR/2 but scale is 3')
def _(ws, d):
    opt = ws.train_opt()
    opt['scale'], opt['network_g']['upscale'] = 3, 3
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'scale 3')


@case('not_an_image', 'a text file named .png in the HR folder')
def _(ws, d):
    root = ws.copy_data(d)
    (root / 'HR' / 'coffee.png').write_text('hello')
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(train_root=root))), 'coffee.png')


@case('truncated_image', 'a truncated PNG in the LR folder')
def _(ws, d):
    root = ws.copy_data(d)
    path = root / 'LR' / 'chelseax2.png'
    path.write_bytes(path.read_bytes()[:200])
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(train_root=root))), 'chelseax2.png')


@case('empty_image', 'a 0-byte image in the HR folder')
def _(ws, d):
    root = ws.copy_data(d)
    (root / 'HR' / 'rocket.png').write_bytes(b'')
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(train_root=root))), 'rocket.png')


@case('lr_other_extension', 'LR images saved as .jpg, HR as .png')
def _(ws, d):
    import cv2

    root = ws.copy_data(d)
    for png in list((root / 'LR').glob('*.png')):
        cv2.imwrite(str(png.with_suffix('.jpg')), cv2.imread(str(png)))
        png.unlink()
    return Case(train(write_yaml(d / 'opt.yml', ws.train_opt(train_root=root))), '.jpg')


# ----------------------------------------------------------------------------- checkpoints


def _with_pretrain(ws, d, path, model='SRModel', **path_opts):
    opt = ws.train_opt() if model == 'SRModel' else ws.distill_opt()
    opt['path']['pretrain_network_g'] = str(path)
    opt['path'].update(path_opts)
    return train(write_yaml(d / 'opt.yml', opt))


@case('pretrain_missing', 'path.pretrain_network_g does not exist')
def _(ws, d):
    return Case(_with_pretrain(ws, d, d / 'gone.pth'), 'gone.pth')


@case('pretrain_text', 'path.pretrain_network_g is a text file')
def _(ws, d):
    return Case(_with_pretrain(ws, d, ws.text), 'notes.txt')


@case('pretrain_truncated', 'path.pretrain_network_g is a truncated checkpoint')
def _(ws, d):
    return Case(_with_pretrain(ws, d, ws.truncated), 'truncated.pth')


@case('pretrain_other_arch', 'SwinIR checkpoint into an EDSR network_g (model_type SRModel)')
def _(ws, d):
    return Case(_with_pretrain(ws, d, ws.swinir), 'does not fit')


@case('pretrain_ema_only', 'a checkpoint that holds only params_ema, loaded with the default param_key_g')
def _(ws, d):
    import torch

    path = d / 'ema_only.pth'
    torch.save({'params_ema': torch.load(ws.edsr, weights_only=True)['params']}, path)
    return Case(_with_pretrain(ws, d, path), 'params_ema')


@case('pretrain_pickled_code', 'a .pth whose pickle runs os.system')
def _(ws, d):
    path = d / 'evil.pth'
    path.write_bytes(pickle.dumps(_Smuggle(d / 'PWNED')))
    return Case(_with_pretrain(ws, d, path), 'evil.pth', check=no_file(d / 'PWNED'))


class _Smuggle:
    """A pickle that would run ``touch`` when unpickled without ``weights_only``."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return os.system, (f'touch {self.target}', )


@case('teacher_missing', 'DistillSRModel with path.pretrain_network_t missing')
def _(ws, d):
    opt = ws.distill_opt()
    opt['path']['pretrain_network_t'] = str(d / 'teacher_gone.pth')
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'teacher_gone.pth')


@case('teacher_scale', 'an x4 teacher (network_t and its checkpoint) for an x2 student')
def _(ws, d):
    opt = ws.distill_opt()
    opt['network_t']['upscale'] = 4
    opt['path']['pretrain_network_t'] = str(ws.edsr_x4)
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'network_t.upscale (4)')


@case('teacher_other_shape', 'network_t wider than its checkpoint')
def _(ws, d):
    opt = ws.distill_opt()
    opt['network_t']['num_feat'] = 16
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'path.pretrain_network_t')


@case('teacher_precision', 'train.teacher_precision: fp8')
def _(ws, d):
    opt = ws.distill_opt()
    opt['train']['teacher_precision'] = 'fp8'
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'teacher_precision')


@case('obproxsg_negative_lr', 'OBProxSG lr: -0.005')
def _(ws, d):
    opt = ws.prune_opt()
    opt['train']['optim_g']['lr'] = -0.005
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'lr')


@case('measure_matches_nothing', 'train.sparsity.measure globs that match no parameter')
def _(ws, d):
    opt = ws.prune_opt()
    opt['train']['sparsity']['measure'] = ['trunk.*.weight']
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'trunk.*.weight')


# ----------------------------------------------------------------------------- runs and resume


def _finished_run(ws, d, name='run'):
    """Train ``name`` for 2 iterations in ``d`` (1.state and net_g_2.pth) and return its option file."""
    opt = ws.train_opt(name=name)
    opt['logger']['save_checkpoint_freq'] = 1
    path = write_yaml(d / 'opt.yml', opt)
    subprocess.run(train(path), cwd=d, check=True, capture_output=True, env=_env())
    return path


@case('name_taken', 'a second run under the name of a finished one (no --auto_resume)')
def _(ws, d):
    path = _finished_run(ws, d)
    return Case(train(path), 'archived', expect='ok',
                check=lambda out: None if list((d / 'experiments').glob('run_archived_*')) else 'no archive made')


@case('name_locked', 'a run while another run of the same name is going')
def _(ws, d):
    path = write_yaml(d / 'opt.yml', ws.train_opt())
    (d / 'experiments').mkdir()
    return Case(train(path), 'in use', hold_lock=d / 'experiments' / '.run.lock')


@case('state_truncated', '--auto_resume with a truncated newest .state')
def _(ws, d):
    path = _finished_run(ws, d)
    states = d / 'experiments' / 'run' / 'training_states'
    (states / '9.state').write_bytes((states / '2.state').read_bytes()[:100])
    opt = yaml.safe_load(path.read_text())
    opt['train']['total_iter'] = 3
    return Case(train(write_yaml(path, opt), '--auto_resume'), '9.state', expect='ok')


@case('state_pickled_code', '--auto_resume with a .state whose pickle runs os.system')
def _(ws, d):
    path = _finished_run(ws, d)
    states = d / 'experiments' / 'run' / 'training_states'
    (states / '9.state').write_bytes(pickle.dumps(_Smuggle(d / 'PWNED')))
    opt = yaml.safe_load(path.read_text())
    opt['train']['total_iter'] = 3
    return Case(train(write_yaml(path, opt), '--auto_resume'), '9.state', expect='ok', check=no_file(d / 'PWNED'))


@case('resume_state_missing', 'path.resume_state names a file that does not exist')
def _(ws, d):
    opt = ws.train_opt()
    opt['path']['resume_state'] = str(d / 'gone.state')
    return Case(train(write_yaml(d / 'opt.yml', opt)), 'gone.state')


@case('test_no_pretrain', 'srcomp_plugin.test with pretrain_network_g missing')
def _(ws, d):
    opt = ws.train_opt()
    opt['path']['pretrain_network_g'] = str(d / 'gone.pth')
    del opt['train'], opt['datasets']['train']
    opt['datasets']['test_1'] = opt['datasets'].pop('val')
    path = write_yaml(d / 'opt.yml', opt)
    return Case([sys.executable, '-m', 'srcomp_plugin.test', '-opt', str(path)], 'gone.pth')


# ----------------------------------------------------------------------------- srcomp commands


def _compress(ws, d, *args, checkpoint=None):
    opt = ws.prune_opt()
    opt['path']['pretrain_network_g'] = str(ws.edsr)  # the dense teacher
    opt = write_yaml(d / 'prune.yml', opt)
    return srcomp('compress', '-opt', opt, '--checkpoint', checkpoint or ws.edsr, '--out', d / 'distill.yml', *args)


@case('compress_ratio_zero', 'srcomp compress --ratio 0')
def _(ws, d):
    return Case(_compress(ws, d, '--ratio', '0'), '--ratio')


@case('compress_ratio_above_one', 'srcomp compress --ratio 1.5')
def _(ws, d):
    return Case(_compress(ws, d, '--ratio', '1.5'), '--ratio')


@case('compress_params_huge', 'srcomp compress --params 99999999 (more than the teacher)')
def _(ws, d):
    return Case(_compress(ws, d, '--params', '99999999'), '99,999,999')


@case('compress_dense', 'srcomp compress on a checkpoint that was never pruned, no --ratio')
def _(ws, d):
    return Case(_compress(ws, d), 'not sparse', expect='ok')


@case('compress_not_checkpoint', 'srcomp compress --checkpoint on a text file')
def _(ws, d):
    return Case(_compress(ws, d, '--ratio', '0.5', checkpoint=ws.text), 'notes.txt')


@case('compress_out_exists', 'srcomp compress --out onto an existing file')
def _(ws, d):
    (d / 'distill.yml').write_text('# my own option file\n')
    return Case(_compress(ws, d, '--ratio', '0.5'), 'distill.yml')


@case('sparsity_not_checkpoint', 'srcomp sparsity on a text file')
def _(ws, d):
    return Case(srcomp('sparsity', ws.text), 'notes.txt',
                check=lambda out: 'suggests weights_only=False' if 'weights_only=False' in out else None)


@case('profile_scale', 'srcomp profile --arch EDSRmini --scale 7')
def _(ws, d):
    return Case(srcomp('profile', '--arch', 'EDSRmini', '--scale', '7', '--no-latency'), 'scale')


@case('profile_arch_typo', 'srcomp profile --arch EDSRMini')
def _(ws, d):
    return Case(srcomp('profile', '--arch', 'EDSRMini', '--no-latency'), 'EDSRmini')


@case('export_readonly', 'srcomp export --output into a read-only folder')
def _(ws, d):
    out = d / 'ro'
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes through file modes; sysfs refuses new files even to root
        out = Path('/sys')
    return Case(srcomp('export', '-opt', write_yaml(d / 'opt.yml', ws.train_opt()), '--checkpoint', ws.edsr,
                       '--format', 'torchscript', '--output', out / 'model.pt'), str(out))


@case('export_output_under_file', 'srcomp export --output below a regular file')
def _(ws, d):
    (d / 'file').write_text('mine')
    return Case(srcomp('export', '-opt', write_yaml(d / 'opt.yml', ws.train_opt()), '--checkpoint', ws.edsr,
                       '--format', 'torchscript', '--output', d / 'file' / 'model.pt'), 'file')


@case('export_no_checkpoint', 'srcomp export --checkpoint that does not exist')
def _(ws, d):
    return Case(srcomp('export', '-opt', write_yaml(d / 'opt.yml', ws.train_opt()), '--checkpoint', d / 'gone.pth',
                       '--format', 'torchscript', '--output', d / 'model.pt'), 'gone.pth')


@case('demo_workdir_file', 'srcomp demo --workdir on a regular file')
def _(ws, d):
    (d / 'file').write_text('mine')
    return Case(srcomp('demo', '--quick', '--workdir', d / 'file'), 'file')


@case('pipeline_unknown_section', "srcomp pipeline with a misspelled section 'distil:'")
def _(ws, d):
    path = d / 'pipe.yml'
    path.write_text('name: p\nteacher: {checkpoint: x.pth}\ndistil: {total_iter: 800000}\n')
    return Case(srcomp('pipeline', '-opt', path), 'distill')


@case('pipeline_python_tag', 'srcomp pipeline file with a !!python tag')
def _(ws, d):
    (d / 'pipe.yml').write_text(f'name: !!python/object/apply:os.system ["touch {d / "PWNED"}"]\n')
    return Case(srcomp('pipeline', '-opt', d / 'pipe.yml'), 'would build a Python object', check=no_file(d / 'PWNED'))


@case('prepare_missing', 'srcomp prepare --hr of a folder that does not exist')
def _(ws, d):
    return Case(srcomp('prepare', '--hr', d / 'no_hr', '--out', d / 'out'), 'no_hr')


@case('prepare_no_images', 'srcomp prepare --hr of a folder without images')
def _(ws, d):
    (d / 'hr').mkdir()
    (d / 'hr' / 'readme.txt').write_text('x')
    return Case(srcomp('prepare', '--hr', d / 'hr', '--out', d / 'out'), 'hr')


@case('prepare_out_exists', 'srcomp prepare --out onto a folder that holds data')
def _(ws, d):
    (d / 'out').mkdir()
    (d / 'out' / 'mine.png').write_bytes(b'not yours')
    return Case(srcomp('prepare', '--hr', ws.data('train', 'HR'), '--out', d / 'out'), 'out')


@case('report_empty', 'srcomp report on a folder without test results')
def _(ws, d):
    (d / 'results').mkdir()
    return Case(srcomp('report', d / 'results'), 'results')


@case('unknown_command', 'srcomp with an unknown sub-command')
def _(ws, d):
    return Case(srcomp('compres'), "unknown command 'compres'")


# ----------------------------------------------------------------------------- running


def _env():
    return dict(os.environ, OMP_NUM_THREADS='1')


def _checksums(root):
    """Content digests of the files under ``root``, except three that BasicSR rewrites by design:
    lock files (they hold the owner's pid), ``net_g_latest.pth`` (a resumed run ends with a
    new "latest"; the numbered checkpoints are checked) and the copy of the option file in
    ``experiments/<name>/`` (stamped with the command line on every start; the source file
    is checked)."""
    out = {}
    for path in root.rglob('*'):
        if not path.is_file() or path.is_symlink() or path.name.endswith(('.lock', '_latest.pth')):
            continue
        if path.parent.parent.name == 'experiments' and path.suffix == '.yml':
            continue
        out[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_case(ws, name):
    what, build = CASES[name]
    folder = ws.root / 'cases' / name
    folder.mkdir(parents=True)
    spec = build(ws, folder)
    before = _checksums(ws.root)
    lock = None
    if spec.hold_lock:
        lock = open(spec.hold_lock, 'w')
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        proc = subprocess.run(spec.cmd, cwd=spec.cwd or folder, capture_output=True, text=True, env=_env(),
                              timeout=600)
    finally:
        if lock:
            lock.close()
    out = proc.stdout + proc.stderr
    after = set(_checksums(ws.root).values())
    problems = []
    if spec.expect == 'error' and proc.returncode == 0:
        problems.append('exit 0: accepted a bad input')
    if spec.expect == 'ok' and proc.returncode != 0:
        problems.append(f'exit {proc.returncode}')
    if 'Traceback (most recent call last)' in out:
        problems.append('traceback')
    if spec.names not in out:
        problems.append(f'does not name {spec.names!r}')
    lost = [str(p.relative_to(ws.root)) for p, digest in before.items() if digest not in after]
    if lost:
        problems.append(f'lost {lost}')
    extra = spec.check(out) if spec.check else None
    if extra:
        problems.append(extra)
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    said = [line for line in lines if 'error' in line.lower() or 'warning' in line.lower()]
    message = next((line for line in said if spec.names in line), None) or next(
        (line for line in lines if spec.names in line), lines[-1] if lines else '')
    return Outcome(name, what, proc.returncode, problems, message.strip()[:200])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', choices=sorted(CASES), help='run these cases only')
    parser.add_argument('--json', help='also write the outcomes to this JSON file')
    parser.add_argument('--keep', help='build the workspace here and keep it (default: a temporary folder)')
    args = parser.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix='srcomp_bad_inputs_')).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        ws = Workspace(root)
        outcomes = []
        for name in args.only or CASES:
            outcome = run_case(ws, name)
            outcomes.append(outcome)
            status = 'ok ' if not outcome.problems else 'BAD'
            print(f'{status} {name:26s} exit {outcome.exit:3d}  {outcome.message}', flush=True)
            for problem in outcome.problems:
                print(f'      -> {problem}', flush=True)
    finally:
        if not args.keep:
            for path in root.rglob('*'):  # the read-only case folder must become writable to delete
                if path.is_dir():
                    path.chmod(0o755)
            shutil.rmtree(root, ignore_errors=True)
    bad = [o for o in outcomes if o.problems]
    print(f'\n{len(outcomes)} bad inputs tried: {len(outcomes) - len(bad)} end as they should, {len(bad)} do not; '
          f'{sum("traceback" in o.problems for o in outcomes)} raw tracebacks, '
          f'{sum(any(p.startswith("exit 0") for p in o.problems) for o in outcomes)} silently accepted, '
          f'{sum(any(p.startswith("lost") for p in o.problems) for o in outcomes)} with files lost')
    if args.json:
        Path(args.json).write_text(json.dumps([copy.deepcopy(o.__dict__) for o in outcomes], indent=1) + '\n')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
