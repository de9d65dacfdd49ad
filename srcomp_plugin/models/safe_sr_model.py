"""BasicSR's ``SRModel`` with the plugin's checkpoint safety, for runs through our entry points.

Teachers, baselines and the ``scratch`` students train with ``model_type: SRModel``. Run
through ``python -m srcomp_plugin.train`` (or ``srcomp train``/``pipeline``/``demo``), they
get what the plugin's own models have (:mod:`.checkpoint_safety`): atomic checkpoints, a
stop at the first non-finite loss, explained checkpoint-loading errors and a bit-exact
``--auto_resume``. BasicSR's ``SRModel`` resumes at the start of the interrupted epoch
with fresh random crops, so its resumed runs drift (max weight difference 3e-3 after a
few iterations). The class is not registered: ``model_type: SRModel`` stays the name in
option files, and plain BasicSR keeps its own class.
"""
from basicsr.models.sr_model import SRModel

from .checkpoint_safety import CheckpointSafetyMixin


class SafeSRModel(CheckpointSafetyMixin, SRModel):
    """``SRModel``, trained and checkpointed as the plugin's models are."""


def install():
    """Make BasicSR's ``train_pipeline`` build :class:`SafeSRModel` for ``model_type: SRModel``."""
    import basicsr.train as bsr_train

    build_model = bsr_train.build_model
    if getattr(build_model, '__name__', '') == 'build_safe_model':
        return

    def build_safe_model(opt):
        if opt['model_type'] != 'SRModel':
            return build_model(opt)
        from copy import deepcopy

        from basicsr.utils import get_root_logger

        model = SafeSRModel(deepcopy(opt))  # what BasicSR's build_model does, with our class
        get_root_logger().info('Model [SRModel] is created (with srcomp\'s checkpoint safety and exact resume).')
        return model

    bsr_train.build_model = build_safe_model
