"""Architectures registered into BasicSR's ``ARCH_REGISTRY`` on import."""
from .edsr_mini_arch import EDSRmini
from .swinir_mini_arch import SwinIRmini

__all__ = ['EDSRmini', 'SwinIRmini']
