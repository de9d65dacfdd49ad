"""Which teacher cache a training option file asks for, and whether it is complete.

The cache is filled by a tool, ``srcomp teacher-cache -opt OPT.yml``, before training, not
by ``DistillSRModel``: filling runs the teacher over the whole training set once (minutes
on a GPU, hours on a CPU for DIV2K), a job with its own progress, failures and device that
no model constructor should hide. The model only asks :func:`check_cache` whether the
cache it is given was made from its teacher and training set and holds every image.
"""
import os.path as osp
from copy import deepcopy
from dataclasses import dataclass

from ..errors import InputFileError, OptionError
from .distill_paired_dataset import DistillPairedImageDataset
from .teacher_cache import TeacherCacheError, cache_fingerprint, open_cache


@dataclass
class CacheRequest:
    """The cache of one option file: where, in which format, made from what, for which images."""
    dataset: DistillPairedImageDataset
    keys: list
    fingerprint: dict
    fmt: str
    pad_multiple: int

    @property
    def root(self):
        return self.dataset.teacher_root


def cache_request(opt):
    """The :class:`CacheRequest` of the option dict ``opt`` (its ``train.teacher_cache`` must be set)."""
    cache_opt = (opt.get('train') or {}).get('teacher_cache')
    if not cache_opt:
        raise OptionError('train.teacher_cache is not set: there is no teacher cache to fill (set it to '
                          '{format: png} or {format: lmdb})')
    for key in ('network_t', 'scale'):
        if not opt.get(key):
            raise OptionError(f'train.teacher_cache needs {key}: the cache holds network_t\'s outputs at this scale')
    cache_opt = cache_opt if isinstance(cache_opt, dict) else {}
    dataset_opt = deepcopy((opt.get('datasets') or {}).get('train') or {})
    if dataset_opt.get('type') != DistillPairedImageDataset.__name__:
        raise OptionError('train.teacher_cache needs datasets.train.type: DistillPairedImageDataset (with '
                          'dataroot_teacher), which crops the cached teacher image with the HR patch')
    dataset_opt.setdefault('phase', 'train')
    dataset_opt.setdefault('scale', opt['scale'])
    dataset = DistillPairedImageDataset(dataset_opt)
    keys = [dataset.cache_key(i) for i in range(len(dataset))]
    if len(set(keys)) != len(keys):
        raise OptionError('train.teacher_cache: two training LR images share a file name; the cache is keyed '
                          'by file name, so rename them or disable the cache')
    path_opt = opt.get('path') or {}
    teacher = osp.expanduser(str(path_opt.get('pretrain_network_t') or ''))
    if not osp.isfile(teacher):
        raise InputFileError(f'path.pretrain_network_t: teacher checkpoint {teacher or "(not set)"} does not exist')
    fingerprint = cache_fingerprint(teacher, opt['network_t'], path_opt.get('param_key_t', 'params'), opt['scale'],
                                    osp.expanduser(str(dataset_opt['dataroot_lq'])), keys)
    pad = cache_opt.get('pad_multiple', opt['network_t'].get('window_size', 1))
    return CacheRequest(dataset, keys, fingerprint, cache_opt.get('format', 'png'), pad)


def check_cache(opt):
    """Raise :class:`TeacherCacheError` unless the cache of ``opt`` exists, matches and is complete."""
    request = cache_request(opt)
    store = open_cache(request.root, request.fingerprint, request.fmt)
    try:
        missing = [key for key in request.keys if not store.has(key)]
    finally:
        store.close()
    if missing:
        raise TeacherCacheError(
            f'datasets.train.dataroot_teacher: the teacher cache in {request.root} lacks {len(missing)} of '
            f'{len(request.keys)} training images (e.g. {missing[0]}); fill it in with "srcomp teacher-cache -opt '
            '<the training option file>"')
    return request
