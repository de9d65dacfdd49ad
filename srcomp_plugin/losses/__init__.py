"""Losses registered into BasicSR's ``LOSS_REGISTRY`` on import."""
from .laplacian_loss import LaplacianLoss, MultiLapLoss  # noqa: F401
