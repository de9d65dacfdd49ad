"""Dataset preparation and datasets registered into BasicSR's ``DATASET_REGISTRY``."""
