"""Checks on a BasicSR option file before ``parse_options`` acts on it.

BasicSR indexes the option dict directly: a missing ``datasets`` or ``network_g`` is a
``KeyError`` traceback, ``scale: "2"`` fails deep inside a dataset, ``total_iter: 0`` trains
nothing and still saves ``net_g_latest.pth``, and ``name`` is joined into paths unchecked,
so ``name: /some/dir`` archives that directory and writes in its place. The entry points
(``srcomp_plugin.train``/``.test``) check the file first, and a training set that gives no
full batch once it is parsed (:mod:`.training_length`), and stop with one line naming the
file and the option; nothing is created before that.
"""
import argparse
import os
import re
import sys

from . import experiment_lock
from .safe_yaml import OptionFileError, load_options
from .training_length import check_trainable

REQUIRED = ('name', 'model_type', 'scale', 'num_gpu', 'network_g', 'path', 'datasets')


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_name(name, where):
    """``name`` must be one path component: it becomes ``experiments/<name>`` and ``results/<name>``."""
    if not isinstance(name, str) or not name.strip():
        raise OptionFileError(f'{where}: name must be a non-empty string, got {name!r}')
    if name in ('.', '..') or os.sep in name or (os.altsep and os.altsep in name) or os.path.isabs(name):
        raise OptionFileError(f'{where}: name {name!r} must be a single folder name (no "/", "..", or absolute '
                              'path): runs are written to experiments/<name> and results/<name>')


def check_options(opt, where, is_train):
    """Raise :class:`OptionFileError` for the first problem in the option dict ``opt`` read from ``where``."""
    if not isinstance(opt, dict):
        raise OptionFileError(f'{where}: an option file is a mapping of keys (name, model_type, ...), got '
                              f'{type(opt).__name__}')
    missing = [key for key in REQUIRED if key not in opt]
    if missing:
        raise OptionFileError(f'{where}: missing top-level option(s) {", ".join(missing)} (see the option files '
                              'in options/ for complete examples)')
    check_name(opt['name'], where)
    if not _is_int(opt['scale']) or opt['scale'] < 1:
        raise OptionFileError(f'{where}: scale must be a positive integer (2, 3 or 4), got {opt["scale"]!r}'
                              + (' (quoted: remove the quotes)' if isinstance(opt['scale'], str) else ''))
    for key in ('network_g', 'path', 'datasets'):
        if not isinstance(opt[key], dict) or (key != 'path' and not opt[key]):
            raise OptionFileError(f'{where}: {key} must be a non-empty mapping, got {opt[key]!r}')
    for phase, dataset in opt['datasets'].items():
        if not isinstance(dataset, dict):
            raise OptionFileError(f'{where}: datasets.{phase} must be a mapping, got {dataset!r}')
    if is_train:
        if 'train' not in opt['datasets']:
            raise OptionFileError(f'{where}: datasets.train is missing: training needs a training set')
        train = opt.get('train')
        total = train.get('total_iter') if isinstance(train, dict) else None
        if not _is_int(total) or total < 1:
            raise OptionFileError(f'{where}: train.total_iter must be a positive integer, got {total!r}: a run '
                                  'that trains no iteration would still save net_g_latest.pth')


def checked(parse_options):
    """Wrap BasicSR's ``parse_options``: check the ``-opt`` file first, and the final name after it."""

    def parse_checked_options(root_path, is_train=True):
        # torch.distributed.launch (BasicSR's dist_train.sh) passes --local-rank=N since torch 2.0;
        # BasicSR's parser knows only --local_rank
        sys.argv = [re.sub(r'^--local-rank(?==|$)', '--local_rank', a) for a in sys.argv]
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument('-opt')
        known, _ = parser.parse_known_args()
        if known.opt:  # without it BasicSR's own parser prints its usage
            if not os.path.isfile(known.opt):
                raise OptionFileError(f'-opt {known.opt}: no such file')
            check_options(load_options(known.opt), known.opt, is_train)
        opt, args = parse_options(root_path, is_train)
        check_name(opt['name'], f'{known.opt} (after --force_yml/--debug)')
        if is_train:
            check_trainable(opt, known.opt)
            if opt['rank'] == 0:  # one writer per experiment folder, taken before BasicSR makes or archives it
                experiment_lock.acquire(root_path, opt['name'])
        return opt, args

    return parse_checked_options


def install():
    """Check option files in BasicSR's train and test pipelines (their own references to ``parse_options``)."""
    import basicsr.test as bsr_test
    import basicsr.train as bsr_train
    import basicsr.utils.options as bsr_options

    for module in (bsr_train, bsr_test):
        if getattr(module.parse_options, '__name__', '') != 'parse_checked_options':
            module.parse_options = checked(bsr_options.parse_options)
