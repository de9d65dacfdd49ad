"""Reading arbitrary user images as 8-bit, 3-channel arrays.

SR models in BasicSR expect 8-bit BGR images with three channels. Users' folders hold
grayscale scans, RGBA PNGs and 16-bit TIFF/PNG files; we convert them explicitly (and
say so) instead of letting OpenCV guess, so LR and HR are always made the same way.
"""
import cv2
import numpy as np

from ..errors import SrcompError


class UnreadableImageError(SrcompError, ValueError):
    """Raised with the file name when OpenCV cannot decode an image."""


def read_image_bgr8(path):
    """Return ``(img, notes)``: ``img`` is HxWx3 uint8 BGR; ``notes`` lists the conversions done."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise UnreadableImageError(f'cannot read image file {path} (not an image, or corrupt)')
    notes = []
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
        notes.append('16-bit -> 8-bit')
    elif img.dtype != np.uint8:
        raise UnreadableImageError(f'unsupported pixel type {img.dtype} in {path}; use 8- or 16-bit images')
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        notes.append('grayscale -> 3 channels')
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        notes.append('alpha channel dropped')
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
        notes.append('grayscale -> 3 channels')
    return img, notes
