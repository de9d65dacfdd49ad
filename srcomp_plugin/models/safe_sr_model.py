"""BasicSR's ``SRModel`` with the plugin's checkpoint safety, for runs through our entry points.

Teachers, baselines and the ``scratch`` students train with ``model_type: SRModel``. Run
through ``python -m srcomp_plugin.train`` (or ``srcomp train``/``pipeline``/``demo``), they
get what the plugin's own models have (:mod:`.checkpoint_safety`): atomic checkpoints, a
stop at the first non-finite loss, explained checkpoint-loading errors and a bit-exact
``--auto_resume`` (``srcomp_plugin.test`` gets the explained loading errors). BasicSR's
``SRModel`` resumes at the start of the interrupted epoch
with fresh random crops, so its resumed runs drift (max weight difference 3e-3 after a
few iterations). The class is not registered: ``model_type: SRModel`` stays the name in
option files, and plain BasicSR keeps its own class.
"""
from copy import deepcopy

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger

from ..accel import use_cpu_fast_paths
from .checkpoint_safety import CheckpointSafetyMixin


class SafeSRModel(CheckpointSafetyMixin, SRModel):
    """``SRModel``, trained and checkpointed as the plugin's models are.

    In the test pipeline, BasicSR's ``EDSR`` and ``SwinIR`` (e.g. the teachers in
    ``options/test/``) run the CPU fast paths that the presets run (:mod:`srcomp_plugin.accel`):
    same modules, weights and outputs to float rounding.
    """

    def __init__(self, opt):
        super().__init__(opt)
        if not self.is_train:
            use_cpu_fast_paths(self.net_g)


def install():
    """Make BasicSR's train and test pipelines build :class:`SafeSRModel` for ``model_type: SRModel``."""
    import basicsr.test as bsr_test
    import basicsr.train as bsr_train

    for module in (bsr_train, bsr_test):
        if getattr(module.build_model, '__name__', '') != 'build_safe_model':
            module.build_model = _building_safe_models(module.build_model)


def _building_safe_models(build_model):
    """``build_model`` with ``SRModel`` replaced by :class:`SafeSRModel`; other types go to BasicSR's."""

    def build_safe_model(opt):
        if opt['model_type'] != 'SRModel':
            return build_model(opt)
        model = SafeSRModel(deepcopy(opt))  # what BasicSR's build_model does, with our class
        get_root_logger().info('Model [SRModel] is created (with srcomp\'s checkpoint safety and exact resume).')
        return model

    return build_safe_model
