"""Teacher cache (``train.teacher_cache``, beyond the paper): the teacher's SR images, once.

Distillation runs the frozen teacher on every training batch, although its output for a
given image never changes. With a cache, the teacher runs once per training image (the full
LR image in, the SR image out; ``srcomp teacher-cache``, :mod:`.teacher_cache_cli`) and
the result is stored; the dataset then crops and flips the cached SR image exactly like
the HR patch, so training runs no teacher forward at all.

Storage, in the folder ``datasets.train.dataroot_teacher``:

* ``teacher_cache.json``: what the cache was made from (teacher checkpoint SHA-256,
  ``network_t``, scale, LR folder and keys) and its format. A cache made from anything
  else is refused, never silently reused.
* ``format: png``: one 16-bit PNG per LR image, ``<key>.png`` (``key`` = the LR file name
  without extension; BasicSR's LMDB key for LMDB datasets).
* ``format: lmdb``: the same PNG bytes in ``teacher.lmdb`` under the same keys.

"Full image" means one training file: with BasicSR's DIV2K sub-images (480x480 HR crops)
the teacher sees each sub-image whole, not the original 2K picture.

Approximations (``benchmarks/teacher_cache_effect.py`` measures them; the tests bound 1 and 3):

1. Patch borders: the live teacher sees only the LR patch and pads at its edge, the cached
   one saw the whole image. Targets agree exactly (to PNG precision) farther than the
   teacher's receptive field from the patch border and differ within it.
2. Flips/rotations: the cache holds ``flip(teacher(lq))``, the live teacher computes
   ``teacher(flip(lq))``; a CNN is not exactly flip-equivariant, so these differ slightly
   everywhere. Both are the teacher's prediction of the same flipped HR patch.
3. Storage: 16-bit codes cover [-0.5, 1.5], not [0, 1], because SR networks overshoot
   at edges and highlights (0.56% of a small EDSR teacher's pixels fell outside [0, 1],
   by up to 0.23); values are rounded to 2/65535 (at most 1.6e-5 off, about 1/250 of an
   8-bit step). The PNGs are therefore not meant for viewing: code = (value + 0.5) / 2 * 65535.
"""
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import OptionError, SrcompError

META_FILE = 'teacher_cache.json'
VALUE_RANGE = (-0.5, 1.5)
LMDB_DIR = 'teacher.lmdb'
FORMATS = ('png', 'lmdb')


class TeacherCacheError(SrcompError, RuntimeError):
    """A teacher cache that is missing, incomplete, or made from another teacher or dataset."""


def cache_key(lq_path):
    """The cache key of an LR image: its file name without folder and extension."""
    return osp.splitext(osp.basename(str(lq_path)))[0]


def encode_png16(img, value_range=VALUE_RANGE):
    """HxWxC float image (BGR, as OpenCV writes) -> 16-bit PNG bytes, ``value_range`` mapped to 0..65535."""
    lo, hi = value_range
    img16 = np.round((np.clip(img, lo, hi) - lo) * (65535. / (hi - lo))).astype(np.uint16)
    ok, buf = cv2.imencode('.png', img16)
    if not ok:
        raise TeacherCacheError('OpenCV could not encode a teacher output as 16-bit PNG')
    return buf.tobytes()


def decode_png16(content, where, value_range=VALUE_RANGE):
    """16-bit PNG bytes -> HxWxC float32 image (BGR), the inverse of ``encode_png16``."""
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16:
        raise TeacherCacheError(f'{where}: not a 16-bit PNG written by the teacher cache')
    if img.ndim == 2:
        img = img[..., None]
    lo, hi = value_range
    return img.astype(np.float32) * np.float32((hi - lo) / 65535.) + np.float32(lo)


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def cache_fingerprint(teacher_path, network_t, param_key, scale, dataroot_lq, keys):
    """What a cache depends on; two runs may share a cache only if these are equal."""
    return {
        'teacher_sha256': file_sha256(teacher_path),
        'network_t': json.loads(json.dumps(network_t, sort_keys=True, default=str)),
        'param_key_t': param_key,
        'scale': int(scale),
        'dataroot_lq': osp.abspath(str(dataroot_lq)),
        'num_images': len(keys),
        'keys_sha256': hashlib.sha256('\n'.join(keys).encode()).hexdigest(),
    }


def read_meta(root):
    path = osp.join(root, META_FILE)
    if not osp.isfile(path):
        raise TeacherCacheError(f'datasets.train.dataroot_teacher: {root} holds no teacher cache ({META_FILE} '
                                'missing); make it with "srcomp teacher-cache -opt <the training option file>".')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


