"""``srcomp prepare``: the BasicSR/EDSR dataset layout from a folder of HR images.

Output layout (the EDSR benchmark layout that BasicSR's ``PairedImageDataset`` reads with
``filename_tmpl: '{}x<s>'``)::

    OUT/HR/<name>.png                      HR cropped to a multiple of ``mod``
    OUT/LR_bicubic/X<s>/<name>x<s>.png     MATLAB-style bicubic (basicsr imresize)
    OUT/meta_info_HR.txt                   '<name>.png (h,w,c)' lines (BasicSR meta_info)

``mod`` defaults to the least common multiple of the scales (12 for 2/3/4, BasicSR's
``GTmod12``), so one HR folder pairs with every LR folder. Optional: sub-images (BasicSR's
DIV2K recipe: 480 HR crops every 240 px; LR crops of 480/s every 240/s px cut from the LR
image) under ``OUT/HR_sub`` and ``OUT/LR_bicubic/X<s>_sub``, named alike in both
(``<name>_s001.png``, read with ``filename_tmpl: '{}'``, as in BasicSR's DIV2K options),
and LMDB copies (``*.lmdb`` with BasicSR's ``meta_info.txt``).

``--benchmark`` follows the published test-set protocol instead: HR is kept uncropped and
each ``X<s>`` LR is made from HR cropped to a multiple of ``s`` (BasicSR crops HR to
``s x LR`` at test time), which reproduces the distributed Set5 LR images.

An existing ``OUT`` is never overwritten: it is an error, or with ``--archive-existing``
it is renamed to ``OUT_archived_<time>`` first, as BasicSR does with experiment folders.
"""
import argparse
import math
import os
import sys
from functools import reduce
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import SrcompError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class PrepareError(SrcompError, ValueError):
    """A problem with the input folder or the output location, named in the message."""


def bicubic_downscale(img, scale):
    """MATLAB-style bicubic downscaling of a uint8 HxWxC image, rounded back to uint8."""
    import srcomp_plugin  # noqa: F401  (basicsr must be imported through the plugin's compat shim)
    from basicsr.utils.matlab_functions import imresize

    lr = imresize(img.astype(np.float64) / 255., 1 / scale)
    return np.clip(np.round(lr * 255.), 0, 255).astype(np.uint8)


def crop_to_multiple(img, mod):
    """Crop the bottom/right border so that height and width are multiples of ``mod``."""
    h, w = img.shape[:2]
    return img[:h - h % mod, :w - w % mod]


