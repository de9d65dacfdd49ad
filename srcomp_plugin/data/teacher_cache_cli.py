"""``srcomp teacher-cache -opt OPT.yml``: run the teacher once over the training set and store its outputs.

Run it before training with ``train.teacher_cache`` set (``DistillSRModel`` checks the cache
and refuses an incomplete one). It reads the training option file's ``network_t``,
``path.pretrain_network_t``/``param_key_t``/``strict_load_t``, ``scale``,
``datasets.train`` (a ``DistillPairedImageDataset`` whose ``dataroot_teacher`` is the cache
folder) and ``train.teacher_cache`` (``format``: png or lmdb; ``pad_multiple``). Entries
already there are kept: an interrupted run continues where it stopped. A cache made from
another teacher, network or training set is refused, never mixed.
"""
import argparse
import logging

import torch

from basicsr.utils import get_root_logger

from ..models.frozen_teacher import build_teacher
from ..utils.safe_yaml import read_options
from .teacher_cache import fill_cache, open_cache
from .teacher_cache_request import cache_request


def fill_teacher_cache(opt, device, logger=None):
    """Fill the cache of the option dict ``opt``; ``(computed, total)`` entries."""
    request = cache_request(opt)
    net_t = build_teacher(opt, device, logger)
    store = open_cache(request.root, request.fingerprint, request.fmt, create=True)
    try:
        computed = fill_cache(store, net_t, request.dataset, opt['scale'], device, request.pad_multiple, logger)
    finally:
        store.close()
    return computed, len(request.keys)


def _parser():
    parser = argparse.ArgumentParser(
        prog='srcomp teacher-cache',
        description="Store the teacher's SR image of every training image (train.teacher_cache), once.")
    parser.add_argument('-opt', required=True, help='the stage-3 (distillation) training option file')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='where the teacher runs (default: cuda when available, else cpu)')
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    opt = read_options(args.opt)
    logger = get_root_logger()
    logger.setLevel(logging.INFO)  # BasicSR's root logger is at INFO only once a log file is given
    computed, total = fill_teacher_cache(opt, torch.device(args.device), logger)
    request_root = opt['datasets']['train']['dataroot_teacher']
    print(f'teacher cache {request_root}: {computed} computed, {total - computed} already there, {total} in all')
    return 0
