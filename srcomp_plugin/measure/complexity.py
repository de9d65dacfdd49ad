"""Model complexity: parameters, MACs at a 720p output, CPU latency and peak memory.

One place where every stage (compression's parameter budget, the reports, ``srcomp
profile``) gets its numbers, so that they are all counted the same way:

* **Parameters**: every distinct ``nn.Parameter`` (shared ones once), as BasicSR's
  ``print_network`` counts them.
* **MACs**: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 for one forward of a
  batch of one. The LR input of a ``H x W`` output is ``(H // s) x (W // s)`` (BasicSR
  mod-crops the HR image to a multiple of the scale, so a 720p frame at x3 has a
  240 x 426 LR image and a 720 x 1278 output); for window attention the LR input is padded
  up to a multiple of the window, as SwinIR must be run (240 x 426 -> 240 x 432). Two counts:
  ``macs`` covers every matrix product the counter sees (attention's q @ k^T and attn @ v
  included) and ``macs_conv_linear`` only what runs inside ``nn.Conv*``/``nn.Linear``
  modules, the convention of counters that hook modules (thop, ptflops); projections
  called functionally (``nn.MultiheadAttention``'s ``F.linear``) fall in the first only.
  ``scaled_dot_product_attention`` is counted on its math backend (the fused CPU kernel
  has no flop formula), so SwinIRmini's fused attention counts as BasicSR's matmuls.
  The forward runs on a copy of the network on PyTorch's ``meta`` device, so shapes
  propagate without any arithmetic: a 720p EDSR count costs milliseconds. Networks whose
  forward needs real values (``.item()``, data-dependent shapes) are counted with a real
  CPU forward instead; ``counted_on`` says which happened.
* **Latency**: median wall time of repeated CPU forwards after warm-up, under
  ``torch.inference_mode``, with the intra-op thread count reported.
* **Peak memory**: how much the process's resident memory grows during one forward,
  measured in a fresh Python process (see :func:`peak_memory` for why).
"""
import copy
import dataclasses
import gc
import inspect
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..errors import SrcompError

OUT_HW_720P = (720, 1280)


class ProfileError(SrcompError, ValueError):
    """A network or profiling request that cannot be measured; the message says why."""


# ----------------------------------------------------------------------------- parameters


