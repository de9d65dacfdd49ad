"""Shared fixtures: a tiny real dataset from scikit-image photographs and a random teacher.

Their helpers are in ``helpers.py``, with the subprocess runners: every training test goes
through BasicSR's real pipeline (``python -m srcomp_plugin.train``), as a user runs it."""
import pytest

import srcomp_plugin.basicsr_patches
from helpers import HR_SIZE, TRAIN_PHOTOS, VAL_PHOTOS, write_hr_crops

srcomp_plugin.basicsr_patches.install()  # in-process tests run BasicSR as the entry points do


@pytest.fixture(scope='session')
def sr_dataset(tmp_path_factory):
    """Tiny paired datasets (train and a held-out val split of different photos).

    Keys: ``train_gt``, ``train_lq`` (x2), ``val_gt``, ``val_lq`` (x2), and
    ``train_lq_x{s}``/``val_lq_x{s}`` for s in 2, 3, 4, plus ``root``.
    """
    from srcomp_plugin.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp('srdata')
    out = {'root': root}
    for split, names in (('train', TRAIN_PHOTOS), ('val', VAL_PHOTOS)):
        write_hr_crops(root / f'{split}_src', names, HR_SIZE)
        prepare_dataset(root / f'{split}_src', root / split, scales=(2, 3, 4), progress=False)
        out[f'{split}_gt'] = root / split / 'HR'
        for s in (2, 3, 4):
            out[f'{split}_lq_x{s}'] = root / split / 'LR_bicubic' / f'X{s}'
        out[f'{split}_lq'] = out[f'{split}_lq_x2']
    return out


@pytest.fixture(scope='session')
def random_teacher(tmp_path_factory):
    """A randomly initialised EDSR f12b1 x2 checkpoint (``params``): a teacher for KD plumbing tests."""
    import torch

    import srcomp_plugin  # noqa: F401
    from basicsr.archs.edsr_arch import EDSR

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp('random_teacher') / 'teacher.pth'
    torch.save({'params': EDSR(3, 3, num_feat=12, num_block=1, upscale=2).state_dict()}, path)
    return path


@pytest.fixture
def one_thread():
    """Run a test's in-process torch code on one thread (small tensors; less noise)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
