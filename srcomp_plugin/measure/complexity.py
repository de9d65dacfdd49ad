"""Model complexity: parameters, MACs at a 720p output and CPU latency, in one profile.

One place where every stage (compression's parameter budget, the reports, ``srcomp
profile``) gets its numbers, so that they are all counted the same way. Each measure is
its own module, whose docstring gives its convention: :mod:`.params` (parameters, as
BasicSR's ``print_network`` counts them), :mod:`.macs` (FlopCounterMode FLOPs / 2, two
conventions), :mod:`.latency` (median wall time after warm-up), with the LR input of
:mod:`.shapes` and the network of :mod:`.networks`. Peak memory is no part of a profile:
``python benchmarks/peak_memory.py`` measures it, teacher against student.
"""
from ..errors import ProfileError
from .latency import measure_latency
from .macs import infer_scale, mac_counts
from .networks import build_from_opt, with_scale
from .params import count_params, tensor_bytes
from .shapes import OUT_HW_720P, window_of


def profile_network(network_opt, scale=None, out_hw=OUT_HW_720P, lr_hw=None, latency=True, repeats=10, warmup=2,
                    threads=None, where='network_g', progress=None):
    """Everything ``srcomp profile`` reports for a ``network_g``-style dict, as a dict.

    ``scale`` fills the arch's ``upscale``/``scale`` kwarg when the dict has none and must
    agree with the network's real upscaling (read off a probe forward). The LR size comes
    from ``out_hw`` (720p) unless ``lr_hw`` is given. ``latency`` switches off the slow
    measurement; ``repeats``, ``warmup`` and ``threads`` are as in
    :func:`~.latency.measure_latency`. ``progress``, if given, is called with a line before each
    slow step.
    """
    progress = progress or (lambda line: None)
    import srcomp_plugin  # noqa: F401

    network_opt = with_scale(network_opt, scale)
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
    }
    if latency:
        progress(f'timing {repeats} forward passes after {warmup} warm-up')
        result['latency'] = measure_latency(net, counts.padded_hw, repeats=repeats, warmup=warmup, threads=threads)
    return result
