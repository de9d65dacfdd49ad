"""Dataset preparation and datasets registered into BasicSR's ``DATASET_REGISTRY``."""
from .distill_paired_dataset import DistillPairedImageDataset  # noqa: F401
from .extra_inputs_dataset import ExtraInputsPairedImageDataset  # noqa: F401
