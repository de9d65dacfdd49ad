"""EDSRmini: the paper's compact EDSR, a preset of BasicSR's ``EDSR``.

Same modules and state-dict keys as ``basicsr.archs.edsr_arch.EDSR`` (a BasicSR EDSR
checkpoint of the same shape loads with ``strict=True``); only the defaults differ:
num_feat 16, num_block 8 and the release's ``res_scale: 2``. Unless ``fused_convs: false``,
inference runs the fused channels_last convolutions of :mod:`srcomp_plugin.accel.edsr_fused_convs` (same
weights, same output to float rounding, faster on CPU: ``benchmarks/RESULTS.md``).
"""
from basicsr.utils.registry import ARCH_REGISTRY

from ..accel.edsr_fused_convs import FusedEDSR


@ARCH_REGISTRY.register()
class EDSRmini(FusedEDSR):
    """EDSR f16b8 (49,603 params at x2) with the release's residual scale 2."""

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=16,
                 num_block=8,
                 upscale=2,
                 res_scale=2,
                 img_range=255.,
                 rgb_mean=(0.4488, 0.4371, 0.4040),
                 fused_convs=True):
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, res_scale, img_range, rgb_mean)
        self.upscale = upscale
        self.fused_convs = fused_convs
