"""srcomp: compress deep super-resolution models inside BasicSR.

Importing this package (1) makes BasicSR 1.4.2 importable on current torchvision,
(2) installs CPU fallbacks for BasicSR's CUDA-only distributed/resume code and a train
sampler that lets ``--auto_resume`` continue mid-epoch, plus helpful errors for unknown
``type:`` names and for wrong dataset folders, and (3) registers the plugin's
archs, datasets, losses and models into BasicSR's registries.
"""
from .compat import install_torchvision_alias

install_torchvision_alias()

# basicsr may only be imported after the alias
from .utils import cpu_support, exact_resume, registry_errors  # noqa: E402

cpu_support.install()
exact_resume.install()
registry_errors.install()

from . import archs, data, losses, models  # noqa: E402,F401  (fills BasicSR's registries)
from .data import dataset_checks  # noqa: E402

dataset_checks.install()

__version__ = '0.1.0'
