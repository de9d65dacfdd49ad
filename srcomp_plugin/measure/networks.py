"""A network from a BasicSR ``network_g``-style dict, as the measurements and benchmarks need it.

Why not BasicSR's ``build_network`` alone: a profile names its network by a dict typed on
the command line or read from any option file, so an unknown arch or a wrong kwarg must
end as a :class:`ProfileError` naming the option, and an arch given without its scale
must take the one asked for.
"""
import inspect

from ..errors import ProfileError


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


def with_scale(network_opt, scale):
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
