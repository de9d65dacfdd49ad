"""What training costs, counted so that runs on any machine compare: scratch-step equivalents.

A compressed student is worth having only if it beats the same student trained alone with
the same total compute, stage 1 and every teacher forward included. This module counts that
compute as the MACs of every forward and backward, and expresses it in units of one
training step of the student trained alone (batch and patch as given), so a scratch run of
16k iterations costs exactly 16,000. Per step:

* training a network: forward + backward = ``(1 + BACKWARD_FACTOR)`` x its forward MACs x
  the batch (the backward computes the gradient of the input and of the weights, each
  about one forward: the usual 2:1 rule);
* the frozen teacher of distillation: one forward, 1 x its forward MACs x the batch (a MAC
  is counted as a MAC whatever its precision, bf16 included);
* filling a teacher cache: one teacher forward per training image at its full size.

Why MACs and not seconds: seconds depend on the machine. On two CPU threads an EDSR
f64b8 training step takes 14x the seconds of an f16b4 one while its MACs are 24x; on a GPU
the large network runs closer to its peak than the small one. MACs favour neither, and
are the harder test for a method that trains the large network first. Callers that
measured seconds report them beside the count.
"""
import json

from .macs import mac_counts
from .networks import build_from_opt

BACKWARD_FACTOR = 2

_FORWARD_MACS = {}


def forward_macs(network_opt, lr_hw, scale):
    """MACs of one forward of the ``network_g``-style dict ``network_opt`` on one LR image of ``lr_hw``."""
    key = (json.dumps(network_opt, sort_keys=True, default=str), tuple(lr_hw), scale)
    if key not in _FORWARD_MACS:
        _FORWARD_MACS[key] = mac_counts(build_from_opt(dict(network_opt)), scale, lr_hw=tuple(lr_hw)).macs
    return _FORWARD_MACS[key]


def train_step_macs(network_opt, batch, lr_patch, scale):
    """MACs of one training step (forward and backward) on ``batch`` LR patches of ``lr_patch`` x ``lr_patch``."""
    return (1 + BACKWARD_FACTOR) * batch * forward_macs(network_opt, (lr_patch, lr_patch), scale)


def network_train_step_macs(net, batch, lr_patch, scale):
    """:func:`train_step_macs` of a built network (one that no option dict describes, e.g. a pruned module)."""
    return (1 + BACKWARD_FACTOR) * batch * mac_counts(net, scale, lr_hw=(lr_patch, lr_patch)).macs


def teacher_forward_macs(network_opt, batch, lr_patch, scale):
    """MACs of the frozen teacher's forward on one batch: what live distillation adds to each step."""
    return batch * forward_macs(network_opt, (lr_patch, lr_patch), scale)


def distill_step_macs(student_opt, teacher_opt, batch, lr_patch, scale):
    """MACs of one live-distillation step: the student's training step plus the frozen teacher's forward."""
    return (train_step_macs(student_opt, batch, lr_patch, scale)
            + teacher_forward_macs(teacher_opt, batch, lr_patch, scale))


def scratch_steps(macs, scratch_step_macs):
    """``macs`` in scratch-step equivalents (one unit: one training step of the student trained alone)."""
    return macs / scratch_step_macs
