"""How good a student is before stage 3 trains it: PSNR of its initialisation on a validation set.

``srcomp compress`` reports this so that a useless initialisation (a slice of a teacher
whose dropped channels still carried signal) is visible before hours of distillation. The
measurement is BasicSR's own validation, image by image: the student's output through
``tensor2img`` (clamped to [0, 1], 8-bit) against the ground truth, ``calculate_psnr`` on
the Y channel with ``crop_border = scale``, averaged over the images, so the number is
comparable with the ``psnr`` that BasicSR logs during training.
"""
import torch
from basicsr.data import build_dataset
from basicsr.metrics.psnr_ssim import calculate_psnr
from basicsr.utils import tensor2img

from .shape_rule import build_arch


def init_psnr(student_opt, state_dict, val_dataset_opt, scale):
    """Mean Y-PSNR (dB) of ``student_opt`` with ``state_dict`` on a BasicSR validation dataset.

    Args:
        student_opt: the student's ``network_g`` dict (``type`` and kwargs).
        state_dict: its weights; must load with ``strict=True``.
        val_dataset_opt: a ``datasets.val`` dict of an option file (e.g. a ``PairedImageDataset``).
        scale: the upscaling factor (also the border cropped before measuring).
    """
    net = build_arch(student_opt['type'], {k: v for k, v in student_opt.items() if k != 'type'})
    net.load_state_dict(state_dict, strict=True)
    net.eval()
    dataset = build_dataset(dict(val_dataset_opt, phase='val', scale=scale))
    if len(dataset) == 0:
        raise ValueError(f'init_psnr: the validation dataset {val_dataset_opt.get("name")!r} has no images.')
    total = 0.0
    with torch.no_grad():
        for index in range(len(dataset)):
            item = dataset[index]
            output = net(item['lq'].unsqueeze(0))
            total += calculate_psnr(tensor2img([output]), tensor2img([item['gt'].unsqueeze(0)]), crop_border=scale,
                                    test_y_channel=True)
    return total / len(dataset)