class TeacherCacheStore:
    """Read and write access to one cache folder (PNG files or LMDB), opened lazily.

    Lazy opening matters: the dataset is pickled into DataLoader workers, and an open LMDB
    environment must not cross a fork.
    """

    def __init__(self, root, fmt=None, value_range=None, writable=False):
        self.root = str(root)
        self.fmt = fmt
        self.value_range = value_range
        self.writable = writable
        self._env = None

    def _format(self):
        if self.fmt is None or self.value_range is None:
            meta = read_meta(self.root)
            self.fmt, self.value_range = meta['format'], tuple(meta['value_range'])
        return self.fmt

    def _lmdb(self):
        if self._env is None:
            import lmdb

            path = osp.join(self.root, LMDB_DIR)
            if not self.writable and not osp.isdir(path):
                raise TeacherCacheError(f'datasets.train.dataroot_teacher: {path} is missing')
            # map_size is an address-space reservation, not disk use
            self._env = lmdb.open(path, map_size=1 << 40, readonly=not self.writable, lock=self.writable,
                                  readahead=False)
        return self._env

    def close(self):
        """Close the LMDB environment (LMDB allows one open handle per process and path)."""
        if self._env is not None:
            self._env.close()
            self._env = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_env'] = None
        return state

    def has(self, key):
        if self._format() == 'png':
            return osp.isfile(osp.join(self.root, f'{key}.png'))
        with self._lmdb().begin() as txn:
            return txn.get(key.encode()) is not None

    def put(self, key, content):
        if self._format() == 'png':
            path = osp.join(self.root, f'{key}.png')
            tmp = f'{path}.tmp{os.getpid()}'
            with open(tmp, 'wb') as f:
                f.write(content)
            os.replace(tmp, path)  # a killed run leaves no truncated PNG behind
        else:
            with self._lmdb().begin(write=True) as txn:
                txn.put(key.encode(), content)

    def get(self, key):
        """The cached SR image for ``key`` as HxWxC float32 BGR (values as the teacher gave them)."""
        if self._format() == 'png':
            path = osp.join(self.root, f'{key}.png')
            if not osp.isfile(path):
                raise TeacherCacheError(f'teacher cache {self.root}: no entry {key}.png; fill it in with '
                                        '"srcomp teacher-cache -opt <the training option file>"')
            with open(path, 'rb') as f:
                content = f.read()
            return decode_png16(content, path, self.value_range)
        with self._lmdb().begin() as txn:
            content = txn.get(key.encode())
        if content is None:
            raise TeacherCacheError(f'teacher cache {self.root}/{LMDB_DIR}: no key {key}')
        return decode_png16(content, f'{self.root}/{LMDB_DIR}[{key}]', self.value_range)


def open_cache(root, fingerprint, fmt, create=False):
    """The cache in ``root``, checked to be made from ``fingerprint`` in format ``fmt``.

    With ``create`` the folder and its meta file are made if missing, and the store is
    writable (for ``srcomp teacher-cache``); without, a missing cache is an error.
    """
    if fmt not in FORMATS:
        raise TeacherCacheError(f'train.teacher_cache.format must be one of {FORMATS}, got {fmt!r}')
    meta_path = osp.join(root, META_FILE)
    if create:
        os.makedirs(root, exist_ok=True)
    if osp.isfile(meta_path):
        meta = read_meta(root)
        stored_range = tuple(meta.get('value_range', ()))
        if meta.get('fingerprint') != fingerprint or meta.get('format') != fmt or stored_range != VALUE_RANGE:
            changed = sorted(k for k in fingerprint if meta.get('fingerprint', {}).get(k) != fingerprint[k])
            if meta.get('format') != fmt:
                changed.append('format')
            if stored_range != VALUE_RANGE:
                changed.append('value_range')
            raise TeacherCacheError(
                f'datasets.train.dataroot_teacher: the teacher cache in {root} was made from a different '
                f'{", ".join(changed)}. Delete that folder to rebuild it, or point dataroot_teacher elsewhere.')
    elif create:
        with open(meta_path, 'w', encoding='utf-8') as f:
            json.dump({'format': fmt, 'value_range': list(VALUE_RANGE), 'fingerprint': fingerprint}, f, indent=1)
    else:
        read_meta(root)  # raises: no cache there
    return TeacherCacheStore(root, fmt, VALUE_RANGE, writable=create)


@torch.inference_mode()
def teacher_sr(net_t, lq, scale, pad_multiple=1):
    """The teacher's SR image of one full LR image (1xCxHxW), padded to ``pad_multiple``.

    SwinIR needs sizes that are multiples of its window: the LR image is reflect-padded at
    the bottom/right and the output cropped back to ``scale`` times the input size.
    """
    h, w = lq.shape[-2:]
    pad_h, pad_w = (-h) % pad_multiple, (-w) % pad_multiple
    if pad_h or pad_w:
        mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
        lq = F.pad(lq, (0, pad_w, 0, pad_h), mode=mode)
    out = net_t(lq)
    expected = ((h + pad_h) * scale, (w + pad_w) * scale)
    if tuple(out.shape[-2:]) != expected:
        raise OptionError(f'network_t turned an LR image of {h + pad_h}x{w + pad_w} into '
                          f'{out.shape[-2]}x{out.shape[-1]}, not {expected[0]}x{expected[1]}: the teacher\'s '
                          f'scale must equal the student\'s (scale: {scale}); check network_t.upscale')
    return out[..., :h * scale, :w * scale]


def fill_cache(store, net_t, dataset, scale, device, pad_multiple=1, logger=None):
    """Compute the entries ``store`` lacks; returns how many were computed.

    ``dataset`` provides ``len()``, ``cache_key(i)`` and ``load_full_lq(i)`` (a CxHxW
    tensor exactly as training reads it).
    """
    todo = [i for i in range(len(dataset)) if not store.has(dataset.cache_key(i))]
    if logger and todo:
        logger.info(f'Teacher cache {store.root}: computing {len(todo)} SR images.')
    for n, i in enumerate(todo, 1):
        lq = dataset.load_full_lq(i).unsqueeze(0).to(device)
        sr = teacher_sr(net_t, lq, scale, pad_multiple)[0].float().cpu().numpy().transpose(1, 2, 0)
        if sr.shape[2] == 3:
            sr = cv2.cvtColor(sr, cv2.COLOR_RGB2BGR)
        store.put(dataset.cache_key(i), encode_png16(sr))
        if logger and (n % 500 == 0 or n == len(todo)):
            logger.info(f'Teacher cache: {n}/{len(todo)} done.')
    return len(todo)
