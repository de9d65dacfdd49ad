"""srcomp: compress deep super-resolution models inside BasicSR.

Importing this package makes BasicSR 1.4.2 importable on current torchvision (an alias
module, :mod:`srcomp_plugin.compat`) and registers the plugin's archs, datasets, losses and
models into BasicSR's registries. Nothing else in BasicSR changes until
:func:`srcomp_plugin.basicsr_patches.install` runs, as the entry points do: that module
lists every change with its reason.
"""
from .compat import install_torchvision_alias

install_torchvision_alias()

# basicsr may only be imported after the alias
from . import archs, data, losses, models  # noqa: E402,F401  (fills BasicSR's registries)

__version__ = '0.1.0'
