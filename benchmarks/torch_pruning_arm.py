"""The peer a user would pick instead of srcomp: Torch-Pruning (DepGraph) on the same teacher and budget.

    pip install torch-pruning            # benchmarks only; the plugin never imports it
    python benchmarks/torch_pruning_arm.py --levels 4000 16000 --seeds 0

One run = one compute level (scratch-step equivalents, as every ``quality.py`` record) and
seed, appended to ``benchmarks/results/quality.json`` as arm ``torch_pruning``:

1. **sparse training**: the EDSR f64b8 teacher of ``quality.py``, Adam 2e-4, L1 to the
   ground truth, with ``GroupNormPruner``'s group-norm regularizer (reg 5e-4) after every
   backward, for the same share of the level and at the same batch (2) as ``srcomp_lean``'s
   stage 1;
2. **pruning**: one ``GroupNormPruner.step()`` with global pruning, its ratio bisected
   until the pruned network has the student's parameter count (+-2%). DepGraph does not
   see through ``PixelShuffle`` (it couples the upsampler's 4C outputs with the C inputs of
   ``conv_last`` and fails), so the upsampler conv and ``conv_last`` are ignored by the
   pruner and their shuffle groups (4 output channels = 1 channel after the shuffle) are
   kept by L2 norm here, about as many as the pruned trunk's width;
3. **fine-tuning**: L1 to the ground truth, Adam 2e-4 with a cosine schedule and the EMA
   of the other arms, batch 16, LR patch 32, for what the level has left (counted with the
   pruned network's own MACs per step); a plain PyTorch loop over BasicSR's
   ``PairedImageDataset`` (the pruned network has per-block widths no BasicSR arch takes);
4. **test**: Y-PSNR/SSIM with BasicSR's metrics, crop = scale, on Set5/Set14/Urban100.
"""
import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch

import quality as q

REG, STAGE1_LR, STAGE3_LR = 5e-4, 2e-4, q.SLICED_LR
FRACTION = q.LEAN_FRACTIONS['srcomp_lean']
PARAM_TOLERANCE = 0.02


def _loader(data, batch, seed):
    from basicsr.data import build_dataset

    opt = dict(q._datasets(data, batch)['train'], phase='train', scale=q.SCALE)
    dataset = build_dataset(opt)
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                                               generator=generator, num_workers=0)


def _teacher():
    from basicsr.archs.edsr_arch import EDSR

    kwargs = {k: v for k, v in q.FAMILIES['edsr']['teacher'].items() if k != 'type'}
    net = EDSR(**kwargs)
    net.load_state_dict(torch.load(q.ASSETS / 'edsr_teacher.pth', map_location='cpu', weights_only=True)['params_ema'])
    return net


def _params(net):
    return sum(p.numel() for p in net.parameters())


def prune_to(net, target, example):
    """A copy of ``net`` pruned by Torch-Pruning to ``target`` parameters (+-2%), and the ratio used.

    The ratio is bisected; at each ratio the kept shuffle groups of the upsampler (pruned
    here, see the module docstring) may be up to 4 more or fewer than the trunk's width, which
    makes the parameter count fine-grained enough for the tolerance.
    """
    import torch_pruning as tp

    def pruned(ratio):
        model = copy.deepcopy(net)
        pruner = tp.pruner.GroupNormPruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                           pruning_ratio=ratio, global_pruning=True,
                                           ignored_layers=[model.conv_last, model.upsample[0]])
        pruner.step()
        return model

    def with_groups(model, groups):
        model = copy.deepcopy(model)
        _prune_shuffle_groups(model, groups)
        return model

    low, high = 0.5, 0.99
    for _ in range(30):
        ratio = (low + high) / 2
        model = pruned(ratio)
        width = model.conv_first.out_channels
        candidates = [with_groups(model, g) for g in range(max(1, width - 4), min(64, width + 4) + 1)]
        best = min(candidates, key=lambda m: abs(_params(m) - target))
        if abs(_params(best) - target) <= PARAM_TOLERANCE * target:
            return best, ratio
        low, high = (ratio, high) if _params(with_groups(model, width)) > target else (low, ratio)
    raise RuntimeError(f'no pruning ratio gives {target} parameters +-2% (last: {_params(best)} at {ratio:.4f})')


@torch.no_grad()
def _prune_shuffle_groups(model, keep):
    """Keep ``keep`` PixelShuffle groups of the x2 upsampler (by L2 norm of their rows and conv_last's columns)."""
    up, last = model.upsample[0], model.conv_last
    size = 4
    norm = up.weight.pow(2).sum(dim=(1, 2, 3)).add(up.bias.pow(2)).view(-1, size).sum(1) + last.weight.pow(2).sum(
        dim=(0, 2, 3))
    groups = torch.sort(torch.topk(norm, keep).indices).values
    rows = (groups[:, None] * size + torch.arange(size)[None]).reshape(-1)
    new_up = torch.nn.Conv2d(up.in_channels, rows.numel(), 3, 1, 1)
    new_up.weight.copy_(up.weight[rows])
    new_up.bias.copy_(up.bias[rows])
    new_last = torch.nn.Conv2d(keep, last.out_channels, 3, 1, 1)
    new_last.weight.copy_(last.weight[:, groups])
    new_last.bias.copy_(last.bias)
    model.upsample[0], model.conv_last = new_up, new_last