def list_images(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise PrepareError(f'--hr {folder}: folder does not exist')
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PrepareError(f'--hr {folder}: no images found (looked for {", ".join(IMAGE_SUFFIXES)})')
    return files


def sub_image_boxes(h, w, crop, step, thresh):
    """Top-left corners of BasicSR's sub-image grid (extract_subimages.py semantics)."""
    ys = list(range(0, h - crop + 1, step))
    xs = list(range(0, w - crop + 1, step))
    if ys and h - (ys[-1] + crop) > thresh:
        ys.append(h - crop)
    if xs and w - (xs[-1] + crop) > thresh:
        xs.append(w - crop)
    return [(y, x) for y in ys for x in xs]


def _archive_or_fail(out, archive_existing):
    if not out.exists():
        return
    if not archive_existing:
        raise PrepareError(f'--out {out} already exists; choose another folder or pass --archive-existing '
                           'to rename it first (nothing is deleted)')
    from basicsr.utils.misc import get_time_str

    archived = out.with_name(f'{out.name}_archived_{get_time_str()}')
    os.rename(out, archived)
    print(f'Existing {out} renamed to {archived}', flush=True)


def _write(path, img):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise PrepareError(f'cannot write {path} (disk full or not writable?)')


def _write_meta(folder, meta_path):
    lines = []
    for p in sorted(Path(folder).glob('*.png')):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        c = 1 if img.ndim == 2 else img.shape[2]
        lines.append(f'{p.name} ({img.shape[0]},{img.shape[1]},{c})')
    Path(meta_path).write_text('\n'.join(lines) + '\n')


def _make_lmdb(folder, lmdb_path, strip=''):
    """An LMDB copy of ``folder``; keys are the file stems without ``strip``.

    BasicSR pairs LMDB images by identical keys (``filename_tmpl`` does not apply), so the
    ``X{s}`` folders, whose files are named ``<name>x{s}.png``, are keyed ``<name>`` like HR.
    """
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    names = sorted(p.name for p in Path(folder).glob('*.png'))
    keys = [os.path.splitext(n)[0] for n in names]
    keys = [k[:-len(strip)] if strip and k.endswith(strip) else k for k in keys]
    make_lmdb_from_imgs(str(folder), str(lmdb_path), names, keys, n_thread=1)


def prepare_dataset(hr_dir, out_dir, scales=(2, 3, 4), mod=None, sub_images=False, crop_size=480, step=240,
                    thresh=0, lmdb=False, archive_existing=False, progress=True, benchmark=False):
    """Build the layout described in the module docstring; returns a summary dict.

    Unreadable files are skipped and listed in ``summary['unreadable']`` (with the reason),
    converted files (grayscale, RGBA, 16-bit) in ``summary['converted']``.
    """
    from .image_io import UnreadableImageError, read_image_bgr8

    scales = [int(s) for s in scales]
    if not scales or any(s < 1 for s in scales):
        raise PrepareError(f'--scales {scales}: give one or more integer scales >= 1')
    mod = int(mod or reduce(lambda a, b: a * b // math.gcd(a, b), scales))
    if any(mod % s for s in scales):
        raise PrepareError(f'--mod {mod} must be a multiple of every scale {scales}')
    if benchmark and sub_images:
        raise PrepareError('--benchmark keeps HR uncropped for testing; it cannot be combined with --sub-images')
    if sub_images and any(crop_size % s or step % s for s in scales):
        raise PrepareError(f'--crop-size {crop_size} and --step {step} must be multiples of every scale {scales}')
    files = list_images(hr_dir)
    out = Path(out_dir)
    _archive_or_fail(out, archive_existing)

    summary = {'images': 0, 'unreadable': {}, 'converted': {}, 'too_small': [], 'out': str(out)}
    for path in tqdm(files, desc='prepare', unit='img', disable=not progress):
        try:
            img, notes = read_image_bgr8(path)
        except UnreadableImageError as err:
            summary['unreadable'][path.name] = str(err)
            continue
        if notes:
            summary['converted'][path.name] = notes
        hr = img if benchmark else crop_to_multiple(img, mod)
        if min(crop_to_multiple(img, mod).shape[:2]) == 0:
            summary['too_small'].append(path.name)
            continue
        name = path.stem
        _write(out / 'HR' / f'{name}.png', hr)
        for s in scales:
            lr = bicubic_downscale(crop_to_multiple(hr, s), s)
            _write(out / 'LR_bicubic' / f'X{s}' / f'{name}x{s}.png', lr)
            if sub_images:
                for i, (y, x) in enumerate(sub_image_boxes(*hr.shape[:2], crop_size, step, thresh), 1):
                    tile = lr[y // s:(y + crop_size) // s, x // s:(x + crop_size) // s]
                    _write(out / 'LR_bicubic' / f'X{s}_sub' / f'{name}_s{i:03d}.png', tile)
        if sub_images:
            for i, (y, x) in enumerate(sub_image_boxes(*hr.shape[:2], crop_size, step, thresh), 1):
                _write(out / 'HR_sub' / f'{name}_s{i:03d}.png', hr[y:y + crop_size, x:x + crop_size])
        summary['images'] += 1
    if summary['images'] == 0:
        raise PrepareError(f'--hr {hr_dir}: no usable image (unreadable: {sorted(summary["unreadable"])}, '
                           f'smaller than mod {mod}: {summary["too_small"]})')

    hr_folders = ['HR'] + (['HR_sub'] if sub_images else [])
    for folder in hr_folders:
        _write_meta(out / folder, out / f'meta_info_{folder}.txt')
    if lmdb:
        suffixes = [''] + (['_sub'] if sub_images else [])
        for folder in hr_folders:
            _make_lmdb(out / folder, out / f'{folder}.lmdb')
        for s in scales:
            for suffix in suffixes:
                folder = f'LR_bicubic/X{s}{suffix}'
                _make_lmdb(out / folder, out / f'{folder}.lmdb', strip='' if suffix else f'x{s}')
    return summary


def build_parser():
    parser = argparse.ArgumentParser(prog='srcomp prepare', description=__doc__.split('\n\n')[0])
    parser.add_argument('--hr', required=True, help='folder of HR images (png, jpg, tif, ...)')
    parser.add_argument('--out', required=True, help='output folder (must not exist)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4])
    parser.add_argument('--mod', type=int, default=None, help='crop HR to a multiple of this (default: lcm of scales)')
    parser.add_argument('--sub-images', action='store_true', help="also extract BasicSR's DIV2K sub-images")
    parser.add_argument('--crop-size', type=int, default=480)
    parser.add_argument('--step', type=int, default=240)
    parser.add_argument('--thresh', type=int, default=0)
    parser.add_argument('--lmdb', action='store_true', help='also write LMDB copies of every folder')
    parser.add_argument('--benchmark', action='store_true',
                        help='test-set protocol: keep HR uncropped, make each LR from HR cropped to a multiple of s')
    parser.add_argument('--archive-existing', action='store_true', help='rename an existing --out instead of failing')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        summary = prepare_dataset(args.hr, args.out, args.scales, args.mod, args.sub_images, args.crop_size, args.step,
                                  args.thresh, args.lmdb, args.archive_existing, benchmark=args.benchmark)
    except PrepareError as err:
        print(f'srcomp prepare: error: {err}', file=sys.stderr)
        return 2
    for name, notes in summary['converted'].items():
        print(f'converted {name}: {", ".join(notes)}')
    for name, reason in summary['unreadable'].items():
        print(f'skipped {name}: {reason}', file=sys.stderr)
    for name in summary['too_small']:
        print(f'skipped {name}: smaller than the crop multiple', file=sys.stderr)
    print(f'{summary["images"]} images prepared under {summary["out"]}')
    return 1 if summary['unreadable'] else 0


if __name__ == '__main__':
    sys.exit(main())
