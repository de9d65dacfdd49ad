"""``DistillPairedImageDataset``: BasicSR's paired dataset plus the cached teacher SR image.

Used with ``train.teacher_cache`` (see ``teacher_cache.py``). Each training sample holds
``lq``, ``gt`` and ``teacher``: the teacher's SR image of the whole LR image, cropped at the
HR patch's position and flipped/rotated with it (one ``paired_random_crop`` and one
``augment`` call over all three images, so they cannot drift apart). Validation samples
are BasicSR's own.

Extra option: ``dataroot_teacher`` (the cache folder; ``DistillSRModel`` fills it).
"""
import os.path as osp

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from ..errors import OptionError
from .teacher_cache import TeacherCacheError, TeacherCacheStore, cache_key


@DATASET_REGISTRY.register()
class DistillPairedImageDataset(PairedImageDataset):
    """PairedImageDataset whose training samples also carry the cached teacher output."""

    def __init__(self, opt):
        super().__init__(opt)
        if not opt.get('dataroot_teacher'):
            raise OptionError(f'datasets.{opt.get("phase", "train")}.dataroot_teacher is required for '
                              'DistillPairedImageDataset: the teacher cache folder (DistillSRModel fills it when '
                              'train.teacher_cache is set)')
        unsupported = [k for k in ('mean', 'std', 'color') if opt.get(k) is not None]
        if unsupported:
            raise OptionError(f'DistillPairedImageDataset does not support {", ".join(unsupported)}: the cache '
                              'holds the teacher\'s RGB output for unnormalised images; use PairedImageDataset with '
                              'a live teacher instead')
        self.teacher_root = osp.expanduser(str(opt['dataroot_teacher']))
        self.teacher_store = TeacherCacheStore(self.teacher_root)

    def _read(self, path, client_key):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        return imfrombytes(self.file_client.get(path, client_key), float32=True)

    def cache_key(self, index):
        return cache_key(self.paths[index]['lq_path'])

    def load_full_lq(self, index):
        """The whole LR image as a CxHxW RGB tensor, read as training reads it (for the cache)."""
        return img2tensor(self._read(self.paths[index]['lq_path'], 'lq'), bgr2rgb=True, float32=True)

    def __getitem__(self, index):
        if self.opt['phase'] != 'train':
            return super().__getitem__(index)
        scale = self.opt['scale']
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        img_gt = self._read(gt_path, 'gt')
        img_lq = self._read(lq_path, 'lq')
        img_t = self.teacher_store.get(cache_key(lq_path))
        expected = (img_lq.shape[0] * scale, img_lq.shape[1] * scale)
        if img_t.shape[:2] != expected:
            raise TeacherCacheError(f'teacher cache {self.teacher_root}: entry {cache_key(lq_path)} is '
                                    f'{img_t.shape[0]}x{img_t.shape[1]}, expected {expected[0]}x{expected[1]} '
                                    f'({scale}x the LR image {lq_path}); delete the cache to rebuild it')
        (img_gt, img_t), img_lq = paired_random_crop([img_gt, img_t], img_lq, self.opt['gt_size'], scale, gt_path)
        img_gt, img_lq, img_t = augment([img_gt, img_lq, img_t], self.opt['use_hflip'], self.opt['use_rot'])
        img_gt, img_lq, img_t = img2tensor([img_gt, img_lq, img_t], bgr2rgb=True, float32=True)
        return {'lq': img_lq, 'gt': img_gt, 'teacher': img_t, 'lq_path': lq_path, 'gt_path': gt_path}
