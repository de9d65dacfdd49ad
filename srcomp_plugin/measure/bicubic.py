"""The bicubic reference of a paired test set: MATLAB-style bicubic upscaling of its LR
images, scored as the models are (BasicSR's metrics, Y channel, crop = scale)."""
from pathlib import Path

from ..data.dataset_checks import IMAGE_EXT


def bicubic_scores(gt_dir, lq_dir, scale, filename_tmpl='{}', ssim=False):
    """``{'psnr': dB}`` (and ``'ssim'``) averaged over the pairs of ``gt_dir`` and ``lq_dir``.

    Each HR image ``<stem><ext>`` pairs with the LR ``filename_tmpl.format(stem) + ext``, as in
    BasicSR's ``PairedImageDataset``; the HR is cropped to ``scale`` times the LR size. None
    when a folder or an image cannot be read here.
    """
    import cv2
    import numpy as np
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils.matlab_functions import imresize

    gt_dir, lq_dir = Path(str(gt_dir)), Path(str(lq_dir))
    if not (gt_dir.is_dir() and lq_dir.is_dir()):
        return None
    scores = {'psnr': []} if not ssim else {'psnr': [], 'ssim': []}
    for gt_path in sorted(p for p in gt_dir.iterdir() if p.suffix.lower() in IMAGE_EXT):
        gt = cv2.imread(str(gt_path))
        lq = cv2.imread(str(lq_dir / f'{filename_tmpl.format(gt_path.stem)}{gt_path.suffix}'))
        if gt is None or lq is None:
            return None
        up = np.clip(np.round(imresize(lq / 255., scale) * 255.), 0, 255)
        gt = gt[:up.shape[0], :up.shape[1]]
        scores['psnr'].append(calculate_psnr(up, gt, crop_border=scale, test_y_channel=True))
        if ssim:
            scores['ssim'].append(calculate_ssim(up, gt, crop_border=scale, test_y_channel=True))
    return {k: float(np.mean(v)) for k, v in scores.items()} if scores['psnr'] else None
