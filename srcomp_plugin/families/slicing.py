"""Index helpers shared by the families' slicers: L1 mass per channel, top-k, slices, masks.

Everything a slicer keeps is chosen by L1 mass of the (sparse) teacher's weights, and every
tensor that shares an index space is sliced with the same indices.
"""
import torch

from ..errors import CompressError


def mass(tensor, dim):
    """L1 mass per index of ``dim`` (summed over every other dim)."""
    t = tensor.detach().abs().double()
    dims = [d for d in range(t.dim()) if d != dim]
    return t.sum(dim=dims) if dims else t


def top_indices(values, k):
    """Indices of the ``k`` largest entries, in increasing index order (ties: lower index first)."""
    n = values.numel()
    if k > n:
        raise CompressError(f'cannot keep {k} of {n} channels/units: the student is larger than the teacher here')
    order = sorted(range(n), key=lambda i: (-float(values[i]), i))[:k]
    return torch.tensor(sorted(order), dtype=torch.long)


def take(tensor, rows=None, cols=None):
    """``tensor`` restricted to ``rows`` (dim 0) and ``cols`` (dim 1), contiguous."""
    if rows is not None:
        tensor = tensor.index_select(0, rows)
    if cols is not None:
        tensor = tensor.index_select(1, cols)
    return tensor.detach().clone().contiguous()


def groups_of(groups, size):
    """Channel indices of whole groups: group g -> g*size .. g*size+size-1 (PixelShuffle's layout)."""
    return (groups[:, None] * size + torch.arange(size)[None, :]).reshape(-1)


def group_mass(values, size):
    """Mass per group of ``size`` consecutive channels."""
    return values.reshape(-1, size).sum(dim=1)


def dropped(shape, rows=None, cols=None):
    """Boolean mask of ``shape``: False on the kept ``rows`` (dim 0) x ``cols`` (dim 1), True elsewhere."""
    keep = torch.ones(shape, dtype=torch.bool)
    for dim, index in ((0, rows), (1, cols)):
        if index is not None:
            kept = torch.zeros(shape[dim], dtype=torch.bool)
            kept[torch.as_tensor(index, dtype=torch.long)] = True
            keep &= kept.view([-1 if d == dim else 1 for d in range(len(shape))])
    return ~keep
