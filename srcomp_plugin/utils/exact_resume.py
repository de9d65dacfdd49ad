"""Bit-exact ``--auto_resume`` for BasicSR's iteration-based training loop.

BasicSR 1.4.2 resumes at the *start* of the epoch that was running when the checkpoint
was written (``resume_state['epoch']``): the batches of that epoch are replayed, and the
random crops/flips start from a fresh seed. A resumed run therefore sees different data
than an uninterrupted one. We fix both without touching BasicSR's loop:

* :class:`ResumableSampler` replaces ``basicsr.train.EnlargedSampler`` (same order, same
  ``set_epoch`` semantics) and can skip the first ``k`` samples of the first epoch it
  iterates after a resume, and restore the random generators at that exact point;
* models using :class:`~srcomp_plugin.models.checkpoint_safety.CheckpointSafetyMixin`
  store ``{'epoch': next epoch, 'batches_done': k, 'rng': ...}`` in the training state and
  hand them to the sampler in ``resume_training``.

With ``num_worker_per_gpu: 0`` the resumed run is bit-identical to an uninterrupted one on
the CPU. With worker processes the data order is still exact, but BasicSR seeds workers
identically at every epoch start, so augmentations of the resumed epoch can differ.
"""
import random

import numpy as np
import torch
from basicsr.data.data_sampler import EnlargedSampler

_train_samplers = []


class ResumableSampler(EnlargedSampler):
    """``EnlargedSampler`` that can continue an epoch from the middle after a resume."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._skip = 0
        self._rng = None
        _train_samplers.append(self)

    def resume_from(self, skip_samples, rng_state):
        """Skip ``skip_samples`` indices of the next epoch and restore ``rng_state`` there."""
        self._skip = int(skip_samples)
        self._rng = rng_state

    def __iter__(self):
        indices = list(super().__iter__())
        skip, rng = self._skip, self._rng
        self._skip, self._rng = 0, None
        if rng is not None:
            # The uninterrupted run was exactly here (iterator created, next batch not yet
            # sampled) when the checkpoint was written.
            set_rng_state(rng)
        yield from indices[skip:]


def latest_train_sampler():
    """The train sampler of this process's current BasicSR run, or None."""
    return _train_samplers[-1] if _train_samplers else None


def get_rng_state():
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore :func:`get_rng_state`'s state; its tensors may have been mapped to the GPU on loading."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())  # generators take CPU byte tensors only
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def install():
    """Make BasicSR's ``train_pipeline`` build :class:`ResumableSampler` for training."""
    import basicsr.train as bsr_train

    bsr_train.EnlargedSampler = ResumableSampler
