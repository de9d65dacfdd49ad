"""MACs of one forward, counted by PyTorch's own flop counter.

Why ``FlopCounterMode`` rather than module hooks: it sees every matrix product, including
attention's q @ k^T and attn @ v that hook-based counters (thop, ptflops) miss, so SwinIR
and EDSR are compared on the work they really do. Both conventions are kept, because
published figures use either:

* ``macs``: FLOPs / 2 of every matmul/conv the counter sees, batch 1;
* ``macs_conv_linear``: only what runs inside ``nn.Conv*``/``nn.Linear`` modules, the
  convention of counters that hook modules; projections called functionally
  (``nn.MultiheadAttention``'s ``F.linear``) fall in the first only.

``scaled_dot_product_attention`` is counted on its math backend (the fused CPU kernel has
no flop formula), so SwinIRmini's fused attention counts as BasicSR's matmuls. The forward
runs on a copy of the network on PyTorch's ``meta`` device, so shapes propagate without
any arithmetic: a 720p EDSR count costs milliseconds. Networks whose forward needs real
values (``.item()``, data-dependent shapes) are counted with a real forward instead;
``counted_on`` says which happened. The LR input follows :mod:`.shapes`.
"""
import copy
import dataclasses

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ProfileError
from .shapes import OUT_HW_720P, input_channels, lr_size, pad_to, window_of


@dataclasses.dataclass
class MacCount:
    """MACs of one forward, both conventions, and the shapes they were counted at."""
    macs: int  # every matmul/conv the flop counter sees, attention included
    macs_conv_linear: int  # only inside nn.Conv* / nn.Linear modules
    by_op: dict  # aten op name -> MACs
    lr_hw: tuple  # LR size asked for
    padded_hw: tuple  # LR size actually fed (padded to the window)
    out_hw: tuple  # spatial size of the network's output
    counted_on: str  # 'meta' (shape propagation only) or 'cpu' (real forward)

    def as_dict(self):
        return dataclasses.asdict(self)


def _meta_copy(net):
    """A copy of ``net`` on the meta device, plain tensor attributes (e.g. ``mean``) included."""
    meta = copy.deepcopy(net).to('meta')
    for module in meta.modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                setattr(module, name, value.to('meta'))
    return meta


def _count(net, x):
    """Run ``net(x)`` under FlopCounterMode; returns (total FLOPs, conv+linear FLOPs, by-op, output)."""
    counter = FlopCounterMode(display=False)
    inside = {'depth': 0, 'start': 0, 'flops': 0}

    def enter(module, args):
        if inside['depth'] == 0:
            inside['start'] = counter.get_total_flops()
        inside['depth'] += 1

    def leave(module, args, output):
        inside['depth'] -= 1
        if inside['depth'] == 0:
            inside['flops'] += counter.get_total_flops() - inside['start']

    handles = []
    for module in net.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
    was_training = net.training
    net.eval()
    try:
        # SDPA's math backend: its matmuls are seen by the counter, whereas the fused CPU
        # kernel (``_scaled_dot_product_flash_attention_for_cpu``) has no flop formula and
        # would silently drop the attention MACs (SwinIRmini's fused attention).
        with counter, torch.inference_mode(), sdpa_kernel(SDPBackend.MATH):
            out = net(x)
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    by_op = {str(op): flops for op, flops in counter.get_flop_counts().get('Global', {}).items()}
    return counter.get_total_flops(), inside['flops'], by_op, out


def mac_counts(net, scale, out_hw=OUT_HW_720P, window=None, lr_hw=None, in_ch=None, meta=True):
    """Both MAC counts of ``net`` for an ``out_hw`` output at ``scale`` (see module docstring).

    Args:
        net: the network (left unchanged; a meta copy is run).
        scale: upscaling factor, used to derive the LR size from ``out_hw``.
        out_hw: output (height, width); 720p by default.
        window: pad the LR input to a multiple of this; None takes the network's attention
            window (:func:`window_of`), 1 disables padding.
        lr_hw: give the LR (height, width) directly instead of deriving it from ``out_hw``.
        in_ch: input channels; None reads the first conv layer.
        meta: count on a meta copy (free); False, or a forward the meta device cannot run,
            counts a real forward of ``net`` on its device (slow at 720p on CPU).
    """
    window = window_of(net) if window is None else int(window)
    if lr_hw is None:
        lr_hw, padded_hw = lr_size(scale, out_hw, window)
    else:
        lr_hw = tuple(int(v) for v in lr_hw)
        padded_hw = pad_to(lr_hw, window)
    shape = (1, in_ch or input_channels(net)) + padded_hw
    counted = None
    if meta:
        try:
            # meta as the default device too: tensors the forward creates itself (SwinIR's
            # shift masks) then cost nothing either.
            with torch.device('meta'):
                counted = _count(_meta_copy(net), torch.empty(shape))
            counted_on = 'meta'
        except Exception:  # noqa: BLE001  (any op without a meta kernel: count for real instead)
            counted = None
    if counted is None:
        params = list(net.parameters())
        device = params[0].device if params else torch.device('cpu')
        counted = _count(net, torch.zeros(shape, device=device))
        counted_on = str(device)
    total, conv_linear, by_op, out = counted
    return MacCount(
        macs=total // 2,
        macs_conv_linear=conv_linear // 2,
        by_op={op: flops // 2 for op, flops in by_op.items()},
        lr_hw=tuple(lr_hw),
        padded_hw=tuple(padded_hw),
        out_hw=tuple(out.shape[-2:]),
        counted_on=counted_on)


def count_macs(net, scale, out_hw=OUT_HW_720P, window=None, conv_linear_only=False):
    """MACs of one forward for an ``out_hw`` output: all matmuls, or conv+linear only."""
    counts = mac_counts(net, scale, out_hw=out_hw, window=window)
    return counts.macs_conv_linear if conv_linear_only else counts.macs


def infer_scale(net, in_ch=None, window=None):
    """Upscaling factor of ``net``, read off the output size of a small probe forward."""
    window = window_of(net) if window is None else int(window)
    side = pad_to((16, 16), window)
    counts = mac_counts(net, 1, lr_hw=side, window=window, in_ch=in_ch)
    ratios = {o / i for o, i in zip(counts.out_hw, side)}
    if len(ratios) != 1 or not float(next(iter(ratios))).is_integer():
        raise ProfileError(f'{type(net).__name__} maps a {side} input to {counts.out_hw}: not an integer '
                           'upscaling; give the scale explicitly')
    return int(next(iter(ratios)))
