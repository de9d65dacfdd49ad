"""EDSRmini: the paper's compact EDSR, a preset of BasicSR's ``EDSR``.

Same modules and state-dict keys as ``basicsr.archs.edsr_arch.EDSR`` (a BasicSR EDSR
checkpoint of the same shape loads with ``strict=True``); only the defaults differ:
num_feat 16, num_block 8 and the release's ``res_scale: 2``.
"""
from basicsr.archs.edsr_arch import EDSR
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class EDSRmini(EDSR):
    """EDSR f16b8 (49,603 params at x2) with the release's residual scale 2."""

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=16,
                 num_block=8,
                 upscale=2,
                 res_scale=2,
                 img_range=255.,
                 rgb_mean=(0.4488, 0.4371, 0.4040)):
        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, res_scale, img_range, rgb_mean)
        self.upscale = upscale
