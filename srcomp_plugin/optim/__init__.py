"""Optimizers of the method. ``SparseSRModel`` builds them by ``train.optim_g.type``."""
from .obproxsg import OBProxSG

__all__ = ['OBProxSG']
