"""DDP parity: 2 processes x batch b (torchrun, gloo, CPU) == 1 process x batch 2b.

Sharding subtlety (documented in docs/training.md, "Multi-GPU"): BasicSR's EnlargedSampler
gives rank r the positions r, r+W, r+2W, ... of one shuffled order, so rank r's i-th batch
of size b plus the other ranks' i-th batches hold exactly the samples of the single
process's i-th batch of size W*b. Random crops/flips are drawn per rank (seed + rank), so
parity needs deterministic patches: the test uses full-image patches without flips.
DDP averages gradients over ranks, which equals the mean over the 2b batch.
"""
import pytest
import torch

from helpers import HR_SIZE, run_module, run_torchrun, tiny_train_opt, use_obproxsg, use_teacher, write_opt

MODELS = ('SRModel', 'SparseSRModel', 'DistillSRModel')


def _opt(sr_dataset, name, model_type, batch, teacher):
    opt = tiny_train_opt(sr_dataset, name, model_type=model_type, total_iter=4)
    train = opt['datasets']['train']
    train.update(gt_size=HR_SIZE, use_hflip=False, use_rot=False, batch_size_per_gpu=batch)
    opt['val']['val_freq'] = 1000
    opt['logger']['save_checkpoint_freq'] = 2
    if model_type == 'SparseSRModel':
        use_obproxsg(opt)
    if model_type == 'DistillSRModel':
        use_teacher(opt, teacher)
    return opt


@pytest.mark.slow
@pytest.mark.parametrize('model_type', MODELS)
def test_two_processes_match_one_process_with_double_batch(sr_dataset, tmp_path, random_teacher, model_type):
    teacher = random_teacher
    single = write_opt(tmp_path / 'single.yml', _opt(sr_dataset, 'single', model_type, batch=2, teacher=teacher))
    run_module('srcomp_plugin.train', ['-opt', single], cwd=tmp_path)
    ddp = write_opt(tmp_path / 'ddp.yml', _opt(sr_dataset, 'ddp', model_type, batch=1, teacher=teacher))
    run_torchrun(2, 'srcomp_plugin.train', ['-opt', ddp], cwd=tmp_path)

    def load(run, it):
        return torch.load(tmp_path / 'experiments' / run / 'models' / f'net_g_{it}.pth', map_location='cpu')

    for it in (2, 4):
        a, b = load('single', it), load('ddp', it)
        for key in ('params', 'params_ema'):
            assert a[key].keys() == b[key].keys()
            diff = max((a[key][k] - b[key][k]).abs().max().item() for k in a[key])
            print(f'{model_type} iter {it} {key}: max |single - ddp| = {diff:.3g}')
            assert diff < 1e-5, (model_type, it, key, diff)
    # training really moved the weights between the two compared checkpoints
    moved = max((load('single', 4)['params'][k] - load('single', 2)['params'][k]).abs().max().item()
                for k in load('single', 2)['params'])
    assert moved > 1e-4
