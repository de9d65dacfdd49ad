"""Reading a checkpoint file without running code, with an error that names it.

``torch.load(..., weights_only=True)`` refuses pickled code, but its error for a file that is
no checkpoint at all ends with advice to retry with ``weights_only=False``: the one thing
not to do with a file from the internet. :func:`load_checkpoint` says what the file is not;
:func:`load_state_dict` picks the weights out of a BasicSR checkpoint as BasicSR does;
:func:`load_weights` puts them into a network, and is the one place that explains why a
``pretrain_network_*`` does not load (the models' ``load_network`` and the teacher use it).
Every checkpoint the plugin reads is read with these.
"""
import os
import pickle

import torch

from ..errors import InputFileError, SrcompError


class CheckpointReadError(SrcompError, ValueError):
    """A file that is not a readable PyTorch checkpoint; the message names it."""


class CheckpointLoadError(SrcompError, RuntimeError):
    """A pretrained checkpoint that does not load into its network; the message says which option to fix."""


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
    return state_dict_of(load_checkpoint(path), path, keys)


def state_dict_of(content, path, keys=('params', )):
    """:func:`load_state_dict` of an already loaded checkpoint ``content`` (``path`` names it in errors)."""
    if not isinstance(content, dict):
        raise CheckpointReadError(f'{path}: holds a {type(content).__name__}, not a state dict')
    key = next((k for k in keys if isinstance(content.get(k), dict)), None)
    state = content[key] if key is not None else content
    if not state or not all(torch.is_tensor(v) for v in state.values()):
        wanted = ' or '.join(repr(k) for k in dict.fromkeys(keys))
        raise CheckpointReadError(f'{path}: has no {wanted} entry and is no plain state dict (top-level keys: '
                                  f'{sorted(content)[:8]})')
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state.items()}, key


def load_weights(net, path, param_key='params', strict=True, which='g', logger=None):
    """Load ``path`` into ``net`` as BasicSR's ``load_network`` does, for ``path.pretrain_network_<which>``.

    Same choices as BasicSR (``param_key``, falling back to ``params``; ``None`` for a bare state
    dict; ``module.`` stripped; with ``strict`` false, tensors of another shape are left out
    and logged), read with ``weights_only=True``. Returns the entry the weights came from.
    A failure is a :class:`CheckpointLoadError` naming the option, the file and the fix.
    """
    option = f'path.pretrain_network_{which}'
    if not os.path.isfile(path):
        raise InputFileError(f'{option}: checkpoint {path} does not exist')
    try:
        content = load_checkpoint(path)
    except CheckpointReadError as err:
        reason = str(err).removeprefix(f'{path}: ')  # the message names the file once
        raise CheckpointLoadError(f'{option}: {path} is not a readable PyTorch checkpoint: {reason}') from None
    try:
        state, key = state_dict_of(content, path, (param_key, 'params') if param_key else ())
    except CheckpointReadError as err:
        if not isinstance(content, dict):
            raise CheckpointLoadError(f'{option}: {err}') from None
        raise CheckpointLoadError(
            f'{option}: {path} has no "{param_key}" entry (top-level keys: {sorted(content)[:8]}). Set '
            f'path.param_key_{which} to the entry that holds the state dict (~ for a bare state dict).') from None
    if not strict:
        own = net.state_dict()
        other_shape = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
        if other_shape and logger is not None:
            logger.warning(f'{option}: left out {len(other_shape)} tensors of another shape: {other_shape[:8]}')
        state = {k: v for k, v in state.items() if k not in other_shape}
    try:
        net.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise CheckpointLoadError(
            f'{option}: {path} does not fit the {type(net).__name__} built from network_{which}: '
            f'{str(err).splitlines()[0]} ... Check network_{which} (channels, blocks, scale) against the checkpoint, '
            f'path.param_key_{which} (now {param_key!r}), or set path.strict_load_{which}: false to load only the '
            'matching tensors.') from err
    if logger is not None:
        logger.info(f'Loading {type(net).__name__} model from {path}, with param key: [{key}].')
    return key
