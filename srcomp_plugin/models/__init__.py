"""Models registered into BasicSR's ``MODEL_REGISTRY`` on import."""
from .sparse_sr_model import SparseSRModel  # noqa: E402,F401  (stage 1: OBProx-SG sparsity fine-tuning)
from .distill_sr_model import DistillSRModel  # noqa: F401
