"""Stage 3: ``DistillSRModel``, BasicSR's ``SRModel`` trained against a frozen teacher.

Loss (``docs/method.md``): ``L = distill(student(lq), teacher(lq)) + pixel(student(lq), gt)``, with
``train.distill_opt`` defaulting to ``MultiLapLoss`` (weight 1.0) and ``train.pixel_opt``
an L1 of weight 0.1 in the paper. Everything else (EMA, optimizer, scheduler, validation,
checkpoints, resume, DDP of the student) is SRModel's.

Options beyond SRModel's:

* ``network_t``: the teacher architecture (any BasicSR/plugin arch, same scale as ``network_g``).
* ``path.pretrain_network_t`` (required), ``path.param_key_t`` (default ``params``; falls back
  to ``params`` as BasicSR does; ``~`` for a bare state dict), ``path.strict_load_t`` (default true);
  :mod:`.frozen_teacher` loads it. On resume they stay as given: the entry points list
  ``network_t`` in BasicSR's ``path.ignore_resume_networks``
  (:func:`srcomp_plugin.utils.resume_state.check_resume`), since the teacher is never saved.
* ``train.distill_opt`` / ``train.pixel_opt``: either may be null, not both. Leaving
  ``distill_opt`` out means MultiLapLoss; ``distill_opt: ~`` turns distillation off (no teacher).
* ``train.teacher_precision: bf16`` and ``train.teacher_channels_last: true`` (beyond the paper):
  run the live teacher under bfloat16 autocast and/or in channels_last memory format; measured
  in ``benchmarks/RESULTS.md`` (speed on a bf16-capable CPU, and PSNR against float32). SwinIR
  teachers always use the fused window attention, EDSR teachers the fused channels_last
  convolutions (``srcomp_plugin/accel/``: same weights, same outputs to
  float rounding).
* ``train.teacher_cache`` (beyond the paper): ``{format: png|lmdb}`` or ``true``; see
  ``srcomp_plugin/data/teacher_cache.py``. Needs ``datasets.train.type:
  DistillPairedImageDataset`` and its ``dataroot_teacher``, filled beforehand by
  ``srcomp teacher-cache -opt OPT.yml``; the model checks it is complete and builds no teacher.
* Teacher-labelled extra inputs (beyond the paper): with ``datasets.train.type:
  ExtraInputsPairedImageDataset`` (``srcomp_plugin/data/extra_inputs_dataset.py``) a batch
  holds unlabelled LR inputs too (``labelled`` false, placeholder ``gt``). The pixel loss is
  the mean over the labelled samples only, and is skipped (not logged) when a batch has none;
  under DDP a 0 ``l_pix`` is logged instead, because ``reduce_loss_dict`` reduces one tensor
  of every rank's losses, so all ranks must log the same keys. The distillation loss covers
  all samples. Unlabelled inputs need the live teacher: they are refused with no
  ``distill_opt`` or with ``train.teacher_cache`` (which holds the labelled images' targets only).

The release's key names are accepted with a deprecation warning: ``tea_network_g`` ->
``network_t``; ``tea_path`` (a path, or a dict with ``pretrain_network_g``, ``param_key_g``,
``strict_load_g``) and ``path.tea_path`` -> ``path.*_t``; ``train.dis_opt`` -> ``distill_opt``;
``train.stu_opt`` -> ``pixel_opt``.

The teacher, unlike in the release, is frozen (:mod:`.frozen_teacher`) and run under
``torch.no_grad()``. ``no_grad`` rather than ``inference_mode``: an inference-mode tensor cannot be saved for
backward, so a distillation loss such as ``L1Loss`` (which saves its target) would need a
copy of it; under ``no_grad`` there is neither graph nor copy.
"""
import os.path as osp
from collections import OrderedDict

import torch

from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ..data.distill_paired_dataset import DistillPairedImageDataset
from ..data.extra_inputs_dataset import ExtraInputsPairedImageDataset, read_extra_prob
from ..data.teacher_cache_request import check_cache
from ..errors import OptionError
from .checkpoint_safety import CheckpointSafetyMixin
from .frozen_teacher import build_teacher

