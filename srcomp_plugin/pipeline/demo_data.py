"""The demo's dataset: scikit-image's bundled photographs, prepared like DIV2K.

scikit-image (a BasicSR dependency) ships a dozen photographs and scans, so the demo
needs no download. Training and held-out images are disjoint lists (never the same
photograph in both: ``cat`` and ``chelsea`` are one image, so only ``chelsea`` is used).
Grayscale images are converted to 3 channels by ``srcomp prepare``, as for any user folder.
"""
from pathlib import Path

import cv2
import numpy as np

TRAIN_IMAGES = ('astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'retina', 'brick', 'grass', 'gravel', 'coins',
                'moon', 'page', 'text', 'clock', 'cell')
VAL_IMAGES = ('chelsea', 'immunohistochemistry', 'camera')
# larger photos (retina 1411 px, hubble 1000 px) are downscaled: decoding them for every
# random patch would dominate a CPU training step
MAX_SIDE = 512


def write_photos(folder, names):
    """Write the named ``skimage.data`` images as PNG files (BGR, as OpenCV expects)."""
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        img = np.asarray(getattr(data, name)())
        if img.ndim == 3:
            img = img[..., 2::-1]  # RGB(A) -> BGR, alpha dropped
        factor = MAX_SIDE / max(img.shape[:2])
        if factor < 1:
            img = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f'{name}.png'), img)
    return folder


SUB_IMAGE, SUB_STEP = 192, 96  # training tiles (multiples of 2, 3 and 4), as BasicSR's DIV2K recipe


def build_demo_dataset(root, scale):
    """Create ``root/{train,val}`` in the BasicSR layout for ``scale``; reuse it if present.

    Training reads sub-images (``HR_sub``, ``LR_bicubic/X<s>_sub``, same names) so that each
    random patch decodes a small tile, not a whole photograph. Returns a dict with
    ``train_gt``, ``train_lq`` (sub-images, ``filename_tmpl: '{}'``), ``val_gt``, ``val_lq``.
    """
    from ..data.prepare import prepare_dataset

    root = Path(root)
    paths = {}
    for split, names in (('train', TRAIN_IMAGES), ('val', VAL_IMAGES)):
        out = root / split
        if not (out / 'meta_info_HR.txt').is_file():
            src = write_photos(root / f'{split}_photos', names)
            prepare_dataset(src, out, scales=(scale, ), sub_images=split == 'train', crop_size=SUB_IMAGE,
                            step=SUB_STEP, archive_existing=True, progress=False)
        sub = '_sub' if split == 'train' else ''
        paths[f'{split}_gt'] = out / f'HR{sub}'
        paths[f'{split}_lq'] = out / 'LR_bicubic' / f'X{scale}{sub}'
    return paths
