"""The stage-3 option file that stage 2 writes: a complete, runnable ``DistillSRModel`` run.

Modelled on ``options/distill/train_*mini_x*_distill.yml``. What comes from where:

* ``network_t``: the prune option file's ``network_g``, unchanged (the teacher);
* ``path.pretrain_network_t``: the prune option file's ``path.pretrain_network_g``, i.e.
  the ORIGINAL dense teacher (``param_key_g``/``strict_load_g`` carried over as the
  ``*_t`` keys). The sparse checkpoint of stage 1 is only evidence for the shape (and the
  optional pruned initialisation); distilling from it would distil a damaged teacher;
* ``network_g``: the derived student, its type (``EDSRmini``/``SwinIRmini``) and every
  kwarg explicit;
* ``path.pretrain_network_g``: ``~`` (from scratch, the release) or the pruned init;
* ``scale``, ``num_gpu``, ``manual_seed``, ``datasets``, ``val``, ``logger``,
  ``dist_params``: copied from the prune option file, so the run uses the same data;
* ``train``: method.md's stage-3 release settings: EMA 0.999, Adam lr 1e-4 betas (0.9,
  0.999), 800k iterations, MultiStepLR [250k, 400k, 450k] x0.5, ``distill_opt``
  MultiLapLoss weight 1.0 and ``pixel_opt`` L1 weight 0.1. ``total_iter`` may be given
  shorter, the milestones then scale with it.

Batch and patch size are those of the copied ``datasets.train`` (the release used batch 16,
HR patch 96 for EDSR and 128 for SwinIR in both stages).
"""
import copy

from .errors import CompressError

RELEASE_TOTAL_ITER = 800000
RELEASE_MILESTONES = (250000, 400000, 450000)
RELEASE_TRAIN = {
    'ema_decay': 0.999,
    'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.999]},
    'scheduler': {'type': 'MultiStepLR', 'milestones': list(RELEASE_MILESTONES), 'gamma': 0.5},
    'total_iter': RELEASE_TOTAL_ITER,
    'warmup_iter': -1,
    'distill_opt': {'type': 'MultiLapLoss', 'loss_weight': 1.0},
    'pixel_opt': {'type': 'L1Loss', 'loss_weight': 0.1, 'reduction': 'mean'},
}
COPIED_KEYS = ('scale', 'num_gpu', 'manual_seed', 'datasets', 'val', 'logger', 'dist_params')
REQUIRED = {
    '': ('name', 'model_type', 'scale', 'datasets', 'network_g', 'network_t', 'path', 'train'),
    'path': ('pretrain_network_t', 'param_key_t', 'strict_load_t', 'pretrain_network_g', 'strict_load_g'),
    'train': ('optim_g', 'scheduler', 'total_iter', 'distill_opt', 'pixel_opt'),
    'datasets': ('train', ),
}


def release_train(total_iter=None):
    """method.md's stage-3 ``train`` section; a shorter ``total_iter`` scales the milestones."""
    train = copy.deepcopy(RELEASE_TRAIN)
    if total_iter is not None:
        if not isinstance(total_iter, int) or total_iter < 1:
            raise CompressError(f'--total-iter must be a positive integer, got {total_iter!r}')
        train['total_iter'] = total_iter
        train['scheduler']['milestones'] = [max(1, round(m * total_iter / RELEASE_TOTAL_ITER))
                                            for m in RELEASE_MILESTONES]
    return train


def build_distill_options(prune_opt, student_opt, teacher_checkpoint, name, param_key_t='params',
                          strict_load_t=True, student_init=None, total_iter=None):
    """The stage-3 option dict (see module docstring).

    Args:
        prune_opt: the stage-1 option dict (its ``network_g`` is the teacher).
        student_opt: the student's ``network_g`` dict.
        teacher_checkpoint: the original dense teacher's checkpoint path.
        name: the experiment name.
        param_key_t, strict_load_t: how to load the teacher checkpoint.
        student_init: a student checkpoint (``params``) to start from, or None (scratch).
        total_iter: None for the release's 800k iterations.
    """
    opt = {'name': name, 'model_type': 'DistillSRModel'}
    for key in COPIED_KEYS:
        if key in prune_opt:
            opt[key] = copy.deepcopy(prune_opt[key])
    opt['network_g'] = copy.deepcopy(student_opt)
    opt['network_t'] = copy.deepcopy(prune_opt['network_g'])
    opt['path'] = {
        'pretrain_network_g': None if student_init is None else str(student_init),
        'param_key_g': 'params',
        'strict_load_g': True,
        'resume_state': None,
        'pretrain_network_t': str(teacher_checkpoint),
        'param_key_t': param_key_t,
        'strict_load_t': strict_load_t,
    }
    opt['train'] = release_train(total_iter)
    order = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'network_g', 'network_t', 'path',
             'train', 'val', 'logger', 'dist_params')
    opt = {key: opt[key] for key in order if key in opt}
    check_distill_options(opt)
    return opt


def check_distill_options(opt, where='distill options'):
    """Raise CompressError unless ``opt`` has everything a ``DistillSRModel`` run needs.

    The schema: the keys of :data:`REQUIRED`; ``model_type: DistillSRModel``; ``network_g``
    and ``network_t`` with a ``type``; a teacher checkpoint path; a ``datasets.train`` with
    ``gt_size`` a multiple of 16 (MultiLapLoss's five pyramid levels halve it four times)
    and of ``scale``; a loss to train with.
    """
    problems = []
    for section, keys in REQUIRED.items():
        container = opt if not section else opt.get(section)
        if not isinstance(container, dict):
            problems.append(f'{section} must be a mapping')
            continue
        problems += [f'{section + "." if section else ""}{key} is missing' for key in keys if key not in container]
    if opt.get('model_type') != 'DistillSRModel':
        problems.append(f'model_type must be DistillSRModel, got {opt.get("model_type")!r}')
    for net in ('network_g', 'network_t'):
        if not isinstance(opt.get(net), dict) or not opt[net].get('type'):
            problems.append(f'{net} must be a mapping with a type')
    if not (opt.get('path') or {}).get('pretrain_network_t'):
        problems.append('path.pretrain_network_t (the dense teacher checkpoint) is empty')
    train_set = (opt.get('datasets') or {}).get('train') or {}
    gt_size, scale = train_set.get('gt_size'), opt.get('scale')
    if gt_size is not None and isinstance(scale, int):
        if gt_size % 16 or gt_size % scale or gt_size < 32:
            problems.append(f'datasets.train.gt_size {gt_size} must be >= 32 and a multiple of 16 (MultiLapLoss) '
                            f'and of scale {scale}')
    train = opt.get('train') or {}
    if not train.get('distill_opt') and not train.get('pixel_opt'):
        problems.append('train.distill_opt and train.pixel_opt are both empty')
    if problems:
        raise CompressError(f'{where}: ' + '; '.join(problems))
