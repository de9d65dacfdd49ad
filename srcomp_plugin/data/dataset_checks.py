"""Check paired datasets before BasicSR reads them, with errors that name the option.

BasicSR's ``PairedImageDataset`` on a wrong folder fails late and cryptically: an empty
folder gives a dataset of length 0 and a ``ZeroDivisionError`` in the epoch arithmetic;
names that do not pair give an assertion with only the file name; an LR image whose size
is not HR/scale gives an error only when a random crop happens to hit it, or wrong PSNR
at test time. We check the folders, the pairing and every pair's size (image headers only,
so this is fast) when the dataset is built, and raise ``DatasetCheckError`` naming the
dataset, the option key and the files.

A file whose header is fine but whose data is cut short is caught when the loader reads it:
``PairedImageDataset.__getitem__`` then names it (BasicSR would fail on ``None.astype``).

LMDB datasets (``io_backend: {type: lmdb}``) are checked from their ``meta_info.txt`` (keys
and sizes), which BasicSR pairs by identical keys.

Installed around ``build_dataset`` in ``basicsr.train`` and ``basicsr.test``; applies to
datasets of type ``PairedImageDataset``/``DistillPairedImageDataset``/``ExtraInputsPairedImageDataset``
on disk (without ``meta_info_file``) or in LMDB; others pass through unchanged.
"""
import os
import os.path as osp

import cv2
from PIL import Image

from ..errors import SrcompError
from .image_io import UnreadableImageError

CHECKED_TYPES = ('PairedImageDataset', 'DistillPairedImageDataset', 'ExtraInputsPairedImageDataset')
IMAGE_EXT = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm')


class DatasetCheckError(SrcompError, ValueError):
    """A dataset folder that is missing, empty, unpaired or of the wrong sizes."""


def _images(folder):
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXT) and not f.startswith('.'))


