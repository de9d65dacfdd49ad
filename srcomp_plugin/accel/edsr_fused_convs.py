"""Fused channels_last convolutions for BasicSR's EDSR on CPU: same weights, same output to float rounding.

Why: BasicSR's EDSR runs every convolution in PyTorch's default NCHW layout and applies
ReLU, the residual scale and the residual add as separate passes over the feature maps.
For the 16-channel EDSRmini that wastes most of the CPU time: oneDNN reaches ~9 GMAC/s on
the 3-channel first convolution and ~30 GMAC/s on the 16-channel ones in NCHW, against
~80-100 GMAC/s in channels_last (measured at 360x640, 2 threads; ``benchmarks/RESULTS.md``),
and each elementwise pass costs as much memory traffic as a 16-channel convolution's input.

What :class:`FusedEDSR` does at inference (eval, no autograd, float32 CPU; see
:func:`.onednn_fusion.can_fuse_for_inference`):

* the normalised input is converted to channels_last once, and every convolution runs
  oneDNN's fused kernel ``torch.ops.mkldnn._convolution_pointwise`` in that layout;
* in each residual block, ``conv1 + ReLU`` is one kernel and ``conv2 * res_scale +
  identity`` is another (the residual scale multiplies ``conv2``'s weight and bias, which
  is the same linear map); ``conv_after_body + skip`` likewise;
* the output de-normalisation ``x / img_range + mean`` is folded into ``conv_last``'s
  weight and bias, and the result is returned as an ordinary contiguous NCHW tensor.

Everywhere else on CPU (training, autograd, hooks on the convolutions, MAC counting
with ``FlopCounterMode``, autocast) BasicSR's own modules run, but on a channels_last input:
the same layers and autograd graph, a faster EDSRmini training step (forward + backward;
``benchmarks/RESULTS.md``), output returned contiguous.
Under ``torch.jit.trace`` (export), on GPU, or with ``fused_convs`` off, BasicSR's forward
runs unchanged. Nothing derived from the parameters is cached: the scaled weights are
recomputed each call (microseconds), since training and BasicSR's EMA update parameters
in place.
"""
import torch
import torch.nn.functional as F
from basicsr.archs.arch_util import ResidualBlockNoBN
from basicsr.archs.edsr_arch import EDSR
from torch import nn

from .onednn_fusion import CONV_POINTWISE, can_fuse_for_inference


def _conv(x, conv, unary='none', weight=None, bias=None):
    weight = conv.weight if weight is None else weight
    bias = conv.bias if bias is None else bias
    return CONV_POINTWISE(x, weight, bias, conv.padding, conv.stride, conv.dilation, conv.groups, unary, [], '')


def _conv_add(x, other, conv, scale=1.0):
    """``conv(x) * scale + other`` in one kernel (the scale is folded into the weights)."""
    weight, bias = conv.weight, conv.bias
    if scale != 1:
        weight, bias = weight * scale, bias * scale
    return CONV_POINTWISE.binary(x, other, weight, bias, conv.padding, conv.stride, conv.dilation, conv.groups,
                                 'add', None, None, [], None)


class FusedEDSR(EDSR):
    """BasicSR's ``EDSR`` running fused channels_last convolutions on CPU (module docstring).

    Same parameters, buffers and state-dict keys as ``EDSR``. ``fused_convs`` (True by
    default) switches the fused path off without changing the class.
    """

    fused_convs = True

    def forward(self, x):
        if not self.fused_convs or torch.jit.is_tracing() or x.device.type != 'cpu':
            return super().forward(x)
        if self._can_fuse(x):
            return self._forward_fused(x)
        # BasicSR's modules (autograd, hooks and MAC counters see every layer), in the
        # layout oneDNN's CPU convolutions and their backward are fastest in.
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()

    def _can_fuse(self, x):
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        plain = (all(type(m) in (nn.Conv2d, nn.PixelShuffle) for m in self.upsample)
                 and all(type(block) is ResidualBlockNoBN for block in self.body))
        return (plain and all(conv.bias is not None for conv in convs)
                and can_fuse_for_inference(CONV_POINTWISE, x, self, convs + list(self.body)))

    def _forward_fused(self, x):
        mean = self.mean.to(x)
        x = ((x - mean) * self.img_range).contiguous(memory_format=torch.channels_last)
        x = skip = _conv(x, self.conv_first)
        for block in self.body:
            x = _conv_add(_conv(x, block.conv1, 'relu'), x, block.conv2, block.res_scale)
        x = _conv_add(x, skip, self.conv_after_body)
        for layer in self.upsample:
            x = _conv(x, layer) if isinstance(layer, nn.Conv2d) else F.pixel_shuffle(x, layer.upscale_factor)
        last = self.conv_last
        x = _conv(x, last, weight=last.weight / self.img_range, bias=last.bias / self.img_range + mean.view(-1))
        return x.contiguous()


def use_fused_convs(model):
    """Run every BasicSR ``EDSR`` in ``model`` through the fused path, in place; returns ``model``.

    Works on any module tree (an ``EDSR``, a distillation model's teacher). Only the class
    of exact ``EDSR`` instances changes (subclasses, someone else's override, are left
    alone); ``FusedEDSR`` instances (``EDSRmini`` included) get ``fused_convs = True``.
    """
    for module in model.modules():
        if type(module) is EDSR:
            module.__class__ = FusedEDSR
        if isinstance(module, FusedEDSR):
            module.fused_convs = True
    return model


def use_eager_convs(model):
    """BasicSR's own EDSR forward for every EDSR in ``model`` (undoes :func:`use_fused_convs`)."""
    for module in model.modules():
        if isinstance(module, FusedEDSR):
            module.fused_convs = False
    return model
