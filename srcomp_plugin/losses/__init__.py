"""Losses registered into BasicSR's ``LOSS_REGISTRY`` on import."""