DEFAULT_DISTILL_OPT = {'type': 'MultiLapLoss', 'loss_weight': 1.0}
_PATH_ALIASES = {'pretrain_network_g': 'pretrain_network_t', 'param_key_g': 'param_key_t',
                 'strict_load_g': 'strict_load_t'}


def _move(container, old, new, where, logger):
    if old not in container:
        return
    if container.get(new) is not None:
        raise OptionError(f'{where}{old} and {where}{new} are both set; keep only {where}{new}')
    logger.warning(f'Option {where}{old} is deprecated (the release\'s name); use {where}{new}.')
    container[new] = container.pop(old)


def apply_release_aliases(opt, logger=None):
    """Rename the release's option keys to ours in place (with a deprecation warning)."""
    logger = logger or get_root_logger()
    _move(opt, 'tea_network_g', 'network_t', '', logger)
    path_opt = opt.setdefault('path', {})
    tea_path = opt.pop('tea_path', None)
    if isinstance(tea_path, dict):
        for old, new in _PATH_ALIASES.items():
            if old in tea_path or new in tea_path:
                key = old if old in tea_path else new
                if path_opt.get(new) is not None:
                    raise OptionError(f'tea_path.{key} and path.{new} are both set; keep only path.{new}')
                path_opt[new] = tea_path[key]
        logger.warning('Option tea_path is deprecated (the release\'s name); use path.pretrain_network_t, '
                       'path.param_key_t and path.strict_load_t.')
    elif tea_path is not None:
        path_opt['tea_path'] = tea_path
    _move(path_opt, 'tea_path', 'pretrain_network_t', 'path.', logger)
    if path_opt.get('pretrain_network_t') is not None:
        path_opt['pretrain_network_t'] = osp.expanduser(str(path_opt['pretrain_network_t']))
    train_opt = opt.get('train')
    if train_opt is not None:
        _move(train_opt, 'dis_opt', 'distill_opt', 'train.', logger)
        _move(train_opt, 'stu_opt', 'pixel_opt', 'train.', logger)
    return opt


