"""Compatibility shims that must run before BasicSR is imported.

BasicSR 1.4.2 (the latest on PyPI) imports ``torchvision.transforms.functional_tensor``,
which torchvision removed in 0.17. The function BasicSR needs from it
(``rgb_to_grayscale``) still lives in ``torchvision.transforms.functional``, so we
register an alias module in ``sys.modules`` instead of editing site-packages.
"""
import sys
import types


def install_torchvision_alias():
    """Make ``import torchvision.transforms.functional_tensor`` succeed on new torchvision."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision: nothing to do)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional

    alias = types.ModuleType(name)
    alias.__doc__ = 'Alias created by srcomp_plugin.compat for BasicSR 1.4.2.'
    alias.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[name] = alias
