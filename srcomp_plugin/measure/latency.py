"""CPU (or CUDA) latency of one forward: the median wall time after warm-up.

Why the median of repeated runs under ``torch.inference_mode``: the first forwards load
kernels and allocate, and a shared machine adds bursts of load; the median of timed runs
after a warm-up is what a deployed model sees, and the intra-op thread count is reported
because the figure means little without it.
"""
import statistics
import time

import torch

from ..errors import ProfileError
from .shapes import as_input_shape


def measure_latency(net, lr_shape, repeats=10, warmup=2, threads=None, seed=0):
    """Median wall time of ``repeats`` forwards after ``warmup`` ones, on the net's device.

    Runs under ``torch.inference_mode`` in eval mode (the training flag is restored) with
    ``threads`` intra-op threads (the current count when None; restored afterwards).
    Returns ``median_s``, ``mean_s``, ``min_s``, ``max_s``, ``times_s``, ``repeats``,
    ``warmup``, ``threads`` and ``input_shape``.
    """
    if repeats < 1 or warmup < 0:
        raise ProfileError(f'repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}')
    shape = as_input_shape(net, lr_shape)
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
