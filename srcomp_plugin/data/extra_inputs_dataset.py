"""``ExtraInputsPairedImageDataset``: BasicSR's paired dataset plus unlabelled inputs for distillation.

Beyond the paper. A student trained from scratch learns only from the HR/LR pairs; a student
distilled from a teacher can also learn from LR inputs that have no ground truth, because the
teacher labels them. This dataset adds such inputs to stage-3 training (``DistillSRModel``):
with probability ``extra_prob`` a training sample is *unlabelled*, i.e. an LR patch from a
second image source, with ``labelled`` false and a placeholder ``gt`` of zeros (the HR patch's
shape, so batches of both kinds collate); ``DistillSRModel`` then computes the pixel loss over
the labelled samples only and the distillation loss over all. Labelled samples are
``PairedImageDataset``'s, with ``labelled`` true.

Options (``datasets.train``), beyond ``PairedImageDataset``'s:

* ``extra_prob`` (default 0.5, in [0, 1)): the probability that a sample is unlabelled. With
  0 the samples, and the random numbers drawn, are exactly ``PairedImageDataset``'s.
* ``dataroot_extra`` (default: none): a folder of images of any sizes (subfolders included;
  grayscale, RGBA and 16-bit images are converted to 8-bit colour). Without it the source is
  the HR images of ``dataroot_gt``: "zoom-in" crops, LR inputs at finer scales than the pairs'.
* ``extra_zoom`` (default ``[1/scale, 1]``): the range of the random factor the source is
  resized by before a ``gt_size // scale`` patch is cropped from it. At ``1/scale`` an HR
  image looks like the pairs' LR images; at 1 its pixels are used as they are.

An unlabelled patch is made by cropping, at a random position, the source region that the
resized patch covers and resizing only that region to the patch size, which costs a patch's
work instead of a whole image's: cv2's ``INTER_AREA`` when downscaling (antialiased), bicubic
when upscaling, a plain crop at 1. The factor applied is ``patch / region``: the drawn factor
rounded to a whole-pixel region. Every source image must hold the largest region (at the
smallest zoom); image headers are checked when the dataset is built. Flips and rotations are
BasicSR's ``augment`` with ``use_hflip``/``use_rot``, and ``color``, ``mean`` and ``std`` act on
it as on the labelled LR patches. All randomness comes from Python's ``random``, as in
BasicSR's datasets, so runs are reproducible given the seed. An epoch keeps the labelled
set's length: each of its draws is unlabelled with probability ``extra_prob``.

Training only: outside the train phase the class is ``PairedImageDataset`` exactly (no
``labelled`` key; the extra options are ignored), so a validation set may use it too.
"""
import os
import os.path as osp
import random

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import normalize

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment
from basicsr.utils import FileClient, bgr2ycbcr, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from ..errors import OptionError
from .dataset_checks import IMAGE_EXT
from .image_io import read_image_bgr8

DEFAULT_EXTRA_PROB = 0.5
WHERE = 'datasets.train'


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_extra_prob(opt):
    """``extra_prob`` from a train dataset's options, checked."""
    prob = opt.get('extra_prob', DEFAULT_EXTRA_PROB)
    if not _is_number(prob) or not 0 <= prob < 1:
        raise OptionError(f'{WHERE}.extra_prob must be a number in [0, 1): the probability of an unlabelled sample '
                          f'(1 would leave no ground truth at all); got {prob!r}')
    return float(prob)


def _extra_zoom(opt):
    zoom = opt.get('extra_zoom')
    if zoom is None:
        return 1 / opt['scale'], 1.0
    if not isinstance(zoom, (list, tuple)) or len(zoom) != 2 or not all(_is_number(z) for z in zoom) or \
            not 0 < zoom[0] <= zoom[1]:
        raise OptionError(f'{WHERE}.extra_zoom must be a range [low, high] of resize factors with 0 < low <= high '
                          f'(default [1/scale, 1]); got {zoom!r}')
    return float(zoom[0]), float(zoom[1])


