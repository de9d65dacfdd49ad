"""Reading a checkpoint file without running code, with an error that names it.

``torch.load(..., weights_only=True)`` refuses pickled code, but its error for a file that is
no checkpoint at all ends with advice to retry with ``weights_only=False``: the one thing
not to do with a file from the internet. :func:`load_checkpoint` says what the file is not.
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
