"""Reading a checkpoint file without running code, with an error that names it.

``torch.load(..., weights_only=True)`` refuses pickled code, but its error for a file that is
no checkpoint at all ends with advice to retry with ``weights_only=False``: the one thing
not to do with a file from the internet. :func:`load_checkpoint` says what the file is not;
:func:`load_state_dict` picks the weights out of a BasicSR checkpoint as BasicSR does. Every
command that reads a checkpoint outside BasicSR's ``load_network`` reads it with these.
"""
import pickle

import torch

from ..errors import SrcompError


class CheckpointReadError(SrcompError, ValueError):
    """A file that is not a readable PyTorch checkpoint; the message names it."""


def load_checkpoint(path, map_location='cpu'):
    """The object stored in ``path`` (tensors, numbers, containers only)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointReadError(f'{path}: not found') from None
    except pickle.UnpicklingError as err:
        # torch's text: "... trusted source. [... WeightsUnpickler error:] <reason> Check the documentation ..."
        text = ' '.join(str(err).split())
        reason = text.split('trusted source.', 1)[-1].split('WeightsUnpickler error:', 1)[-1]
        reason = reason.split('Check the documentation', 1)[0].strip()[:200]
        raise CheckpointReadError(f'{path}: not a PyTorch checkpoint of tensors, or one that holds pickled code, '
                                  f'which is refused ({reason})') from None
    except (EOFError, RuntimeError) as err:
        raise CheckpointReadError(f'{path}: not a readable PyTorch checkpoint (truncated or another format?): '
                                  f'{str(err).splitlines()[0][:160]}') from None


def load_state_dict(path, keys=('params', )):
    """``(state_dict, key)``: the weights of a BasicSR checkpoint and the entry they came from.

    The first of ``keys`` that ``path`` holds (BasicSR saves ``params`` and, with EMA,
    ``params_ema``); a file that is itself a state dict gives key ``None``. The ``module.``
    prefix of DataParallel/DDP weights is stripped, as BasicSR's ``load_network`` does.
    """
    content = load_checkpoint(path)
    if not isinstance(content, dict):
        raise CheckpointReadError(f'{path}: holds a {type(content).__name__}, not a state dict')
    key = next((k for k in keys if isinstance(content.get(k), dict)), None)
    state = content[key] if key is not None else content
    if not state or not all(torch.is_tensor(v) for v in state.values()):
        wanted = ' or '.join(repr(k) for k in dict.fromkeys(keys))
        raise CheckpointReadError(f'{path}: has no {wanted} entry and is no plain state dict (top-level keys: '
                                  f'{sorted(content)[:8]})')
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state.items()}, key
