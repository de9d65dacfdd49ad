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
* ``train``: the recipe's template (:mod:`.recipes`): ``srcomp`` by default, ``paper`` for
  the release's MultiLapLoss x 1.0 + L1 x 0.1 and MultiStepLR. ``total_iter`` may be given
  shorter; the schedule then ends with it.

Batch and patch size are those of the copied ``datasets.train`` (the release used batch 16,
HR patch 96 for EDSR and 128 for SwinIR in both stages).
"""
import copy

from ..errors import CompressError
from .recipes import DEFAULT_RECIPE, recipe_train

COPIED_KEYS = ('scale', 'num_gpu', 'manual_seed', 'datasets', 'val', 'logger', 'dist_params')
REQUIRED = {
    '': ('name', 'model_type', 'scale', 'datasets', 'network_g', 'network_t', 'path', 'train'),
    'path': ('pretrain_network_t', 'param_key_t', 'strict_load_t', 'pretrain_network_g', 'strict_load_g'),
    'train': ('optim_g', 'scheduler', 'total_iter', 'distill_opt', 'pixel_opt'),
    'datasets': ('train', ),
}


def build_distill_options(prune_opt, student_opt, teacher_checkpoint, name, param_key_t='params',
                          strict_load_t=True, student_init=None, total_iter=None,
                          recipe=DEFAULT_RECIPE):
    """The stage-3 option dict (see module docstring).

    Args:
        prune_opt: the stage-1 option dict (its ``network_g`` is the teacher).
        student_opt: the student's ``network_g`` dict.
        teacher_checkpoint: the original dense teacher's checkpoint path.
        name: the experiment name.
        param_key_t, strict_load_t: how to load the teacher checkpoint.
        student_init: a student checkpoint (``params``) to start from, or None (scratch).
        total_iter: None for the recipe's 800k iterations.
        recipe: the stage-3 recipe whose ``train`` section is written (:mod:`.recipes`).
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
    opt['train'] = recipe_train(recipe, total_iter)
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
