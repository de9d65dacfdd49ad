"""Models registered into BasicSR's ``MODEL_REGISTRY`` on import."""
