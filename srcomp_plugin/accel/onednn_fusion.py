"""oneDNN's fused CPU kernels (linear/convolution + pointwise op) and when they may be used.

Why: at inference the compact models are limited by memory traffic, not arithmetic. The
kernels PyTorch's own CPU compiler emits, ``torch.ops.mkldnn._linear_pointwise`` and
``torch.ops.mkldnn._convolution_pointwise``, apply a bias, an activation and a residual
add inside the linear/convolution, saving one pass over the activations per fused op.
They are private PyTorch ops, so each is used only after a tiny self-check against the
public functional ops passes with the installed build; otherwise it is ``None`` and the
callers keep their plain modules.

The fused path bypasses the ``nn.Module`` calls, so it is taken only where nobody can
tell: eval mode, autograd off, float32 CPU, no autocast, not while tracing, and nobody
observing the layers (forward hooks, e.g. a MAC counter's, or a dispatch mode such as
``FlopCounterMode``, for which the fused ops have no flop formula). See
:func:`can_fuse_for_inference`.
"""
import torch
import torch.nn.functional as F
from torch.nn.modules import module as _module_globals

try:  # private helper; without it, assume no dispatch mode is watching
    from torch.utils._python_dispatch import _get_current_dispatch_mode
except ImportError:  # pragma: no cover
    _get_current_dispatch_mode = None


def _self_checked(build_and_check):
    """The op returned by ``build_and_check()`` when it passes its check, else None."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        with torch.no_grad():
            op, ok = build_and_check(torch.Generator().manual_seed(0))
    except (AttributeError, RuntimeError, TypeError):
        return None
    return op if ok else None


def _check_linear(gen):
    op = torch.ops.mkldnn._linear_pointwise
    x, w, b, other = (torch.randn(shape, generator=gen) for shape in ((5, 3), (4, 3), (4, ), (5, 4)))
    ref = F.linear(x, w, b)
    ok = (torch.allclose(op(x, w, b, 'none', [], ''), ref, atol=1e-5)
          and torch.allclose(op(x, w, b, 'gelu', [], 'none'), F.gelu(ref), atol=1e-5)
          and torch.allclose(op.binary(x, other, w, b, 'add'), ref + other, atol=1e-5))
    return op, ok


def _check_conv(gen):
    op = torch.ops.mkldnn._convolution_pointwise
    x, w, b, other = (torch.randn(shape, generator=gen) for shape in ((1, 3, 6, 5), (4, 3, 3, 3), (4, ), (1, 4, 6, 5)))
    x, other = (t.contiguous(memory_format=torch.channels_last) for t in (x, other))
    ref = F.conv2d(x, w, b, padding=1)
    ok = (torch.allclose(op(x, w, b, [1, 1], [1, 1], [1, 1], 1, 'none', [], ''), ref, atol=1e-5)
          and torch.allclose(op(x, w, b, [1, 1], [1, 1], [1, 1], 1, 'relu', [], ''), ref.relu(), atol=1e-5)
          and torch.allclose(
              op.binary(x, other, w, b, [1, 1], [1, 1], [1, 1], 1, 'add', None, None, [], None), ref + other,
              atol=1e-5))
    return op, ok


LINEAR_POINTWISE = _self_checked(_check_linear)
CONV_POINTWISE = _self_checked(_check_conv)


def observed():
    """True when a dispatch mode (e.g. ``FlopCounterMode``) or global module hooks watch the forward."""
    if _module_globals._global_forward_hooks or _module_globals._global_forward_pre_hooks:
        return True
    return _get_current_dispatch_mode is not None and _get_current_dispatch_mode() is not None


def can_fuse_for_inference(op, x, owner, layers):
    """Whether ``owner`` may run ``layers`` through the fused ``op`` for input ``x``.

    Inference only (``owner`` in eval mode, autograd off), float32 on CPU without
    autocast, not under ``torch.jit.trace`` (exported graphs must keep the public ops),
    and nobody observing ``layers``.
    """
    if (op is None or owner.training or torch.is_grad_enabled() or x.device.type != 'cpu'
            or x.dtype != torch.float32 or torch.is_autocast_enabled('cpu') or torch.jit.is_tracing()
            or observed()):
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in layers)
