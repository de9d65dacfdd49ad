"""srcomp: compress deep super-resolution models inside BasicSR.

Importing this package (1) makes BasicSR 1.4.2 importable on current torchvision,
(2) installs CPU fallbacks for BasicSR's CUDA-only distributed/resume code, and
(3) registers the plugin's archs, losses and models into BasicSR's registries.
"""
from .compat import install_torchvision_alias

install_torchvision_alias()

from .utils import cpu_support  # noqa: E402  (basicsr may only be imported after the alias)

cpu_support.install()

from . import archs, losses, models  # noqa: E402,F401  (fills BasicSR's registries)

__version__ = '0.1.0'
