"""Stage 3's distillation loss: MultiLap, a weighted Laplacian-pyramid L1.

Definitions (all from the paper's release, arXiv 2401.00523):

* ``G``: depthwise 5x5 binomial blur, kernel ``outer([1,4,6,4,1]) / 256``, reflect padding 2.
* One pyramid step on ``current``: ``down = avg_pool_2x2(G(current))``,
  ``up = 4 * G(zero_insert_2x(down))`` and the band-pass level is ``current - up``;
  ``down`` becomes the next ``current``. Five levels: four band-pass levels and, last, the
  image reduced four times.
* ``Lap(a, b) = sum_i 2**i * mean|A_i - B_i|`` over the levels ``i = 0..4``.
* ``MultiLap(p, t) = Lap(p - G(p), t - G(t)) + Lap(p, t)``: the first term is the pyramid
  of each image's high-frequency residual, the detail the plain pyramid weights least.

Every step above is linear in the image, so ``A_i - B_i`` is the pyramid of ``a - b``: we
build one pyramid on the difference instead of two (half the work, same value), and
MultiLap's two pyramids run as one over the stacked channels. Blur + pool and
zero-insertion + blur are evaluated as strided (transposed) convolutions, which skip the
discarded and the zero samples: the same values (``tests/test_laplacian_loss.py`` checks
them against a plain NumPy reference), faster on CPU; the difference image is kept in
channels_last memory format, in which oneDNN's depthwise convolutions run faster still
(forward + backward; both measured in ``benchmarks/RESULTS.md``).

Sizes: the four 2x2 reductions need height and width divisible by 16, and the reflect
padding of the coarsest blur needs at least 3 pixels there, so sizes must be multiples of
16 and at least 32 (``2 ** (num_levels - 1)`` and twice that in general). Other sizes are
rejected with a message naming the size needed, rather than silently cropped or padded:
an SR training patch (``gt_size``) is chosen by the user, and 96, 128, 192 and 256 all fit.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from ..errors import OptionError

_BINOMIAL = (1., 4., 6., 4., 1.)


def binomial_kernel_5x5(dtype=torch.float32):
    """``outer([1,4,6,4,1], [1,4,6,4,1]) / 256``: a 5x5 kernel summing to 1."""
    k = torch.tensor(_BINOMIAL, dtype=dtype)
    return torch.outer(k, k) / 256.


class _LaplacianPyramidL1(nn.Module):
    """Shared machinery: the blur, the pyramid of a difference image and its weighted L1."""

    def __init__(self, loss_weight=1.0, num_levels=5):
        super().__init__()
        if num_levels < 1:
            raise OptionError(f'num_levels must be at least 1, got {num_levels}')
        self.loss_weight = loss_weight
        self.num_levels = num_levels
        # Not persistent: the kernel is a constant, not a learned or checkpointed value.
        kernel = binomial_kernel_5x5()
        self.register_buffer('kernel', kernel, persistent=False)
        box = torch.full((1, 1, 2, 2), 0.25)
        self.register_buffer('kernel6', F.conv_transpose2d(kernel[None, None], box)[0, 0], persistent=False)

    @property
    def size_multiple(self):
        """Height and width must be multiples of this (16 for five levels)."""
        return 2**(self.num_levels - 1)

    def _check_size(self, pred, target):
        if pred.shape != target.shape:
            raise OptionError(f'{type(self).__name__}: prediction {tuple(pred.shape)} and target '
                              f'{tuple(target.shape)} must have the same shape')
        if pred.dim() != 4:
            raise OptionError(f'{type(self).__name__} expects NxCxHxW images, got shape {tuple(pred.shape)}')
        h, w = pred.shape[-2:]
        mult = self.size_multiple
        least = 2 * mult if self.num_levels > 1 else 3
        if h % mult or w % mult or h < least or w < least:
            raise OptionError(f'{type(self).__name__} with {self.num_levels} pyramid levels needs height and width '
                              f'that are multiples of {mult} and at least {least}; got {h}x{w}. For training '
                              f'patches set datasets.train.gt_size to such a size (e.g. 96 or 128).')

    def _blur(self, x):
        """``G``: depthwise 5x5 binomial blur with reflect padding 2 (any channel count)."""
        c = x.shape[1]
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode='reflect'), self.kernel.to(x.dtype).expand(c, 1, 5, 5), groups=c)

    def _reduce(self, x):
        """``avg_pool_2x2(G(x))``, as one stride-2 convolution.

        Blurring then averaging 2x2 blocks is a single 6x6 kernel (the 5x5 kernel convolved
        with the 2x2 box) evaluated at every other pixel: a quarter of the work of
        blurring at full resolution.
        """
        c = x.shape[1]
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode='reflect'), self.kernel6.to(x.dtype).expand(c, 1, 6, 6),
                        stride=2, groups=c)

    def _expand(self, x):
        """``4 * G(zero_insert_2x(x))``, as a stride-2 transposed convolution.

        Reflect-padding the zero-inserted image by 2 puts ``x[1]`` before the first sample
        and repeats ``x[-1]`` after the last one (its odd, zero positions reflect onto zeros),
        so padding ``x`` that way by one sample and applying the transposed convolution
        gives the same values without multiplying the inserted zeros.
        """
        n, c, h, w = x.shape
        x = torch.cat([x[..., 1:2, :], x, x[..., -1:, :]], dim=2)
        x = torch.cat([x[..., 1:2], x, x[..., -1:]], dim=3)
        up = F.conv_transpose2d(x, (4 * self.kernel.to(x.dtype)).expand(c, 1, 5, 5), stride=2, groups=c)
        return up[..., 4:4 + 2 * h, 4:4 + 2 * w]

    def forward(self, pred, target, weight=None, **kwargs):
        if weight is not None:
            raise OptionError(f'{type(self).__name__} does not support per-pixel weights')
        self._check_size(pred, target)
        # channels_last: oneDNN's depthwise (grouped) convolutions, forward and backward, are
        # faster in that layout on CPU (measured in benchmarks/RESULTS.md); same values.
        return self.loss_weight * self._loss((pred - target).contiguous(memory_format=torch.channels_last))

    def _loss(self, diff):
        """The unweighted loss of the difference image ``pred - target`` (linear pyramid)."""
        raise NotImplementedError

    def _pyramid_l1(self, diff):
        """``sum_i 2**i * mean|level_i(diff)|``, the pyramid term of a difference image."""
        total = diff.new_zeros(())
        current = diff
        for i in range(self.num_levels - 1):
            down = self._reduce(current)
            total = total + 2**i * (current - self._expand(down)).abs().mean()
            current = down
        return total + 2**(self.num_levels - 1) * current.abs().mean()


@LOSS_REGISTRY.register()
class LaplacianLoss(_LaplacianPyramidL1):
    """``loss_weight * Lap(pred, target)``: the pyramid term alone (for ablations).

    Args:
        loss_weight (float): multiplies the loss. Default 1.0.
        num_levels (int): pyramid levels, the last being the reduced image. Default 5.
    """

    def _loss(self, diff):
        return self._pyramid_l1(diff)


@LOSS_REGISTRY.register()
class MultiLapLoss(_LaplacianPyramidL1):
    """``loss_weight * (Lap(p - G(p), t - G(t)) + Lap(p, t))``, the paper's distillation loss.

    Args:
        loss_weight (float): multiplies the loss. Default 1.0.
        num_levels (int): pyramid levels, the last being the reduced image. Default 5.
    """

    def _loss(self, diff):
        high_pass = diff - self._blur(diff)
        # Both pyramids in one pass over twice the channels: each level's mean over the
        # stack is the average of the two means (equal sizes), hence the factor 2.
        return 2 * self._pyramid_l1(torch.cat([high_pass, diff], dim=1))