@DATASET_REGISTRY.register()
class ExtraInputsPairedImageDataset(PairedImageDataset):
    """PairedImageDataset whose training samples are, with probability ``extra_prob``, unlabelled inputs."""

    def __init__(self, opt):
        super().__init__(opt)
        if opt['phase'] != 'train':
            return
        if not opt.get('gt_size'):
            raise OptionError(f'{WHERE}.gt_size is required: the HR patch size (the LR patches are gt_size // scale)')
        self.lq_size = opt['gt_size'] // opt['scale']
        self.extra_prob = read_extra_prob(opt)
        self.extra_zoom = _extra_zoom(opt)
        self.extra_root = opt.get('dataroot_extra')
        self.source_key = 'dataroot_extra' if self.extra_root else 'dataroot_gt'
        self.extra_paths = self._extra_paths()
        if self.extra_root or self.io_backend_opt['type'] == 'disk':  # image headers, to fail before training
            self._check_source_sizes()

    def _extra_paths(self):
        if not self.extra_root:
            return [p['gt_path'] for p in self.paths]
        root = osp.expanduser(str(self.extra_root))
        if not osp.isdir(root):
            raise OptionError(f'{WHERE}.dataroot_extra: folder {root} does not exist')
        paths = sorted(osp.join(folder, name) for folder, _, names in os.walk(root) for name in names
                       if name.lower().endswith(IMAGE_EXT) and not name.startswith('.'))
        if not paths:
            raise OptionError(f'{WHERE}.dataroot_extra: folder {root} holds no images ({", ".join(IMAGE_EXT)})')
        return paths

    def _largest_region(self):
        return round(self.lq_size / self.extra_zoom[0])

    def _too_small(self, path, width, height):
        need = self._largest_region()
        return ValueError(
            f'{WHERE}.{self.source_key}: {path} is {width}x{height}, smaller than the {need}x{need} region that '
            f'becomes a {self.lq_size}x{self.lq_size} LR patch at the smallest {WHERE}.extra_zoom '
            f'({self.extra_zoom[0]:g}); remove it, or raise extra_zoom\'s low end or lower gt_size')

    def _check_source_sizes(self):
        need = self._largest_region()
        for path in self.extra_paths:
            with Image.open(path) as img:
                width, height = img.size
            if min(width, height) < need:
                raise self._too_small(path, width, height)

    def __getitem__(self, index):
        if self.opt['phase'] != 'train':
            return super().__getitem__(index)
        if self.extra_prob and random.random() < self.extra_prob:
            return self._unlabelled_sample()
        return dict(super().__getitem__(index), labelled=torch.tensor(True))

    def _read_source(self, path):
        if self.extra_root:
            return read_image_bgr8(path)[0].astype(np.float32) / 255.
        if self.file_client is None:  # the HR images, read as the labelled ones are (disk or lmdb)
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        return imfrombytes(self.file_client.get(path, 'gt'), float32=True)

    def _zoomed_patch(self, img, path):
        """A random ``lq_size`` patch of ``img`` resized by a random ``extra_zoom`` factor."""
        size = self.lq_size
        region = max(1, round(size / random.uniform(*self.extra_zoom)))
        height, width = img.shape[:2]
        if min(height, width) < region:  # only reachable for lmdb sources, whose headers are not checked
            raise self._too_small(path, width, height)
        top, left = random.randint(0, height - region), random.randint(0, width - region)
        crop = img[top:top + region, left:left + region]
        if region == size:
            return crop
        if region > size:
            return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        return np.clip(cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC), 0, 1)  # cubic overshoots

    def _unlabelled_sample(self):
        path = self.extra_paths[random.randrange(len(self.extra_paths))]
        img_lq = self._zoomed_patch(self._read_source(path), path)
        img_lq = augment(img_lq, self.opt['use_hflip'], self.opt['use_rot'])
        if self.opt.get('color') == 'y':
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]
        img_lq = img2tensor(img_lq, bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
        gt_size = self.opt['gt_size']
        return {'lq': img_lq, 'gt': img_lq.new_zeros(img_lq.shape[0], gt_size, gt_size), 'lq_path': path,
                'gt_path': '', 'labelled': torch.tensor(False)}
