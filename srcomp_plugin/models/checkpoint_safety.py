"""Checkpoints that survive kills, full disks and diverging runs.

A mixin for our BasicSR models (put it before ``SRModel`` in the bases). It changes how
checkpoints are written, not what they contain (``net_g_{iter}.pth`` with ``params`` /
``params_ema``; ``training_states/{iter}.state``), because BasicSR's ``save_network`` and
``save_training_state``:

* write in place, so a kill during ``torch.save`` leaves a truncated ``.pth``/``.state``
  that ``--auto_resume`` picks up and fails on: we write ``<file>.tmp`` and ``os.replace``
  it (atomic on POSIX), so the newest ``*.state`` is always complete;
* swallow write errors ("Just ignore it."): a full disk silently stops checkpointing. We
  raise an ``OSError`` naming the file, after removing the partial temp file; the previous
  checkpoints stay intact;
* happily save NaN weights over good ones: we refuse to save non-finite weights, and stop
  training at the first non-finite loss, naming the iteration and the last good state;
* resume at the start of the interrupted epoch: we also store the data position and the
  random generators so that ``--auto_resume`` continues bit-exactly
  (:mod:`srcomp_plugin.utils.exact_resume`).

Reading is checked too: a missing, corrupt or mismatching ``pretrain_network_g`` gives a
``CheckpointLoadError`` naming the option, the file, the keys found and the fix
(``param_key_g`` or ``strict_load_g``), instead of BasicSR's bare ``KeyError``/``RuntimeError``
(:func:`srcomp_plugin.utils.checkpoint_io.load_weights`).
"""
import math
import os

import torch
import torch.distributed as dist

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info

from ..errors import SrcompError
from ..utils.checkpoint_io import load_weights
from ..utils.exact_resume import get_rng_state, latest_train_sampler, set_rng_state


class NonFiniteError(SrcompError, FloatingPointError):
    """Training produced a NaN/inf loss or weights; the message says where to resume from."""


def atomic_torch_save(obj, path):
    """``torch.save`` to ``path`` via a temp file and ``os.replace``; raise a clear OSError on failure."""
    tmp = f'{path}.tmp'
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(f'could not write checkpoint {path}: {err} (disk full or not writable?); '
                      'the previous checkpoints are untouched') from err


class CheckpointSafetyMixin:
    """Atomic, finite, exactly-resumable checkpoints for SRModel subclasses."""

    def load_network(self, net, load_path, strict=True, param_key='params'):
        # BasicSR's choices (param key fallback, ``module.``), weights_only reading, explained errors
        load_weights(self.get_bare_model(net), load_path, param_key, strict, 'g', get_root_logger())

    def _all_finite(self, net):
        return all(torch.isfinite(p).all() for p in self.get_bare_model(net).parameters())

    def _last_state(self):
        folder = self.opt['path'].get('training_states')
        if not folder or not os.path.isdir(folder):
            return None
        iters = [int(f[:-6]) for f in os.listdir(folder) if f.endswith('.state') and f[:-6].isdigit()]
        return os.path.join(folder, f'{max(iters)}.state') if iters else None

    def _stop_non_finite(self, what, current_iter):
        last = self._last_state()
        hint = (f'the last good state is {last}: lower the learning rate or check the data, then resume with '
                f'--auto_resume' if last else 'no checkpoint was written yet')
        raise NonFiniteError(f'{what} at iteration {current_iter}; training stopped and nothing was saved over '
                             f'the existing checkpoints; {hint}.')

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        self._current_iter = current_iter  # BasicSR calls this once per iteration, before the step
        super().update_learning_rate(current_iter, warmup_iter)

    def reduce_loss_dict(self, loss_dict):
        # Every model's optimize_parameters ends with this call, so one check covers them all.
        log_dict = super().reduce_loss_dict(loss_dict)
        bad = [k for k, v in log_dict.items() if not math.isfinite(v)]
        if bad:
            self._stop_non_finite(f'non-finite loss ({", ".join(f"{k}={log_dict[k]}" for k in bad)})',
                                  getattr(self, '_current_iter', '?'))
        return log_dict

    def save(self, epoch, current_iter):
        nets = [self.net_g] + ([self.net_g_ema] if hasattr(self, 'net_g_ema') else [])
        if not all(self._all_finite(n) for n in nets):
            self._stop_non_finite('non-finite weights', current_iter)
        self._resume_rng = self._gather_rng_states()
        super().save(epoch, current_iter)

    def _gather_rng_states(self):
        """Every rank's random generators (collective under DDP; rank 0 writes them)."""
        state = get_rng_state()
        if self.opt.get('dist') and dist.is_initialized():
            states = [None] * dist.get_world_size()
            dist.all_gather_object(states, state)
            return states
        return [state]

    # -------------------------------------------------------------- writing
    def save_network(self, net, net_label, current_iter, param_key='params'):
        if get_dist_info()[0] != 0:
            return
        label = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        save_dict = {}
        for net_, key in zip(nets, keys):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[key] = {k[7:] if k.startswith('module.') else k: v.cpu() for k, v in state_dict.items()}
        atomic_torch_save(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    def save_training_state(self, epoch, current_iter):
        if get_dist_info()[0] != 0 or current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        sampler = latest_train_sampler()
        if sampler is not None:
            per_epoch = len(sampler) // self.opt['datasets']['train']['batch_size_per_gpu']
            # The epoch that iteration current_iter + 1 belongs to, and how far into it we are.
            state['epoch'] = current_iter // per_epoch
            state['srcomp_resume'] = {'batches_done': current_iter % per_epoch, 'iters_per_epoch': per_epoch,
                                      'rng': getattr(self, '_resume_rng', None)}
        atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    # -------------------------------------------------------------- resuming
    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        extra = resume_state.get('srcomp_resume')
        if not extra:
            return
        rank = get_dist_info()[0]
        rng = extra['rng'][rank] if extra.get('rng') and rank < len(extra['rng']) else None
        sampler = latest_train_sampler()
        if sampler is None or len(sampler) // self.opt['datasets']['train']['batch_size_per_gpu'] != \
                extra['iters_per_epoch']:
            get_root_logger().warning('Resume: the training set or batch size changed; continuing from the start '
                                      'of the epoch (BasicSR behaviour), so the run is not an exact continuation.')
            return
        batch = self.opt['datasets']['train']['batch_size_per_gpu']
        if extra['batches_done'] == 0:
            if rng is not None:
                set_rng_state(rng)
        else:
            sampler.resume_from(extra['batches_done'] * batch, rng)
