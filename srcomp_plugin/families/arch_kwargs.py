"""Constructor arguments of a registered arch, resolved to the values it really runs with.

Also the rounding that the families' depth rules share (:func:`round_half_up`).
"""
import inspect
import math

_PLAIN = (bool, int, float, str, type(None))


def round_half_up(x):
    """Round to the nearest integer, halves up (Python's ``round`` rounds halves to even)."""
    return int(math.floor(x + 0.5))


def _plain(value):
    """``value`` as YAML-friendly data (tuples -> lists), or ``None`` when it is not plain data."""
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    return value if isinstance(value, _PLAIN) else None


def arch_class(arch_type):
    """The registered class of ``arch_type`` (the plugin's registry filled)."""
    import srcomp_plugin  # noqa: F401  (registers EDSRmini / SwinIRmini)
    from basicsr.utils.registry import ARCH_REGISTRY

    return ARCH_REGISTRY.get(arch_type)


def resolved_kwargs(network_opt, where='network_g'):
    """Every constructor kwarg of ``network_opt['type']``: the option's value, else the default.

    Defaults are collected along the class hierarchy, so a preset's ``**kwargs`` that reach
    its base class (``SwinIRmini`` -> ``SwinIR``: ``qkv_bias``, ``patch_size``, ...) are
    resolved too. Defaults that are not plain data (``norm_layer=nn.LayerNorm``) are left
    out unless the option sets them. Tuples become lists.
    """
    cls = arch_class(network_opt['type'])
    classes = [k for k in cls.__mro__ if '__init__' in vars(k) and not k.__module__.startswith('torch')]
    order, defaults = [], {}
    for klass in classes:  # most derived first: its signature sets the order of the keys
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if name == 'self' or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if name not in order:
                order.append(name)
            if name not in defaults and param.default is not param.empty:
                value = _plain(param.default)
                if value is not None or param.default is None:
                    defaults[name] = value
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in network_opt.items() if k != 'type'}
    resolved = {name: given.get(name, defaults.get(name)) for name in order if name in given or name in defaults}
    resolved.update({k: v for k, v in given.items() if k not in resolved})
    return resolved