def _step_macs(net, batch):
    from srcomp_plugin.measure.training_cost import network_train_step_macs

    return network_train_step_macs(net, batch, q.LR_PATCH, q.SCALE)


def _l1(net, batch):
    return torch.nn.functional.l1_loss(net(batch['lq']), batch['gt'])


def sparse_training(net, data, iters, batch, seed):
    import torch_pruning as tp

    example = torch.rand(1, 3, q.LR_PATCH, q.LR_PATCH)
    pruner = tp.pruner.GroupNormPruner(net, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                       reg=REG, global_pruning=True,
                                       ignored_layers=[net.conv_last, net.upsample[0]])
    optimizer = torch.optim.Adam(net.parameters(), lr=STAGE1_LR)
    pruner.update_regularizer()
    loader = _loader(data, batch, seed)
    for _ in range(iters):
        optimizer.zero_grad()
        _l1(net, next(loader)).backward()
        pruner.regularize(net)
        optimizer.step()
    return net


def fine_tune(net, data, iters, seed):
    torch.manual_seed(seed)
    ema = copy.deepcopy(net).requires_grad_(False)
    decay = q.ema_decay(iters)
    optimizer = torch.optim.Adam(net.parameters(), lr=STAGE3_LR)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iters, eta_min=1e-7)
    loader = _loader(data, q.BATCH, seed)
    for _ in range(iters):
        optimizer.zero_grad()
        _l1(net, next(loader)).backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
    return ema


@torch.no_grad()
def evaluate(net, data):
    """Y-PSNR/SSIM per test set with BasicSR's metrics, as ``srcomp_plugin.test`` computes them."""
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img

    net.eval()
    psnr, ssim = {}, {}
    for name in q.TEST_SETS:
        dataset = build_dataset(dict(q._test_set(data, name), phase='val', scale=q.SCALE))
        scores = []
        for i in range(len(dataset)):
            item = dataset[i]
            out = tensor2img(net(item['lq'][None]).clamp(0, 1))
            gt = tensor2img(item['gt'][None])
            scores.append((calculate_psnr(out, gt, q.SCALE, test_y_channel=True),
                           calculate_ssim(out, gt, q.SCALE, test_y_channel=True)))
        psnr[name] = sum(s[0] for s in scores) / len(scores)
        ssim[name] = sum(s[1] for s in scores) / len(scores)
    return psnr, ssim


def one_run(work, level, seed):
    data = q.prepare_data(work)
    unit = q.scratch_step_macs('edsr')
    net = _teacher()
    batch = q.FAMILIES['edsr']['lean']['batch']
    stage1_step = _step_macs(net, batch)
    stage1_iters = max(1, round(FRACTION * level * unit / stage1_step))
    start = time.time()
    sparse_training(net, data, stage1_iters, batch, seed)
    stage1_seconds = time.time() - start
    from srcomp_plugin.measure.networks import build_from_opt

    target = _params(build_from_opt(q.student_network('edsr')))
    pruned, ratio = prune_to(net, target, torch.rand(1, 3, q.LR_PATCH, q.LR_PATCH))
    step = _step_macs(pruned, q.BATCH)
    stage3_iters = max(1, math.floor((level * unit - stage1_iters * stage1_step) / step))
    start = time.time()
    ema = fine_tune(pruned, data, stage3_iters, seed)
    stage3_seconds = time.time() - start
    psnr, ssim = evaluate(ema, data)
    stage1 = {'iters': stage1_iters, 'batch': batch, 'macs': stage1_iters * stage1_step,
              'seconds': round(stage1_seconds, 1)}
    stage3 = {'iters': stage3_iters, 'batch': q.BATCH, 'macs': stage3_iters * step, 'live_teacher': False,
              'seconds': round(stage3_seconds, 1)}
    record = {'family': 'edsr', 'arm': 'torch_pruning', 'iters': level, 'seed': seed, 'psnr': psnr, 'ssim': ssim,
              'minutes': round((stage1_seconds + stage3_seconds) / 60, 1),
              'network': {'params': _params(pruned), 'target_params': target, 'pruning_ratio': round(ratio, 4),
                          'trunk': pruned.conv_first.out_channels, 'shuffle_groups': pruned.conv_last.in_channels,
                          'inner': [b.conv1.out_channels for b in pruned.body]},
              'cost': q.cost_entry('edsr', stage1, stage3)}
    q.append_result(record)
    print(f"[torch_pruning] level {level} seed {seed}: {record['network']} "
          + ' '.join(f'{s} {v:.2f}' for s, v in psnr.items()) + f" (Set5/14 {q._set5_14(record):.2f}), "
          f"{record['cost']['scratch_steps']} scratch-step equivalents", flush=True)
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work', default=str(q.REPO / 'quality_work'))
    parser.add_argument('--levels', nargs='+', type=int, default=[4000, 16000])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    args = parser.parse_args(argv)
    import srcomp_plugin  # noqa: F401  (the torchvision alias before BasicSR)

    work = Path(args.work).resolve()
    done = {(r['iters'], r['seed']) for r in q.load_results() if r['arm'] == 'torch_pruning'}
    for level in args.levels:
        for seed in args.seeds:
            if (level, seed) not in done:
                one_run(work, level, seed)
    q.write_table(q.load_results())
    return 0


if __name__ == '__main__':
    sys.exit(main())
