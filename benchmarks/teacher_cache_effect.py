"""How far the teacher cache's targets are from the live teacher's (``train.teacher_cache``).

    python benchmarks/teacher_cache_effect.py --teacher CKPT --network-t '{"type": "EDSR", ...}'
        --hr DIR --lq DIR [--scale 2] [--gt-size 96] [--samples 64] [--student CKPT --network-g JSON]

For random training patches (as ``paired_random_crop`` + ``augment`` make them):

* live:   ``teacher(augment(lq_patch))``, what DistillSRModel computes without a cache;
* cached: ``augment(crop(png16(teacher(lq_full))))``, what DistillPairedImageDataset reads.

Reported: mean/max |cached - live| in the border band (``--band`` HR pixels from the patch
edge) and in the interior, without and with flips/rotations, the PSNR of cached against
live, the share of teacher values outside [0, 1], and, for a student, the relative change of MultiLapLoss and the cosine similarity of
its gradients (w.r.t. the student's weights) between the two targets.
"""
import argparse
import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np
import torch


def _rgb_tensor(img_bgr):
    return torch.from_numpy(np.ascontiguousarray(img_bgr[..., ::-1]).astype(np.float32) / 255.).permute(2, 0, 1)


def _augment(t, hflip, vflip, rot):
    """BasicSR's ``augment`` on a CxHxW tensor: cv2.flip(1) = W flip, cv2.flip(0) = H flip, transpose."""
    if hflip:
        t = t.flip(-1)
    if vflip:
        t = t.flip(-2)
    if rot:
        t = t.transpose(-1, -2)
    return t


def main(argv=None):
    import srcomp_plugin  # noqa: F401
    from basicsr.archs import build_network
    from basicsr.losses import build_loss
    from srcomp_plugin.data.teacher_cache import decode_png16, encode_png16, teacher_sr

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--teacher', required=True)
    parser.add_argument('--network-t', required=True, help='network_t options as JSON')
    parser.add_argument('--param-key', default='params')
    parser.add_argument('--student')
    parser.add_argument('--network-g', help='network_g options as JSON (with --student)')
    parser.add_argument('--hr', required=True)
    parser.add_argument('--lq', required=True)
    parser.add_argument('--tmpl', default='{}x{scale}')
    parser.add_argument('--scale', type=int, default=2)
    parser.add_argument('--gt-size', type=int, default=96)
    parser.add_argument('--band', type=int, default=16, help='border band width in HR pixels')
    parser.add_argument('--samples', type=int, default=64)
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    random.seed(0)

    def load(opt_json, ckpt, key):
        net = build_network(json.loads(opt_json))
        state = torch.load(ckpt, map_location='cpu')
        net.load_state_dict(state.get(key, state.get('params')))
        return net.eval().requires_grad_(False)

    net_t = load(args.network_t, args.teacher, args.param_key)
    student = load(args.network_g, args.student, 'params') if args.student else None
    loss_fn = build_loss({'type': 'MultiLapLoss', 'loss_weight': 1.0})
    s, gt, lq_size, band = args.scale, args.gt_size, args.gt_size // args.scale, args.band

    full_cache = {}
    stats = {False: [], True: []}
    loss_rel, grad_cos = [], []
    hr_paths = sorted(Path(args.hr).glob('*.png'))
    for n in range(args.samples):
        hr_path = hr_paths[n % len(hr_paths)]
        lq_img = cv2.imread(str(Path(args.lq) / f'{args.tmpl.format(hr_path.stem, scale=s)}.png'))
        lq = _rgb_tensor(lq_img)
        if hr_path.stem not in full_cache:
            sr = teacher_sr(net_t, lq[None], s)[0].permute(1, 2, 0).numpy()[..., ::-1]
            full_cache[hr_path.stem] = torch.from_numpy(
                np.ascontiguousarray(decode_png16(encode_png16(sr), 'memory')[..., ::-1])).permute(2, 0, 1)
        top, left = random.randint(0, lq.shape[1] - lq_size), random.randint(0, lq.shape[2] - lq_size)
        flags = (random.random() < 0.5, random.random() < 0.5, random.random() < 0.5)
        for flipped in (False, True):
            f = flags if flipped else (False, False, False)
            lq_patch = _augment(lq[:, top:top + lq_size, left:left + lq_size], *f)
            cached = _augment(full_cache[hr_path.stem][:, s * top:s * top + gt, s * left:s * left + gt], *f)
            with torch.no_grad():
                live = net_t(lq_patch[None])[0]
            gap = (cached - live).abs()
            interior = gap[:, band:-band, band:-band]
            mask = torch.ones_like(gap, dtype=torch.bool)
            mask[:, band:-band, band:-band] = False
            mse = ((cached - live)**2).mean().item()
            stats[flipped].append({'border_mean': gap[mask].mean().item(), 'border_max': gap[mask].max().item(),
                                   'interior_mean': interior.mean().item(), 'interior_max': interior.max().item(),
                                   'live_outside_0_1': ((live < 0) | (live > 1)).float().mean().item(),
                                   'psnr': 10 * np.log10(1 / max(mse, 1e-20))})
            if student is not None and flipped:
                grads = []
                for target in (live, cached):
                    student.zero_grad()
                    params = [p.requires_grad_(True) for p in student.parameters()]
                    value = loss_fn(student(lq_patch[None]), target[None])
                    grads.append((value.item(), torch.cat([g.flatten() for g in torch.autograd.grad(value, params)])))
                loss_rel.append(abs(grads[1][0] - grads[0][0]) / grads[0][0])
                grad_cos.append(torch.nn.functional.cosine_similarity(grads[0][1], grads[1][1], dim=0).item())

    report = {'config': {k: v for k, v in vars(args).items() if k != 'json'}}
    print(f'{args.samples} patches of {gt}x{gt} HR, border band {band} px')
    print(f'{"augment":<9} {"border mean":>12} {"border max":>11} {"interior mean":>14} {"interior max":>13} '
          f'{"PSNR dB":>8}')
    for flipped, rows in stats.items():
        agg = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        agg['border_max'] = max(r['border_max'] for r in rows)
        agg['interior_max'] = max(r['interior_max'] for r in rows)
        report['flips' if flipped else 'no_flips'] = agg
        print(f'{("flips" if flipped else "none"):<9} {agg["border_mean"]:>12.2e} {agg["border_max"]:>11.2e} '
              f'{agg["interior_mean"]:>14.2e} {agg["interior_max"]:>13.2e} {agg["psnr"]:>8.2f}')
    print(f'live teacher values outside [0, 1] (kept: the cache stores [-0.5, 1.5]): '
          f'{report["no_flips"]["live_outside_0_1"]:.3%} of pixels')
    if loss_rel:
        report['multilap_rel_change_mean'] = float(np.mean(loss_rel))
        report['grad_cosine_mean'] = float(np.mean(grad_cos))
        report['grad_cosine_min'] = float(np.min(grad_cos))
        print(f'MultiLap with cached vs live targets (flips on): relative change {np.mean(loss_rel):.3%}, '
              f'gradient cosine mean {np.mean(grad_cos):.4f} (min {np.min(grad_cos):.4f})')
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
