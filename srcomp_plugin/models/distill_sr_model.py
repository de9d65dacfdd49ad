"""Stage 3: ``DistillSRModel``, BasicSR's ``SRModel`` trained against a frozen teacher.

Loss (method.md): ``L = distill(student(lq), teacher(lq)) + pixel(student(lq), gt)``, with
``train.distill_opt`` defaulting to ``MultiLapLoss`` (weight 1.0) and ``train.pixel_opt``
an L1 of weight 0.1 in the paper. Everything else (EMA, optimizer, scheduler, validation,
checkpoints, resume, DDP of the student) is SRModel's.

Options beyond SRModel's:

* ``network_t``: the teacher architecture (any BasicSR/plugin arch, same scale as ``network_g``).
* ``path.pretrain_network_t`` (required), ``path.param_key_t`` (default ``params``; falls back
  to ``params`` as BasicSR does; ``~`` for a bare state dict), ``path.strict_load_t`` (default true).
  They are recorded in ``experiments/<name>/teacher.json``, which ``--auto_resume`` reads back
  (BasicSR's resume would otherwise point ``pretrain_network_t`` at a checkpoint that never exists).
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
  DistillPairedImageDataset`` and its ``dataroot_teacher``.
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

The teacher, unlike in the release, is frozen: built from ``network_t``, moved with
``.to(device)`` only (never DDP), put in eval mode with ``requires_grad_(False)``, run under
``torch.no_grad()``; it is not ``net_g``, so SRModel's optimizer, EMA and ``save`` never see it.
``no_grad`` rather than ``inference_mode``: an inference-mode tensor cannot be saved for
backward, so a distillation loss such as ``L1Loss`` (which saves its target) would need a
copy of it; under ``no_grad`` there is neither graph nor copy.
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from copy import deepcopy

import torch
from torch import distributed as dist

from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ..data.distill_paired_dataset import DistillPairedImageDataset
from ..data.extra_inputs_dataset import ExtraInputsPairedImageDataset, read_extra_prob
from ..data.teacher_cache import cache_fingerprint, fill_cache, open_cache
from ..accel import use_cpu_fast_paths
from ..errors import InputFileError, OptionError
from .checkpoint_safety import CheckpointLoadError, CheckpointSafetyMixin

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
        self.net_t = self.build_teacher() if self.cri_distill is not None else None
        self.teacher_output = None
        self.use_teacher_cache = bool(train_opt.get('teacher_cache')) and self.cri_distill is not None
        self._check_train_dataset()
        if self.use_teacher_cache:
            self.prepare_teacher_cache()
            self.net_t = None  # every target now comes from the cache: free the teacher

    def teacher_source(self):
        """``path.pretrain_network_t``, ``param_key_t`` and ``strict_load_t``, kept across resumes.

        On resume, BasicSR's ``check_resume`` points every ``path.pretrain_network_*`` at
        ``models/net_*_<iter>.pth`` and turns ``params_ema`` keys into ``params``. The teacher
        is never saved there, so the first run records its source in
        ``<experiments_root>/teacher.json`` and a resumed run reads it back (unless
        ``path.ignore_resume_networks`` lists ``network_t``, BasicSR's own opt-out).
        """
        path_opt = self.opt['path']
        record = osp.join(path_opt['experiments_root'], 'teacher.json')
        ignored = path_opt.get('ignore_resume_networks') or []
        if path_opt.get('resume_state') and 'network_t' not in ignored:
            if not osp.isfile(record):
                raise InputFileError(
                    f'Resuming: BasicSR replaced path.pretrain_network_t by {path_opt.get("pretrain_network_t")} and '
                    f'{record} (written by the first run) is missing; add "ignore_resume_networks: [network_t]" '
                    'under path to load the teacher from path.pretrain_network_t.')
            with open(record, encoding='utf-8') as f:
                source = json.load(f)
            get_root_logger().info(f'Resuming: teacher source read back from {record}.')
            return source
        if not path_opt.get('pretrain_network_t'):
            raise OptionError('DistillSRModel needs path.pretrain_network_t: the pretrained teacher checkpoint '
                              '(a BasicSR .pth with "params" or "params_ema")')
        source = {'pretrain_network_t': osp.abspath(path_opt['pretrain_network_t']),
                  'param_key_t': path_opt.get('param_key_t', 'params'),
                  'strict_load_t': path_opt.get('strict_load_t', True)}
        if self.opt.get('rank', 0) == 0:
            os.makedirs(path_opt['experiments_root'], exist_ok=True)
            with open(record, 'w', encoding='utf-8') as f:
                json.dump(source, f, indent=1)
        return source

    def build_teacher(self):
        """The frozen teacher from ``network_t`` and ``path.pretrain_network_t``."""
        if not self.opt.get('network_t'):
            raise OptionError('DistillSRModel needs network_t: the teacher architecture (e.g. type: EDSR, '
                              'num_feat: 64, num_block: 16, upscale: <scale>)')
        source = self.teacher_source()
        load_path, param_key, strict = source['pretrain_network_t'], source['param_key_t'], source['strict_load_t']
        self.opt['path'].update(source)
        if not osp.isfile(load_path):
            raise InputFileError(f'path.pretrain_network_t: teacher checkpoint {load_path} does not exist')
        net_t = build_network(self.opt['network_t']).to(self.device)
        try:
            self.load_network(net_t, load_path, strict, param_key)
        except CheckpointLoadError as err:  # its message already says what to check
            raise CheckpointLoadError(f'path.pretrain_network_t: cannot load teacher checkpoint {load_path} into '
                                      f'network_t ({self.opt["network_t"].get("type")}): {err}') from err
        except Exception as err:
            raise CheckpointLoadError(
                f'path.pretrain_network_t: cannot load teacher checkpoint {load_path} into network_t '
                f'({self.opt["network_t"].get("type")}) with param key {param_key!r}: {type(err).__name__}: {err}. '
                'Check that network_t matches the checkpoint (or set path.strict_load_t: false) and '
                'path.param_key_t (default "params"; ~ for a bare state dict).') from err
        net_t.eval()
        net_t.requires_grad_(False)
        use_cpu_fast_paths(net_t)  # same weights, same outputs to float rounding
        precision = self.opt['train'].get('teacher_precision', 'fp32')
        if precision not in ('fp32', 'bf16'):
            raise OptionError(f'train.teacher_precision must be fp32 or bf16, got {precision!r}')
        self.teacher_bf16 = precision == 'bf16'
        self.teacher_channels_last = bool(self.opt['train'].get('teacher_channels_last', False))
        if self.teacher_channels_last:
            net_t.to(memory_format=torch.channels_last)
        n_params = sum(p.numel() for p in net_t.parameters())
        get_root_logger().info(f'Teacher network_t: {type(net_t).__name__} with {n_params:,d} parameters '
                               f'(frozen) from {load_path}.')
        return net_t

    def _check_train_dataset(self):
        train_set = self.opt.get('datasets', {}).get('train')
        if train_set is None:
            return
        self._check_extra_inputs(train_set)
        is_cache_set = train_set.get('type') == DistillPairedImageDataset.__name__
        if self.use_teacher_cache and not is_cache_set:
            raise OptionError('train.teacher_cache needs datasets.train.type: DistillPairedImageDataset (with '
                              'dataroot_teacher), which crops the cached teacher image with the HR patch')
        if is_cache_set and not self.use_teacher_cache:
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

    def prepare_teacher_cache(self):
        """Fill ``datasets.train.dataroot_teacher`` with the teacher's SR images (missing ones only)."""
        cache_opt = self.opt['train']['teacher_cache']
        cache_opt = cache_opt if isinstance(cache_opt, dict) else {}
        dataset_opt = deepcopy(self.opt['datasets']['train'])
        dataset = DistillPairedImageDataset(dataset_opt)
        keys = [dataset.cache_key(i) for i in range(len(dataset))]
        if len(set(keys)) != len(keys):
            raise OptionError('train.teacher_cache: two training LR images share a file name; the cache is keyed '
                              'by file name, so rename them or disable the cache')
        path_opt = self.opt['path']
        fingerprint = cache_fingerprint(path_opt['pretrain_network_t'], self.opt['network_t'],
                                        path_opt.get('param_key_t', 'params'), self.opt['scale'],
                                        dataset_opt['dataroot_lq'], keys)
        rank, world_size = self.opt.get('rank', 0), self.opt.get('world_size', 1)
        root = dataset.teacher_root
        if rank == 0:
            open_cache(root, fingerprint, cache_opt.get('format', 'png')).close()
        self._barrier()
        store = open_cache(root, fingerprint, cache_opt.get('format', 'png'))
        pad = cache_opt.get('pad_multiple', self.opt['network_t'].get('window_size', 1))
        fill_cache(store, self.net_t, dataset, self.opt['scale'], self.device, rank, world_size, pad,
                   logger=get_root_logger())
        store.close()
        self._barrier()

    def _barrier(self):
        if self.opt.get('dist') and dist.is_initialized():
            dist.barrier()

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
