"""Input sizes: the LR image a measurement (or an export) feeds a network, and ``HxW`` sizes as typed.

Kept apart from the counters because every consumer must agree on it: the MACs, the
latency, ``srcomp export``'s traced sizes and the benchmarks all derive the LR input the
same way. The LR input of a ``H x W`` output is ``(H // s) x (W // s)`` (BasicSR mod-crops
the HR image to a multiple of the scale, so a 720p frame at x3 has a 240 x 426 LR image
and a 720 x 1278 output); for window attention the LR input is padded up to a multiple of
the window, as SwinIR must be run (240 x 426 -> 240 x 432).
"""
import argparse
import math

from torch import nn

from ..errors import ProfileError

OUT_HW_720P = (720, 1280)


def parse_hw(text):
    """``(height, width)`` of a ``HEIGHTxWIDTH`` command-line size; an argparse ``type``.

    Here rather than in one command's module because several commands take sizes
    (``srcomp profile``, ``srcomp export``) and library code must not import a command.
    """
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HEIGHTxWIDTH such as 720x1280 or 48x64, got {text!r}') from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'sizes must be positive, got {text!r}')
    return h, w


def input_channels(net):
    """Channels of the image the network expects: those of its first conv or linear layer."""
    for module in net.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
        if isinstance(module, nn.Linear):
            return module.in_features
    raise ProfileError(f'cannot tell the input channels of {type(net).__name__}: it has no Conv/Linear layer; '
                       'pass in_ch explicitly')


def window_of(net):
    """Size the LR input must be a multiple of: the windows of window attention, else 1.

    Read from ``window_size`` attributes (``SwinIRmini`` has one on the network, BasicSR's
    ``SwinIR`` only on its blocks); several sizes give their least common multiple.
    """
    window = 1
    for module in net.modules():
        value = getattr(module, 'window_size', None)
        for side in (value if isinstance(value, (tuple, list)) else (value, )):
            if isinstance(side, int) and side > 0:
                window = math.lcm(window, side)
    return window


def lr_size(scale, out_hw=OUT_HW_720P, window=1):
    """``(lr_hw, padded_hw)`` of the LR input that gives an ``out_hw`` output at ``scale``.

    ``lr_hw`` is ``out // scale`` per side (BasicSR's mod-crop); ``padded_hw`` rounds it up to
    a multiple of ``window`` (equal to ``lr_hw`` when ``window`` is 1).
    """
    if not isinstance(scale, int) or scale < 1:
        raise ProfileError(f'scale must be a positive integer, got {scale!r}')
    lr_hw = tuple(side // scale for side in out_hw)
    if min(lr_hw) < 1:
        raise ProfileError(f'output size {out_hw} is smaller than the scale {scale}')
    return lr_hw, pad_to(lr_hw, window)


def pad_to(hw, window):
    """``hw`` rounded up, per side, to a multiple of ``window``."""
    return tuple(int(math.ceil(side / window)) * window for side in hw)


def as_input_shape(net, lr_shape):
    """``(1, C, H, W)`` from an ``(H, W)`` pair or a full ``(N, C, H, W)`` shape."""
    lr_shape = tuple(int(v) for v in lr_shape)
    if len(lr_shape) == 2:
        return (1, input_channels(net)) + lr_shape
    if len(lr_shape) == 4:
        return lr_shape
    raise ProfileError(f'lr_shape must be (H, W) or (N, C, H, W), got {lr_shape}')
