"""The model families srcomp compresses, one record (a class) per family.

A record holds everything the stages need to know about a family, and every module reads it
from here: stage 1 (which weights are measured, the per-block grouping of the density
report, the release's stage-1 settings in ``options/prune``), stage 2 (the teacher types,
the student preset, what depth and width mean, the slicer of ``--init pruned`` and, where
a slice can be lossless, the masks of the structured decay) and the tools (telling the
family of a checkpoint from its keys, reading a network from its weights).

* :mod:`.edsr`: BasicSR's ``EDSR`` -> ``EDSRmini``;
* :mod:`.swinir`: BasicSR's ``SwinIR`` -> ``SwinIRmini``.

Adding a family (RCAN, SRResNet, ...) is one module with its record, listed in
:data:`FAMILIES`, and its tests.
"""
from ..errors import CompressError
from .arch_kwargs import arch_class, resolved_kwargs, round_half_up
from .edsr import EDSRFamily
from .swinir import SwinIRFamily

FAMILIES = {family.name: family for family in (EDSRFamily, SwinIRFamily)}
SUPPORTED_TEACHERS = {arch: family.student_type for family in FAMILIES.values() for arch in family.teacher_types}


def family_of_arch(arch_type):
    """The record of a BasicSR arch type name, or None.

    Registered subclasses (``EDSRmini``, ``SwinIRmini``, user presets) belong to the family
    of their BasicSR base class; an unregistered name to the family its name starts with.
    """
    if not arch_type:
        return None
    import srcomp_plugin  # noqa: F401  (the registry filled: BasicSR's archs and ours)
    from basicsr.utils.registry import ARCH_REGISTRY

    try:
        cls = ARCH_REGISTRY.get(arch_type)
    except KeyError:
        cls = None
    for family in FAMILIES.values():
        if cls is not None and issubclass(cls, ARCH_REGISTRY.get(family.base_arch)):
            return family
        if cls is None and str(arch_type).startswith(family.name):
            return family
    return None


def family_of_state_dict(names):
    """The record whose key pattern ``names`` (a state dict's keys) show, or None."""
    names = list(names)
    return next((family for family in FAMILIES.values() if family.owns_keys(names)), None)


def teacher_family(network_opt, where='network_g'):
    """``(record, resolved teacher kwargs)`` of a ``network_g`` dict; CompressError if it cannot be compressed."""
    if not isinstance(network_opt, dict) or 'type' not in network_opt:
        raise CompressError(f'{where} must be a mapping with a "type" key, got {network_opt!r}')
    arch = network_opt['type']
    family = next((f for f in FAMILIES.values() if arch in f.teacher_types), None)
    if family is None:
        supported = ', '.join(f'{t} -> {s}' for t, s in SUPPORTED_TEACHERS.items())
        raise CompressError(f'{where}.type: cannot compress arch {arch!r}; supported teacher types (-> student): '
                            f'{supported}')
    kwargs = resolved_kwargs(network_opt, where)
    family.check(kwargs, where)
    return family, kwargs


__all__ = ['FAMILIES', 'SUPPORTED_TEACHERS', 'EDSRFamily', 'SwinIRFamily', 'arch_class', 'family_of_arch',
           'family_of_state_dict', 'resolved_kwargs', 'round_half_up', 'teacher_family']
