"""Shared measurements: parameters, MACs at 720p, CPU latency and peak memory.

Every stage and command counts complexity through these functions, so that a parameter
budget in compression and a figure in a report mean the same thing.
"""
from .complexity import (OUT_HW_720P, MacCount, ProfileError, build_from_opt, count_macs, count_params,
                         infer_scale, lr_size, mac_counts, measure_latency, peak_memory, profile_network)

__all__ = [
    'OUT_HW_720P', 'MacCount', 'ProfileError', 'build_from_opt', 'count_macs', 'count_params', 'infer_scale',
    'lr_size', 'mac_counts', 'measure_latency', 'peak_memory', 'profile_network'
]
