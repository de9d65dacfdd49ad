"""BasicSR's own train/test pipelines run through the plugin on CPU: single process,
auto-resume, and a 2-process torchrun (gloo) job."""
import torch

from helpers import run_module, run_torchrun, tiny_train_opt, write_opt


def _test_opt(sr_dataset, name, model_path):
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test_1': {'name': 'tiny_val', 'type': 'PairedImageDataset',
                                'dataroot_gt': sr_dataset['val_gt'], 'dataroot_lq': sr_dataset['val_lq'],
                                'filename_tmpl': '{}x2', 'io_backend': {'type': 'disk'}}},
        'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2},
        'path': {'pretrain_network_g': model_path, 'param_key_g': 'params_ema', 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
    }


def test_train_then_test_on_cpu(sr_dataset, tmp_path):
    opt = write_opt(tmp_path / 'train.yml', tiny_train_opt(sr_dataset, 'tiny_train', total_iter=3))
    proc = run_module('srcomp_plugin.train', ['-opt', opt], cwd=tmp_path)
    exp = tmp_path / 'experiments' / 'tiny_train'
    ckpt = torch.load(exp / 'models' / 'net_g_3.pth', map_location='cpu')
    assert set(ckpt) == {'params', 'params_ema'}
    assert (exp / 'training_states' / '3.state').is_file()
    assert 'iter:3,' in (proc.stdout + proc.stderr).replace(' ', '')  # BasicSR's MessageLogger line

    test_opt = write_opt(tmp_path / 'test.yml', _test_opt(sr_dataset, 'tiny_test', exp / 'models' / 'net_g_3.pth'))
    run_module('srcomp_plugin.test', ['-opt', test_opt], cwd=tmp_path)
    results = tmp_path / 'results' / 'tiny_test'
    log = next(results.glob('test_tiny_test_*.log')).read_text()
    assert '# psnr:' in log
    assert len(list((results / 'visualization' / 'tiny_val').glob('*.png'))) == 2


def test_auto_resume_on_cpu(sr_dataset, tmp_path):
    opt = tiny_train_opt(sr_dataset, 'tiny_resume', total_iter=4)
    opt['logger']['save_checkpoint_freq'] = 2
    opt['val']['val_freq'] = 100
    first = write_opt(tmp_path / 'first.yml', dict(opt, train=dict(opt['train'], total_iter=2)))
    run_module('srcomp_plugin.train', ['-opt', first], cwd=tmp_path)
    second = write_opt(tmp_path / 'second.yml', opt)
    proc = run_module('srcomp_plugin.train', ['-opt', second, '--auto_resume'], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'Resuming training from epoch' in out and 'iter: 2' in out
    assert (tmp_path / 'experiments' / 'tiny_resume' / 'models' / 'net_g_4.pth').is_file()


def test_srcomp_console_script_train(sr_dataset, tmp_path):
    opt = write_opt(tmp_path / 'train.yml', tiny_train_opt(sr_dataset, 'tiny_cli', total_iter=1))
    run_module('srcomp_plugin.cli', ['train', '-opt', opt], cwd=tmp_path)
    assert (tmp_path / 'experiments' / 'tiny_cli' / 'models' / 'net_g_latest.pth').is_file()


def test_torchrun_two_processes_on_cpu(sr_dataset, tmp_path):
    opt = tiny_train_opt(sr_dataset, 'tiny_ddp', total_iter=2)
    opt['datasets']['train']['batch_size_per_gpu'] = 1
    path = write_opt(tmp_path / 'ddp.yml', opt)
    proc = run_torchrun(2, 'srcomp_plugin.train', ['-opt', path], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert 'World size (gpu number): 2' in out
    ckpt = torch.load(tmp_path / 'experiments' / 'tiny_ddp' / 'models' / 'net_g_2.pth', map_location='cpu')
    assert ckpt['params'] and not any(k.startswith('module.') for k in ckpt['params'])
