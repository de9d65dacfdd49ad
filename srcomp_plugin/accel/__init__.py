"""CPU speed-ups, fenced off from the method: same weights, same outputs to float rounding.

* :mod:`.edsr_fused_convs`: BasicSR's ``EDSR`` with channels_last convolutions and, at
  inference, oneDNN's fused convolution + ReLU / residual-add kernels.
* :mod:`.swinir_fast_attention`: SwinIR's window attention and shifted-window masks, fused and
  traceable (any input size in exported graphs).
* :mod:`.onednn_fusion`: which private oneDNN kernels may be used, each self-checked first.

One switch, :func:`use_cpu_fast_paths`, turns both on or off for every EDSR/SwinIR in a module
tree. ``EDSRmini`` and ``SwinIRmini`` turn them on by default (their ``fused_convs`` /
``fused_attention`` kwargs), as do the distillation teacher and the test pipeline's
``SRModel``; nothing else in the method depends on them. Measured speeds are in
``benchmarks/RESULTS.md``.
"""
from .edsr_fused_convs import FusedEDSR, use_eager_convs, use_fused_convs
from .swinir_fast_attention import use_eager_attention, use_fused_attention


def use_cpu_fast_paths(model, enabled=True):
    """Run every EDSR and SwinIR in ``model`` on the fused CPU paths (or, ``enabled=False``,
    BasicSR's own forward), in place; returns ``model``."""
    if enabled:
        use_fused_attention(use_fused_convs(model))
    else:
        use_eager_attention(use_eager_convs(model))
    return model


__all__ = ['FusedEDSR', 'use_cpu_fast_paths', 'use_fused_convs', 'use_eager_convs', 'use_fused_attention',
           'use_eager_attention']
