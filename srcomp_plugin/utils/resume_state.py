"""Reading a BasicSR training state (``training_states/<iter>.state``) without running code.

A ``.state`` is a pickle. BasicSR 1.4.2 unpickles it with torch's old default (any object,
so a crafted file runs code); torch >= 2.6 defaults to ``weights_only=True``, which in turn
refuses the numpy random-generator state that exact resume stores. We load with
``weights_only=True`` and allow exactly the numpy types that state holds (a plain
``uint32`` array), nothing else.

``--auto_resume`` takes the newest state that can be read: a truncated or refused newest
file (a run killed while writing it, a tampered file) is named in a warning, left where it
is, and the previous state is used. An explicit ``path.resume_state`` that cannot be read
is an error naming the file.

:func:`check_resume` is BasicSR's, except for networks that a run reads but never saves.
"""
import os
import pickle
import sys

import numpy as np
import torch

from ..errors import SrcompError

# What np.random.get_state() pickles to; numpy 2 moved _reconstruct to numpy._core.
_NUMPY_GLOBALS = [np._core.multiarray._reconstruct if hasattr(np, '_core') else np.core.multiarray._reconstruct,
                  np.ndarray, np.dtype, type(np.dtype(np.uint32))]


class ResumeStateError(SrcompError, RuntimeError):
    """A training state that cannot be read safely; the message names the file."""


def load_state(path, map_location='cpu'):
    """Unpickle one ``.state`` with ``weights_only=True`` (tensors, numbers, containers, numpy arrays)."""
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ResumeStateError(
            f'{path}: refused to unpickle it: a training state holds only tensors, numbers and numpy arrays, '
            f'this file asks for more ({str(err).splitlines()[0][:200]}). It was not written by BasicSR or srcomp, '
            'or it was altered; do not load it with weights_only=False unless you trust its source.') from err
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        raise ResumeStateError(f'{path}: not a readable training state (truncated or corrupt?): '
                               f'{type(err).__name__}: {err}') from err
    if not isinstance(state, dict) or 'iter' not in state:
        raise ResumeStateError(f'{path}: not a BasicSR training state (no "iter" entry)')
    return state


def newest_readable_state(state_dir, map_location='cpu'):
    """``(path, state)`` of the newest readable ``<iter>.state`` in ``state_dir``; ``(None, None)`` if it has none.

    Raises :class:`ResumeStateError` when there are states but none can be read.
    """
    names = [n for n in os.listdir(state_dir) if n.endswith('.state') and n[:-len('.state')].isdigit()]
    errors = []
    for name in sorted(names, key=lambda n: int(n[:-len('.state')]), reverse=True):
        path = os.path.join(state_dir, name)
        try:
            return path, load_state(path, map_location)
        except ResumeStateError as err:
            # printed, not logged: BasicSR starts its logger only after choosing the state
            print(f'warning: --auto_resume skips {path} (kept as it is): {err}', file=sys.stderr, flush=True)
            errors.append(str(err))
    if errors:  # starting over would archive the run that these states belong to
        raise ResumeStateError(f'--auto_resume: no readable training state in {state_dir}:\n' + '\n'.join(errors))
    return None, None


# Networks a run reads but never writes under models/ (DistillSRModel's teacher).
INPUT_NETWORKS = ('network_t', )


def check_resume(opt, resume_iter):
    """BasicSR's ``check_resume``, keeping the path and param key of :data:`INPUT_NETWORKS`.

    BasicSR assumes every ``network_*`` is trained: on resume it points each
    ``path.pretrain_network_*`` at ``models/net_*_<iter>.pth`` and turns every
    ``param_key_*: params_ema`` into ``params`` (the resumed net_g's EMA copy is rebuilt from
    its training state). A teacher is an input, never saved there: it is listed in BasicSR's
    own opt-out, ``path.ignore_resume_networks``, and its param key is put back, so a resumed
    run distils from the same weights (``params_ema`` stays ``params_ema``).
    """
    from basicsr.utils import check_resume as basicsr_check_resume

    path_opt = opt['path']
    inputs = [name for name in INPUT_NETWORKS if name in opt]
    ignored = list(path_opt.get('ignore_resume_networks') or [])
    path_opt['ignore_resume_networks'] = ignored + [name for name in inputs if name not in ignored]
    keys = [f'param_key_{name[len("network_"):]}' for name in inputs]
    kept = {key: path_opt[key] for key in keys if key in path_opt}
    basicsr_check_resume(opt, resume_iter)
    path_opt.update(kept)