def _size(path, where, key):
    """Width and height from the image header; a file that has none is named."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise DatasetCheckError(f'{where}.{key}: {path} is not a readable image (empty, truncated or another '
                                f'format): {err}') from None


def _where_and_roots(opt):
    """The dataset as messages name it, and its ``dataroot_gt``/``dataroot_lq`` (both required)."""
    where = f'datasets.{opt.get("phase", "?")} ({opt.get("name", "unnamed")})'
    roots = {key: opt.get(key) for key in ('dataroot_gt', 'dataroot_lq')}
    for key, root in roots.items():
        if not root:
            raise DatasetCheckError(f'{where}.{key} is not set')
    return where, roots


def check_paired_dataset(opt):
    """Raise :class:`DatasetCheckError` for the first problem of a paired folder dataset."""
    where, roots = _where_and_roots(opt)
    for key, root in roots.items():
        if not osp.isdir(root):
            raise DatasetCheckError(f'{where}.{key}: folder {root} does not exist')
    gts, lqs = _images(roots['dataroot_gt']), _images(roots['dataroot_lq'])
    for key, files in (('dataroot_gt', gts), ('dataroot_lq', lqs)):
        if not files:
            raise DatasetCheckError(f'{where}.{key}: folder {roots[key]} holds no images ({", ".join(IMAGE_EXT)})')
    tmpl = opt.get('filename_tmpl', '{}')
    lq_set = set(lqs)
    lq_by_stem = {osp.splitext(f)[0]: f for f in lqs}
    pairs, unpaired = [], []
    for gt in gts:
        stem = tmpl.format(osp.splitext(gt)[0])
        lq = stem + osp.splitext(gt)[1] if stem + osp.splitext(gt)[1] in lq_set else lq_by_stem.get(stem)
        (pairs.append((gt, lq)) if lq else unpaired.append(f'{gt} -> {stem}.*'))
        if lq and osp.splitext(lq)[1] != osp.splitext(gt)[1]:
            raise DatasetCheckError(
                f'{where}: HR {gt} and LR {lq} pair by name but not by extension; BasicSR\'s PairedImageDataset '
                'looks for the LR with the HR\'s extension. Save both in one format (srcomp prepare writes PNG).')
    if unpaired or len(gts) != len(lqs):
        extra = sorted(lq_set - {lq for _, lq in pairs})
        raise DatasetCheckError(
            f'{where}: HR and LR names do not pair with filename_tmpl {tmpl!r}: {len(gts)} HR vs {len(lqs)} LR images; '
            f'HR without LR: {unpaired[:5]}{" ..." if len(unpaired) > 5 else ""}; LR without HR: {extra[:5]}. '
            'Check datasets.*.filename_tmpl (e.g. "{}x2" for the EDSR layout, "{}" for DIV2K sub-images).')
    scale = int(opt.get('scale', 1))
    exact = opt.get('phase') == 'train'
    for gt, lq in pairs:
        (gw, gh), (qw, qh) = (_size(osp.join(roots['dataroot_gt'], gt), where, 'dataroot_gt'),
                              _size(osp.join(roots['dataroot_lq'], lq), where, 'dataroot_lq'))
        fits = (gw, gh) == (qw * scale, qh * scale) if exact else (
            0 <= gw - qw * scale < scale and 0 <= gh - qh * scale < scale)
        if not fits:
            need = 'exactly' if exact else 'HR cropped to a multiple of the scale, i.e. about'
            raise DatasetCheckError(
                f'{where}: {gt} is {gw}x{gh} but its LR {lq} is {qw}x{qh}; scale {scale} needs {need} '
                f'{qw * scale}x{qh * scale}. Is "scale" right, or was the LR made from another crop? '
                '(srcomp prepare makes matching pairs.)')
    return len(pairs)


def _lmdb_sizes(root, where, key):
    """``{key: (width, height)}`` from an LMDB folder's ``meta_info.txt`` (BasicSR's format)."""
    if not str(root).endswith('.lmdb'):
        raise DatasetCheckError(f'{where}.{key}: {root} must be an .lmdb folder with io_backend type lmdb')
    meta = osp.join(root, 'meta_info.txt')
    if not osp.isfile(meta):
        raise DatasetCheckError(f'{where}.{key}: {meta} does not exist; is {root} an LMDB written by BasicSR\'s '
                                'create_lmdb or srcomp prepare --lmdb?')
    sizes = {}
    with open(meta, encoding='utf-8') as f:
        for line in f:
            if line.strip():  # "<key>.png (h,w,c) <compression>"
                name, shape = line.split(' ')[:2]
                h, w = (int(v) for v in shape.strip('()').split(',')[:2])
                sizes[name.split('.')[0]] = (w, h)
    return sizes


def check_lmdb_dataset(opt):
    """Raise :class:`DatasetCheckError` for the first problem of a paired LMDB dataset."""
    where, roots = _where_and_roots(opt)
    sizes = {key: _lmdb_sizes(root, where, key) for key, root in roots.items()}
    gts, lqs = sizes['dataroot_gt'], sizes['dataroot_lq']
    if set(gts) != set(lqs):
        raise DatasetCheckError(
            f'{where}: the LMDB keys of dataroot_gt and dataroot_lq differ (BasicSR pairs LMDB images by identical '
            f'keys; filename_tmpl does not apply): only in HR {sorted(set(gts) - set(lqs))[:5]}, only in LR '
            f'{sorted(set(lqs) - set(gts))[:5]}. srcomp prepare --lmdb writes matching keys.')
    scale = int(opt.get('scale', 1))
    for name, (gw, gh) in gts.items():
        qw, qh = lqs[name]
        if (gw, gh) != (qw * scale, qh * scale):
            raise DatasetCheckError(f'{where}: LMDB key {name} is {gw}x{gh} in HR but {qw}x{qh} in LR; scale {scale} '
                                    f'needs {qw * scale}x{qh * scale}')
    return len(gts)


def check_dataset(dataset_opt):
    """The checks for the paired datasets they apply to (disk or LMDB); others pass unchanged."""
    backend = (dataset_opt.get('io_backend') or {}).get('type', 'disk')
    if dataset_opt.get('type') not in CHECKED_TYPES:
        return
    if backend == 'disk' and not dataset_opt.get('meta_info_file'):
        check_paired_dataset(dataset_opt)
    elif backend == 'lmdb':
        check_lmdb_dataset(dataset_opt)


def _checked(build_dataset):

    def build(dataset_opt):
        check_dataset(dataset_opt)
        return build_dataset(dataset_opt)

    build.__wrapped__ = build_dataset
    return build


def _unreadable(paths):
    """The first of ``paths`` that OpenCV cannot decode in full, or None."""
    for path in paths:
        if cv2.imread(path, cv2.IMREAD_UNCHANGED) is None:
            return path
    return None


def _naming_read_errors(getitem):
    """``PairedImageDataset.__getitem__`` that names the file it could not decode.

    The header check above cannot see a file cut short after its header: OpenCV then returns
    None and BasicSR fails on ``None.astype`` with no file name.
    """

    def __getitem__(self, index):
        try:
            return getitem(self, index)
        except (AttributeError, TypeError, cv2.error) as err:
            entry = self.paths[index % len(self.paths)] if isinstance(getattr(self, 'paths', None), list) else {}
            paths = [entry[k] for k in ('gt_path', 'lq_path') if isinstance(entry, dict) and k in entry]
            bad = _unreadable(paths)
            if bad is None:
                raise
            raise UnreadableImageError(f'datasets ({self.opt.get("name", "unnamed")}): cannot decode {bad} '
                                       '(truncated or corrupt image); replace or remove it') from err

    __getitem__.__wrapped__ = getitem
    return __getitem__


def install():
    import basicsr.test as bsr_test
    import basicsr.train as bsr_train
    from basicsr.data.paired_image_dataset import PairedImageDataset

    for module in (bsr_train, bsr_test):
        if not hasattr(module.build_dataset, '__wrapped__'):
            module.build_dataset = _checked(module.build_dataset)
    if not hasattr(PairedImageDataset.__getitem__, '__wrapped__'):
        PairedImageDataset.__getitem__ = _naming_read_errors(PairedImageDataset.__getitem__)
