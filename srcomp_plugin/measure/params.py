"""Parameter counts and weight bytes of a network.

Why one function for it: stage 2's parameter budget, the reports and ``srcomp profile``
must count alike, as BasicSR's ``print_network`` does: every distinct ``nn.Parameter``
once (shared ones included once).
"""


def count_params(net, trainable_only=False):
    """Number of distinct parameters of ``net`` (``requires_grad`` ones only if asked)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def tensor_bytes(net):
    """Bytes held by the parameters and buffers of ``net`` (its weight file, roughly)."""
    tensors = list(net.parameters()) + list(net.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)
