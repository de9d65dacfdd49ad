"""Shared measurements: parameters, MACs at 720p and CPU latency.

Every stage and command counts complexity through these functions, so that a parameter
budget in compression and a figure in a report mean the same thing. One module per
measure (:mod:`.params`, :mod:`.macs`, :mod:`.latency`), the input sizes they share
(:mod:`.shapes`), the network built from options (:mod:`.networks`), and all of them
together (:mod:`.complexity`, ``srcomp profile``).
"""
from ..errors import ProfileError
from .complexity import profile_network
from .latency import measure_latency
from .macs import MacCount, count_macs, infer_scale, mac_counts
from .networks import build_from_opt
from .params import count_params
from .shapes import OUT_HW_720P, lr_size

__all__ = [
    'OUT_HW_720P', 'MacCount', 'ProfileError', 'build_from_opt', 'count_macs', 'count_params', 'infer_scale',
    'lr_size', 'mac_counts', 'measure_latency', 'profile_network'
]
