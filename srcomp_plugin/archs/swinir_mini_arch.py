"""SwinIRmini: the paper's compact SwinIR, a preset of BasicSR's ``SwinIR``.

Same modules and state-dict keys as ``basicsr.archs.swinir_arch.SwinIR`` for the same
kwargs (``img_size`` included, since the shift masks are buffers sized by it). What the
preset adds: any input size is accepted. BasicSR's SwinIR fails when the LR size is not a
multiple of the window; SwinIRmini reflect-pads the input up to the next multiple and
crops the output back to ``scale x`` the input size. And, unless ``fused_attention: false``,
its window attention runs the fused path of :mod:`srcomp_plugin.accel.swinir_fast_attention` (same weights,
same output to float rounding, several times faster on CPU).
"""
import torch
import torch.nn.functional as F
from basicsr.archs.swinir_arch import SwinIR
from basicsr.utils.registry import ARCH_REGISTRY

from ..accel.swinir_fast_attention import use_fused_attention


@ARCH_REGISTRY.register()
class SwinIRmini(SwinIR):
    """SwinIR C24, depths [4,4,4], heads [6,6,6] (98,868 params at x2)."""

    def __init__(self,
                 upscale=2,
                 in_chans=3,
                 img_size=64,
                 window_size=8,
                 img_range=1.,
                 embed_dim=24,
                 depths=(4, 4, 4),
                 num_heads=(6, 6, 6),
                 mlp_ratio=2.,
                 upsampler='pixelshuffledirect',
                 resi_connection='1conv',
                 fused_attention=True,
                 **kwargs):
        super().__init__(
            upscale=upscale,
            in_chans=in_chans,
            img_size=img_size,
            window_size=window_size,
            img_range=img_range,
            embed_dim=embed_dim,
            depths=list(depths),
            num_heads=list(num_heads),
            mlp_ratio=mlp_ratio,
            upsampler=upsampler,
            resi_connection=resi_connection,
            **kwargs)
        self.window_size = window_size
        if fused_attention:
            use_fused_attention(self)

    def forward(self, x):
        h, w = x.shape[-2:]
        pad_h = (-h) % self.window_size
        pad_w = (-w) % self.window_size
        if torch.jit.is_tracing():
            # Exported graphs (TorchScript, ONNX) take any size >= the window: the sizes are
            # traced, so pad unconditionally (a zero pad is a no-op) and always reflect.
            x = F.pad(x, (0, pad_w, 0, pad_h), mode='reflect')
        elif pad_h or pad_w:
            # reflect needs pad < size; replicate covers inputs smaller than the pad.
            mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = super().forward(x)
        scale = self.upscale if self.upsampler else 1
        return out[..., :h * scale, :w * scale]