def count_params(net, trainable_only=False):
    """Number of distinct parameters of ``net`` (``requires_grad`` ones only if asked)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def tensor_bytes(net):
    """Bytes held by the parameters and buffers of ``net`` (its weight file, roughly)."""
    tensors = list(net.parameters()) + list(net.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


# ----------------------------------------------------------------------------- shapes


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
    return lr_hw, _pad_to(lr_hw, window)


def _pad_to(hw, window):
    return tuple(int(math.ceil(side / window)) * window for side in hw)


def _as_input_shape(net, lr_shape):
    """``(1, C, H, W)`` from an ``(H, W)`` pair or a full ``(N, C, H, W)`` shape."""
    lr_shape = tuple(int(v) for v in lr_shape)
    if len(lr_shape) == 2:
        return (1, input_channels(net)) + lr_shape
    if len(lr_shape) == 4:
        return lr_shape
    raise ProfileError(f'lr_shape must be (H, W) or (N, C, H, W), got {lr_shape}')


# ----------------------------------------------------------------------------- MACs


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
        padded_hw = _pad_to(lr_hw, window)
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
    side = _pad_to((16, 16), window)
    counts = mac_counts(net, 1, lr_hw=side, window=window, in_ch=in_ch)
    ratios = {o / i for o, i in zip(counts.out_hw, side)}
    if len(ratios) != 1 or not float(next(iter(ratios))).is_integer():
        raise ProfileError(f'{type(net).__name__} maps a {side} input to {counts.out_hw}: not an integer '
                           'upscaling; give the scale explicitly')
    return int(next(iter(ratios)))


# ----------------------------------------------------------------------------- latency


def measure_latency(net, lr_shape, repeats=10, warmup=2, threads=None, seed=0):
    """Median wall time of ``repeats`` forwards after ``warmup`` ones, on the net's device.

    Runs under ``torch.inference_mode`` in eval mode (the training flag is restored) with
    ``threads`` intra-op threads (the current count when None; restored afterwards).
    Returns ``median_s``, ``mean_s``, ``min_s``, ``max_s``, ``times_s``, ``repeats``,
    ``warmup``, ``threads`` and ``input_shape``.
    """
    if repeats < 1 or warmup < 0:
        raise ProfileError(f'repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}')
    shape = _as_input_shape(net, lr_shape)
    params = list(net.parameters())
    device = params[0].device if params else torch.device('cpu')
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    old_threads = torch.get_num_threads()
    was_training = net.training
    times = []
    try:
        if threads:
            torch.set_num_threads(int(threads))
        used_threads = torch.get_num_threads()
        net.eval()
        with torch.inference_mode():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                net(x)
                if device.type == 'cuda':
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(old_threads)
        net.train(was_training)
    return {
        'median_s': statistics.median(times),
        'mean_s': statistics.fmean(times),
        'min_s': min(times),
        'max_s': max(times),
        'times_s': times,
        'repeats': repeats,
        'warmup': warmup,
        'threads': used_threads,
        'input_shape': list(shape),
    }


# ----------------------------------------------------------------------------- peak memory


def peak_memory(network, lr_shape, threads=None, timeout=600):
    """Resident-memory growth of one CPU forward, measured in a fresh Python process.

    ``network`` is a BasicSR ``network_g``-style dict, built in the child after ``import
    srcomp_plugin`` (no module is pickled across: nothing is unpickled). Why a child
    process: PyTorch's CPU allocator has no statistics and ``tracemalloc`` does not see its
    allocations, so the honest measure is the process's
    resident set (what an out-of-memory killer looks at); and after earlier forwards
    glibc keeps freed blocks resident, which would hide the growth. The child sets
    ``MALLOC_MMAP_THRESHOLD_`` so large tensors are mapped and returned on free, builds
    the network and input, runs one small warm-up forward (loads the kernels), resets
    the kernel's peak counter (``/proc/self/clear_refs``; on other systems the peak since
    start, ``ru_maxrss``, is used), runs the measured forward and reads the peak.

    Returns ``forward_peak_bytes`` (peak RSS during the forward minus RSS before it:
    activations, workspaces and the output), ``peak_rss_bytes``, ``rss_before_bytes``,
    ``input_bytes``, ``output_bytes``, ``threads`` and ``method``.
    """
    if not isinstance(network, dict):
        raise ProfileError(f'peak_memory needs a network_g dict, got {type(network).__name__}')
    spec = {'lr_shape': list(lr_shape), 'threads': int(threads or torch.get_num_threads()), 'network_opt': network}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072', OMP_NUM_THREADS=str(spec['threads']))
    code = 'from srcomp_plugin.measure.complexity import _peak_memory_child; _peak_memory_child()'
    proc = subprocess.run([sys.executable, '-c', code], input=json.dumps(spec), capture_output=True,
                          text=True, env=env, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ProfileError(f'peak-memory child process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _proc_status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter (VmHWM); False where that is not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        _proc_status_kib('VmHWM')
        return True
    except (OSError, KeyError):
        return False


def _peak_memory_child():
    """Child side of :func:`peak_memory`: spec as JSON on stdin, result as JSON on stdout."""
    import resource

    spec = json.loads(sys.stdin.read())
    torch.set_num_threads(spec['threads'])
    net = build_from_opt(spec['network_opt']).eval()
    shape = _as_input_shape(net, spec['lr_shape'])
    x = torch.rand(shape)
    warm_hw = _pad_to((16, 16), window_of(net))
    with torch.inference_mode():
        net(torch.rand(shape[:2] + warm_hw))
    gc.collect()
    if _reset_peak_rss():
        method = 'VmHWM - VmRSS around the forward (/proc/self/clear_refs reset), fresh process'
        before = _proc_status_kib('VmRSS') * 1024
        read_peak = lambda: _proc_status_kib('VmHWM') * 1024  # noqa: E731
    else:
        unit = 1 if sys.platform == 'darwin' else 1024
        method = 'ru_maxrss delta around the forward, fresh process'
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
        read_peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit  # noqa: E731
    with torch.inference_mode():
        out = net(x)
    peak = read_peak()
    print(json.dumps({
        'forward_peak_bytes': max(0, peak - before),
        'peak_rss_bytes': peak,
        'rss_before_bytes': before,
        'input_bytes': x.numel() * x.element_size(),
        'output_bytes': out.numel() * out.element_size(),
        'threads': torch.get_num_threads(),
        'input_shape': list(shape),
        'method': method,
    }))


# ----------------------------------------------------------------------------- building


def build_from_opt(network_opt, where='network_g'):
    """Build a network from a BasicSR ``network_g``-style dict, with the plugin registered.

    ``where`` names the option (e.g. ``opt.yml: network_g``) in error messages.
    """
    import srcomp_plugin  # noqa: F401  (fills ARCH_REGISTRY with the plugin's archs)
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY

    if not isinstance(network_opt, dict) or 'type' not in network_opt:
        raise ProfileError(f'{where} must be a mapping with a "type" key (the arch name), got {network_opt!r}')
    arch = network_opt['type']
    if arch not in ARCH_REGISTRY and f'{arch}_basicsr' not in ARCH_REGISTRY:
        names = ', '.join(sorted(name for name, _ in ARCH_REGISTRY))
        raise ProfileError(f'{where}.type: unknown arch {arch!r}; registered archs: {names}')
    try:
        return build_network(dict(network_opt))
    except TypeError as err:
        raise ProfileError(f'{where}: cannot build {arch} with {dict(network_opt)}: {err}') from err


def _with_scale(network_opt, scale):
    """``network_opt`` with ``upscale``/``scale`` set to ``scale`` where the arch takes one and it is unset."""
    from basicsr.utils.registry import ARCH_REGISTRY

    opt = dict(network_opt)
    if scale is None or opt.get('type') not in ARCH_REGISTRY:
        return opt
    accepted = inspect.signature(ARCH_REGISTRY.get(opt['type'])).parameters
    for key in ('upscale', 'scale'):
        if key in accepted:
            opt.setdefault(key, scale)
            break
    return opt


def profile_network(network_opt, scale=None, out_hw=OUT_HW_720P, lr_hw=None, latency=True, memory=True,
                    repeats=10, warmup=2, threads=None, where='network_g', progress=None):
    """Everything ``srcomp profile`` reports for a ``network_g``-style dict, as a dict.

    ``scale`` fills the arch's ``upscale``/``scale`` kwarg when the dict has none and must
    agree with the network's real upscaling (read off a probe forward). The LR size comes
    from ``out_hw`` (720p) unless ``lr_hw`` is given. ``latency``/``memory`` switch off the
    slow measurements; ``repeats``, ``warmup`` and ``threads`` are as in
    :func:`measure_latency`. ``progress``, if given, is called with a line before each slow step.
    """
    progress = progress or (lambda line: None)
    import srcomp_plugin  # noqa: F401

    network_opt = _with_scale(network_opt, scale)
    net = build_from_opt(network_opt, where)
    window = window_of(net)
    actual = infer_scale(net, window=window)
    if scale is not None and int(scale) != actual:
        raise ProfileError(f'{where}: the network upscales x{actual} but the scale asked for is x{scale}; '
                           'make the option file\'s scale and network_g.upscale agree')
    if lr_hw is not None:
        out_hw = tuple(side * actual for side in lr_hw)
    progress(f'counting MACs for a {out_hw[0]}x{out_hw[1]} output')
    counts = mac_counts(net, actual, out_hw=out_hw, lr_hw=lr_hw, window=window)
    result = {
        'arch': network_opt['type'],
        'network_opt': network_opt,
        'scale': actual,
        'params': count_params(net),
        'weights_bytes': tensor_bytes(net),
        'window': window,
        'target_out_hw': list(out_hw),
        'lr_hw': list(counts.lr_hw),
        'padded_lr_hw': list(counts.padded_hw),
        'out_hw': list(counts.out_hw),
        'macs': counts.macs,
        'macs_conv_linear': counts.macs_conv_linear,
        'macs_by_op': counts.by_op,
        'macs_counted_on': counts.counted_on,
        'macs_convention': 'FlopCounterMode FLOPs / 2, batch 1',
        'latency': None,
        'memory': None,
    }
    if latency:
        progress(f'timing {repeats} forward passes after {warmup} warm-up')
        result['latency'] = measure_latency(net, counts.padded_hw, repeats=repeats, warmup=warmup, threads=threads)
    if memory:
        progress('measuring peak memory in a child process')
        result['memory'] = peak_memory(network_opt, counts.padded_hw, threads=threads)
    return result