@MODEL_REGISTRY.register()
class DistillSRModel(CheckpointSafetyMixin, SRModel):
    """SRModel whose loss adds a distillation term against a frozen, pretrained teacher."""

    def __init__(self, opt):
        apply_release_aliases(opt)
        super().__init__(opt)

    def init_training_settings(self):
        train_opt = self.opt['train']
        if train_opt.get('perceptual_opt'):
            raise OptionError('DistillSRModel does not use train.perceptual_opt; remove it (or use SRGANModel)')
        if 'distill_opt' not in train_opt:
            train_opt['distill_opt'] = dict(DEFAULT_DISTILL_OPT)
            get_root_logger().info(f'train.distill_opt not given: using {DEFAULT_DISTILL_OPT}.')
        if not train_opt['distill_opt'] and not train_opt.get('pixel_opt'):
            raise OptionError('DistillSRModel needs train.distill_opt (loss to the teacher), train.pixel_opt (loss '
                              'to the ground truth), or both; both are empty')

        if train_opt.get('pixel_opt'):
            super().init_training_settings()
        else:
            # SRModel refuses to train without a ground-truth loss, but distillation alone is
            # valid. It sets up EMA, optimizer and scheduler against a view of the train options
            # holding a placeholder pixel loss, which is dropped right after.
            self.opt['train'] = dict(train_opt, pixel_opt={'type': 'L1Loss', 'loss_weight': 0.0})
            try:
                super().init_training_settings()
            finally:
                self.opt['train'] = train_opt
            self.cri_pix = None

        self.cri_distill = build_loss(train_opt['distill_opt']).to(self.device) if train_opt['distill_opt'] else None
        self.use_teacher_cache = bool(train_opt.get('teacher_cache')) and self.cri_distill is not None
        self.teacher_output = None
        self._check_train_dataset()
        self.net_t = None  # with a cache, every target comes from it
        if self.use_teacher_cache:
            check_cache(self.opt)
        elif self.cri_distill is not None:
            self.net_t = self.live_teacher()

    def live_teacher(self):
        """The frozen teacher, set up to run as ``train.teacher_precision``/``teacher_channels_last`` ask."""
        precision = self.opt['train'].get('teacher_precision', 'fp32')
        if precision not in ('fp32', 'bf16'):
            raise OptionError(f'train.teacher_precision must be fp32 or bf16, got {precision!r}')
        net_t = build_teacher(self.opt, self.device, get_root_logger())
        self.teacher_bf16 = precision == 'bf16'
        self.teacher_channels_last = bool(self.opt['train'].get('teacher_channels_last', False))
        if self.teacher_channels_last:
            net_t.to(memory_format=torch.channels_last)
        return net_t

    def _check_train_dataset(self):
        train_set = self.opt.get('datasets', {}).get('train')
        if train_set is None:
            return
        self._check_extra_inputs(train_set)
        # the other way round (a cache without its dataset type) is check_cache's
        if train_set.get('type') == DistillPairedImageDataset.__name__ and not self.use_teacher_cache:
            raise OptionError('datasets.train.type DistillPairedImageDataset reads a teacher cache: set '
                              'train.teacher_cache (and a distill_opt), or use PairedImageDataset')

    def _check_extra_inputs(self, train_set):
        """Unlabelled inputs have no target but the live teacher's: refuse set-ups without one."""
        if train_set.get('type') != ExtraInputsPairedImageDataset.__name__ or read_extra_prob(train_set) == 0:
            return
        where = 'datasets.train.type: ExtraInputsPairedImageDataset with extra_prob > 0'
        if self.cri_distill is None:
            raise OptionError(f'{where} yields unlabelled samples, which only the teacher can label, but '
                              'train.distill_opt is empty: set train.distill_opt (and network_t), or set '
                              'datasets.train.extra_prob: 0')
        if self.use_teacher_cache:
            raise OptionError(f'{where} yields unlabelled samples, but train.teacher_cache holds teacher outputs '
                              'for the labelled training images only: remove train.teacher_cache (the live '
                              'teacher labels them), or set datasets.train.extra_prob: 0')

    def feed_data(self, data):
        super().feed_data(data)
        self.teacher_output = data['teacher'].to(self.device) if 'teacher' in data else None
        self.labelled = data['labelled'].to(self.device).bool() if 'labelled' in data else None

    def teacher_targets(self):
        """The teacher's SR output for ``self.lq``: cached, or one frozen forward."""
        if self.use_teacher_cache:
            if self.teacher_output is None:
                raise OptionError('train.teacher_cache is set but the batch has no "teacher" image; use '
                                  'datasets.train.type: DistillPairedImageDataset')
            return self.teacher_output
        lq = self.lq.contiguous(memory_format=torch.channels_last) if self.teacher_channels_last else self.lq
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.teacher_bf16):
            return self.net_t(lq).float()

    def _check_scale(self, target):
        if target.shape != self.output.shape:
            source = 'teacher cache' if self.use_teacher_cache else 'network_t'
            raise OptionError(
                f'The teacher\'s output {tuple(target.shape)} (from the {source}) differs from the student\'s '
                f'{tuple(self.output.shape)} for an LR batch {tuple(self.lq.shape)}: network_t.upscale '
                f'({self.opt["network_t"].get("upscale")}) and network_g.upscale '
                f'({self.opt["network_g"].get("upscale")}) must both equal scale ({self.opt.get("scale")}).')

    def labelled_pixel_loss(self):
        """``cri_pix`` over the samples with a ground truth; None when the batch has none."""
        if self.labelled is None or self.labelled.all():
            return self.cri_pix(self.output, self.gt)
        if not self.labelled.any():
            return None
        return self.cri_pix(self.output[self.labelled], self.gt[self.labelled])

    def optimize_parameters(self, current_iter):
        # The teacher runs first, so its activations are freed before the student's graph exists.
        target = self.teacher_targets() if self.cri_distill is not None else None
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)

        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_distill is not None:
            self._check_scale(target)
            l_distill = self.cri_distill(self.output, target)
            l_total += l_distill
            loss_dict['l_distill'] = l_distill
        if self.cri_pix is not None:
            l_pix = self.labelled_pixel_loss()
            if l_pix is not None:
                l_total += l_pix
                loss_dict['l_pix'] = l_pix
            elif self.opt.get('dist'):
                loss_dict['l_pix'] = torch.zeros((), device=self.device)  # every rank logs the same keys
        l_total.backward()
        self.optimizer_g.step()

        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
