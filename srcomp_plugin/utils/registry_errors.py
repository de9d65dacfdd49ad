"""Helpful errors for unknown ``type:`` names in option files.

BasicSR's ``Registry.get`` raises ``KeyError("No object named 'X' found in 'arch'
registry!")`` after printing a misleading "use name: X_basicsr" line, and does not say which
names exist. We wrap ``get`` on BasicSR's five registry *instances* (not the class, not
site-packages) so that an unknown name raises a ``KeyError`` that names the option key,
lists the registered names and suggests the closest ones.
"""
import difflib

from basicsr.utils import registry as bsr_registry

from ..errors import SrcompError

# Which option key holds the name, per registry (for the message).
OPTION_KEYS = {
    'arch': 'network_g.type / network_t.type',
    'model': 'model_type',
    'loss': 'train.*_opt.type (e.g. pixel_opt, distill_opt)',
    'dataset': 'datasets.*.type',
    'metric': 'val.metrics.*.type',
}


class UnknownTypeError(SrcompError, KeyError):
    """An option names a class that no registry holds."""

    def __str__(self):  # KeyError would print the message with quotes
        return str(self.args[0])


def _helpful_get(registry, original_get):

    def get(name, suffix='basicsr'):
        if name in registry or f'{name}_{suffix}' in registry:
            return original_get(name, suffix)
        names = sorted(registry.keys())
        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f' Did you mean {", ".join(close)}?' if close else ''
        raise UnknownTypeError(
            f'{OPTION_KEYS.get(registry._name, "type")}: unknown {registry._name} type {name!r}.{hint} '
            f'Registered {registry._name} types: {", ".join(names)}. (Plugin classes are registered by '
            '"import srcomp_plugin"; run through python -m srcomp_plugin.train/test.)')

    get.__wrapped__ = original_get
    return get


def install():
    for reg in (bsr_registry.ARCH_REGISTRY, bsr_registry.MODEL_REGISTRY, bsr_registry.LOSS_REGISTRY,
                bsr_registry.DATASET_REGISTRY, bsr_registry.METRIC_REGISTRY):
        if not hasattr(reg.get, '__wrapped__'):
            reg.get = _helpful_get(reg, reg.get)
