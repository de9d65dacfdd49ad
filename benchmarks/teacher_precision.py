"""A cheaper teacher: bfloat16 autocast and/or channels_last, its speed and its PSNR against float32.

    python benchmarks/teacher_precision.py                       # both teachers, Set5, 2 threads
    python benchmarks/teacher_precision.py --edsr-checkpoint EDSR_x2.pth --swinir-checkpoint SwinIR-S_x2.pth

The teachers are the distillation option files' ``network_t`` (EDSR f64b16 and SwinIR-light),
run as the distillation model runs them: EDSR with the fused channels_last convolutions
and SwinIR with the fused attention, both of which fall back to BasicSR's plain modules
under bf16 autocast. For each variant of
the teacher forward

  * ``fp32``                 the reference (eval, ``torch.inference_mode``),
  * ``fp32 channels_last``   network and input in channels-last memory format,
  * ``bf16 autocast``        ``torch.autocast(device_type, dtype=torch.bfloat16)``, output cast to float32,
  * ``bf16 + channels_last`` both,

the script reports (1) the median time of a training-like teacher call (``--batch`` LR
patches of the stage-3 patch size, interleaved timing) and (2) the PSNR between the
variant's and the float32 teacher's SR images (clamped to [0, 1], peak 1) on real
photographs: Set5's x2 LR images (``../shared/datasets/Set5``), else scikit-image photos,
cropped to a multiple of the SwinIR window (BasicSR's SwinIR, the teacher, needs one).
A variant is kept only where that PSNR is >= 50 dB.

Weights: the released pretrained teachers are not in this repository. Pass them with
``--edsr-checkpoint``/``--swinir-checkpoint`` (BasicSR checkpoints); otherwise each teacher
is first fitted for ``--fit-iters`` Adam steps on crops of the same photographs, so that
its activations have trained-like statistics rather than initial ones. The JSON records
which was used. On a CUDA device (``--device cuda``) the same code measures the GPU.
"""
import argparse
import copy
import math
import sys
from pathlib import Path

import numpy as np
import torch

import common

REPO = Path(__file__).resolve().parents[1]
SHARED_SET5 = REPO.parent / 'shared' / 'datasets' / 'Set5'
TEACHERS = {
    'EDSR': ('options/distill/train_EDSRmini_x2_distill.yml', 48),  # (option file, stage-3 LR patch)
    'SwinIR-light': ('options/distill/train_SwinIRmini_x2_distill.yml', 64),
}
VARIANTS = ('fp32', 'fp32 channels_last', 'bf16 autocast', 'bf16 + channels_last')
PSNR_KEEP_DB = 50.0


def photos(scale=2):
    """[(name, LR float tensor 1x3xHxW in [0,1] RGB, HR tensor)] of real photographs."""
    import cv2

    pairs = []
    if (SHARED_SET5 / 'HR').is_dir() and (SHARED_SET5 / 'LR_bicubic' / f'X{scale}').is_dir():
        for hr_path in sorted((SHARED_SET5 / 'HR').glob('*.png')):
            lr_path = SHARED_SET5 / 'LR_bicubic' / f'X{scale}' / f'{hr_path.stem}x{scale}.png'
            pairs.append((hr_path.stem, _to_tensor(cv2.imread(str(lr_path))), _to_tensor(cv2.imread(str(hr_path)))))
        return pairs, f'Set5 x{scale} ({SHARED_SET5})'
    from skimage import data
    from basicsr.utils.matlab_functions import imresize

    for name in ('astronaut', 'coffee', 'chelsea', 'rocket'):
        hr = getattr(data, name)()[..., :3].astype(np.float32) / 255.
        h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        hr = hr[:h, :w]
        lr = np.clip(imresize(hr, 1 / scale), 0, 1)
        pairs.append((name, torch.from_numpy(lr).permute(2, 0, 1)[None].float(),
                      torch.from_numpy(hr).permute(2, 0, 1)[None].float()))
    return pairs, 'scikit-image photographs (Set5 not found)'


def _to_tensor(bgr):
    return torch.from_numpy(bgr[..., ::-1].astype(np.float32) / 255.).permute(2, 0, 1)[None].contiguous()


def build_teacher(name, checkpoint, device):
    import srcomp_plugin  # noqa: F401
    from srcomp_plugin.accel.edsr_fused_convs import use_fused_convs
    from srcomp_plugin.accel.swinir_fast_attention import use_fused_attention
    from srcomp_plugin.measure.networks import build_from_opt

    option_file = REPO / TEACHERS[name][0]
    network_opt = common.load_network_opt(option_file, 'network_t')
    torch.manual_seed(0)
    net = use_fused_convs(use_fused_attention(build_from_opt(network_opt, where=f'{option_file}: network_t')))
    if checkpoint:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
        for key in ('params_ema', 'params'):
            if isinstance(state, dict) and key in state:
                state = state[key]
                break
        net.load_state_dict({k.removeprefix('module.'): v for k, v in state.items()}, strict=True)
    return net.to(device).eval(), str(option_file.relative_to(REPO))


def fit(net, pairs, iters, patch, batch, log, scale=2):
    """A short Adam fit on random crops of ``pairs`` (L1), so the weights look trained."""
    if iters <= 0:
        return None
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.99))
    net.train()
    device = next(net.parameters()).device
    losses = []
    for step in range(iters):
        xs, ys = [], []
        for _ in range(batch):
            _, lr_img, hr_img = pairs[int(torch.randint(len(pairs), (1, ), generator=gen))]
            top = int(torch.randint(lr_img.shape[2] - patch + 1, (1, ), generator=gen))
            left = int(torch.randint(lr_img.shape[3] - patch + 1, (1, ), generator=gen))
            xs.append(lr_img[:, :, top:top + patch, left:left + patch])
            ys.append(hr_img[:, :, scale * top:scale * (top + patch), scale * left:scale * (left + patch)])
        x, y = torch.cat(xs).to(device), torch.cat(ys).to(device)
        loss = torch.nn.functional.l1_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % 25 == 0 or step == iters - 1:
            log(f'    fit step {step + 1}/{iters}: L1 {losses[-1]:.4f}')
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return {'iters': iters, 'first_loss': losses[0], 'last_loss': losses[-1]}


def variant_forward(net, name):
    """A callable x -> float32 SR image running ``net`` as variant ``name`` (a copy when channels_last)."""
    channels_last = 'channels_last' in name
    bf16 = name.startswith('bf16')
    if channels_last:
        net = copy.deepcopy(net).to(memory_format=torch.channels_last)

    def run(x):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if bf16:
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                return net(x).float()
        return net(x)

    return run


def psnr(a, b):
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1))**2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def measure_teacher(name, args, pairs, log):
    from srcomp_plugin.measure.shapes import window_of

    device = torch.device(args.device)
    checkpoint = getattr(args, 'edsr_checkpoint' if name == 'EDSR' else 'swinir_checkpoint')
    net, option_file = build_teacher(name, checkpoint, device)
    patch = TEACHERS[name][1]
    fitted = None
    if not checkpoint:
        log(f'{name}: no checkpoint given, fitting {args.fit_iters} steps on photo crops')
        fitted = fit(net, pairs, args.fit_iters, min(patch, 48), 4, log)
    runs = {v: variant_forward(net, v) for v in VARIANTS}
    # speed on a training-like teacher call
    x = torch.rand(args.batch, 3, patch, patch, generator=torch.Generator().manual_seed(1)).to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == 'cuda' else (lambda: None)  # noqa: E731
    log(f'{name}: timing a {tuple(x.shape)} teacher call, {args.repeats} rounds')
    with torch.inference_mode():
        times = common.interleaved_times({v: (lambda run=run: (run(x), sync())) for v, run in runs.items()},
                                         args.repeats, warmup=1, log=log)
        # PSNR against float32 on the photographs
        scores = {v: [] for v in VARIANTS if v != 'fp32'}
        window = window_of(net)  # BasicSR's SwinIR takes multiples of its window only: crop to one
        for image_name, lr_img, _ in pairs:
            h, w = lr_img.shape[2] // window * window, lr_img.shape[3] // window * window
            lr_img = lr_img[:, :, :h, :w].to(device)
            ref = runs['fp32'](lr_img)
            for v in scores:
                scores[v].append(psnr(runs[v](lr_img), ref))
            log(f'  {image_name}: ' + ', '.join(f'{v} {scores[v][-1]:.1f} dB' for v in scores))
    base = times['fp32']['median_s']
    rows = []
    for v in VARIANTS:
        values = scores.get(v)
        row = {'teacher': name, 'variant': v, **times[v], 'speedup_vs_fp32': base / times[v]['median_s'],
               'psnr_vs_fp32_db': values, 'psnr_min_db': min(values) if values else None,
               'psnr_mean_db': float(np.mean(values)) if values else None}
        row['keep'] = v == 'fp32' or (row['psnr_min_db'] >= PSNR_KEEP_DB and row['speedup_vs_fp32'] > 1.0)
        rows.append(row)
    return {'teacher': name, 'option_file': option_file, 'checkpoint': checkpoint, 'fitted': fitted,
            'input_shape': list(x.shape), 'rows': rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--teachers', nargs='+', default=list(TEACHERS), choices=list(TEACHERS))
    parser.add_argument('--edsr-checkpoint', help='BasicSR checkpoint of the EDSR f64b16 x2 teacher')
    parser.add_argument('--swinir-checkpoint', help='BasicSR checkpoint of the SwinIR-light x2 teacher')
    parser.add_argument('--fit-iters', type=int, default=100, help='fit steps without a checkpoint (default 100)')
    parser.add_argument('--batch', type=int, default=4, help='LR patches per timed teacher call (default 4)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds (default 5)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu', help='cpu (default) or cuda')
    parser.add_argument('--json-out', help='JSON file (default benchmarks/results/teacher_precision.json)')
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    log = common.progress_logger(args.quiet)
    info = common.machine_info(torch.get_num_threads())
    pairs, source = photos()
    results = [measure_teacher(name, args, pairs, log) for name in args.teachers]
    table = []
    for result in results:
        for row in result['rows']:
            table.append([row['teacher'], row['variant'], f'{row["median_s"]:.3f}', f'{row["speedup_vs_fp32"]:.2f}',
                          '-' if row['psnr_min_db'] is None else f'{row["psnr_min_db"]:.1f}',
                          '-' if row['psnr_mean_db'] is None else f'{row["psnr_mean_db"]:.1f}',
                          'yes' if row['keep'] else 'no'])
    print(common.format_table(['teacher', 'variant', 'call (s)', 'speedup', 'PSNR min (dB)', 'PSNR mean (dB)',
                               'keep'], table))
    print(f'\nPSNR vs the float32 teacher on {source}; keep = PSNR >= {PSNR_KEEP_DB:g} dB on every image and faster.')
    for r in results:
        weights = f'checkpoint {r["checkpoint"]}' if r['checkpoint'] else f'fitted {r["fitted"]["iters"]} steps'
        print(f'{r["teacher"]} weights: {weights}')
    result = {'benchmark': 'teacher_precision', 'settings': vars(args), 'photos': source,
              'machine': common.finish_info(info), 'teachers': results}
    path = common.write_json(result, args.json_out or common.RESULTS_DIR / 'teacher_precision.json')
    print(f'load average start {info["load_average_start"]}, end {info["load_average_end"]}; JSON: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
