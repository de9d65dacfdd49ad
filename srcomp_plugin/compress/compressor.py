"""Stage 2 end to end: prune options + sparse checkpoint -> student shape, stage-3 options, report.

:func:`compress` is what ``srcomp compress`` (and the pipeline) call; every step is one of
the small modules beside it:

1. read the teacher's ``network_g`` from the stage-1 option file and load the sparse
   checkpoint into it strictly (so a checkpoint of another shape fails here, clearly);
2. measure its density exactly as stage 1 does (:mod:`srcomp_plugin.measure.sparsity`,
   with the option file's ``train.sparsity.measure`` or the arch's default patterns);
3. r = the measured global density, unless a ratio or parameter budget is given;
4. derive the student (:mod:`.shape_rule`);
5. slice a student initialisation out of the sparse teacher when the recipe (or ``init``)
   asks for it (:mod:`.pruned_init`);
6. build the stage-3 options with the recipe's settings (:mod:`.distill_options`,
   :mod:`.recipes`) and the report (:mod:`.report`).

It returns all of it as data and writes nothing: :mod:`.writer` names and writes the files
(``srcomp compress`` and the pipeline call it), so stage 2 runs without touching the disk.
"""
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..measure.complexity import profile_network
from ..measure.sparsity import density_report, resolve_patterns
from ..utils.checkpoint_io import CheckpointReadError, load_state_dict
from ..utils.safe_yaml import read_options
from .distill_options import build_distill_options
from ..errors import CompressError, CompressWarning, ProfileError
from ..families import teacher_family
from .init_quality import init_psnr
from .pruned_init import pruned_state_dict
from .recipes import DEFAULT_RECIPE, INITS, load_recipe
from .report import build_report
from .shape_rule import build_arch, derive_student, parse_ratio
from .writer import pruned_init_path, report_paths


@dataclass
class CompressResult:
    """What :func:`compress` produced, for :func:`.writer.write_outputs` to write at ``out``."""
    shape: object  # shape_rule.StudentShape
    distill_opt: dict  # the stage-3 options; their path.pretrain_network_g names init_checkpoint
    report: dict
    out: Path  # where the stage-3 option file goes; the other files go beside it
    init_checkpoint: Path = None  # where the sliced student goes (init: pruned), else None
    student_state_dict: dict = None  # the sliced student (init: pruned), else None


def read_teacher_options(path):
    """The stage-1 option file as a dict, checked to hold a ``network_g``; errors name the file."""
    opt = read_options(path)
    if not isinstance(opt.get('network_g'), dict):
        raise CompressError(f'{path} has no network_g mapping: give the stage-1 (prune) option file of the teacher')
    return opt


def load_teacher_checkpoint(network_opt, checkpoint, key=None, where='network_g'):
    """The checkpoint's state dict (``params`` by default), checked to load strictly into ``network_opt``."""
    try:
        state_dict, key = load_state_dict(checkpoint, (key or 'params', ))
    except CheckpointReadError as err:
        raise CompressError(str(err)) from err
    net = build_arch(network_opt['type'], {k: v for k, v in network_opt.items() if k != 'type'})
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise CompressError(f'checkpoint {checkpoint} (key {key!r}) does not match {where} ({network_opt["type"]}); '
                            'give the stage-1 checkpoint of this option file\'s network_g (or pick another key with '
                            f'--key): {err}'.strip()) from err
    return net.state_dict(), key


def _profile(network_opt, scale, where):
    try:
        return profile_network(network_opt, scale=scale, latency=False, where=where)
    except ProfileError as err:
        raise CompressError(str(err)) from err


def _init_psnr(prune_opt, shape, student_sd, notes):
    """``{'psnr', 'dataset'}`` of the sliced student on the option file's first ``val`` set, or None.

    A slice that starts far below bicubic buys stage 3 little; this makes that visible
    before the run. Missing data is a note, not an error: stage 2 needs no images.
    """
    datasets = prune_opt.get('datasets') or {}
    val = next((v for k, v in sorted(datasets.items()) if k.startswith('val') and isinstance(v, dict)), None)
    if val is None:
        return None
    missing = [val[k] for k in ('dataroot_gt', 'dataroot_lq') if not Path(str(val.get(k))).exists()]
    if missing:
        notes.append(f'init PSNR not measured: {missing[0]} (datasets.val) does not exist here')
        return None
    try:
        psnr = init_psnr(shape.network_opt(), student_sd, val, prune_opt.get('scale'))
    except Exception as err:  # noqa: BLE001  (a report line must not stop stage 2)
        notes.append(f'init PSNR not measured on datasets.val: {type(err).__name__}: {err}')
        return None
    return {'psnr': psnr, 'dataset': val.get('name', 'val')}


def _default_name(out):
    return Path(out).stem


DENSE = Fraction(1, 2)  # a measured density above this is no stage-1 result: warn


def compress(prune_opt, checkpoint, out, ratio=None, params=None, depth_keep=None, init=None, key=None,
             teacher_checkpoint=None, total_iter=None, name=None, macs=True, opt_path=None, recipe=DEFAULT_RECIPE):
    """Run stage 2; returns a :class:`CompressResult`, which :func:`.writer.write_outputs` writes.

    Args:
        prune_opt: the stage-1 option file (path) or its dict; its ``network_g`` is the teacher.
        checkpoint: the sparse checkpoint of stage 1 (``net_g_*.pth``).
        out: where the stage-3 option file will be written (``.yml``); the report and the
            pruned init go beside it, and the options and report name them.
        ratio: target params ratio in (0, 1] (number, decimal string or ``'a/b'``); default
            the target of the option file's ``train.sparsity.structured`` (the student stage 1
            decayed to), else the measured global density. ``params``: an absolute budget instead.
        depth_keep: fraction of residual units kept (default the structured target's, else 0.5).
        init: ``'scratch'`` (random weights) or ``'pruned'`` (slice the sparse teacher);
            default: the recipe's.
        key: state-dict key of the checkpoint (default ``params``: the sparse weights).
        teacher_checkpoint: the dense teacher for stage 3 (default the option file's
            ``path.pretrain_network_g``).
        total_iter: stage-3 iterations (default the release's 800k; milestones scale).
        name: stage-3 experiment name (default the output file's stem).
        macs: also count MACs at a 720p output (a few seconds for SwinIR-light).
        opt_path: the option file's path for messages, when ``prune_opt`` is a dict.
        recipe: the stage-3 recipe (:mod:`.recipes`): ``'srcomp'`` (default) or ``'paper'``.
    """
    init = init or load_recipe(recipe)['init']
    if init not in INITS:
        raise CompressError(f'--init must be one of {INITS}, got {init!r}')
    if ratio is not None and params is not None:
        raise CompressError('give --ratio or --params, not both')
    if isinstance(prune_opt, (str, os.PathLike)):
        opt_path = str(prune_opt)
        prune_opt = read_teacher_options(prune_opt)
    opt_path = opt_path or 'prune options'
    where = f'{opt_path}: network_g'
    network_opt = dict(prune_opt['network_g'])
    teacher_family(network_opt, where)  # unknown arch types fail before anything is loaded

    state_dict, key = load_teacher_checkpoint(network_opt, checkpoint, key, where)
    try:
        patterns, arch = resolve_patterns(state_dict, prune_opt)
        density = density_report(state_dict, patterns, arch)
    except ValueError as err:
        raise CompressError(f'{opt_path}: {err}') from err

    structured = ((prune_opt.get('train') or {}).get('sparsity') or {}).get('structured') or {}
    if depth_keep is None:
        depth_keep = structured.get('depth_keep', 0.5)
    if ratio is None and params is None and (structured.get('ratio') or structured.get('params')):
        ratio, params = structured.get('ratio'), structured.get('params')
        source = 'train.sparsity.structured (the student stage 1 decayed to)'
    elif ratio is None and params is None:
        measured = Fraction(density['num_measured'] - density['num_zero'], density['num_measured'])
        if measured == 0:
            raise CompressError(f'{checkpoint}: every measured weight is zero (density 0), so the ratio would be 0, '
                                'outside (0, 1]; give --ratio or --params')
        ratio, source = parse_ratio(measured, where='measured density'), 'measured global density'
        if measured > DENSE:
            warnings.warn(f'{checkpoint} is not sparse (measured density {float(measured):.3f}): the student will keep '
                          f'{float(measured):.0%} of the teacher\'s parameters. Was stage 1 run on it? Give --ratio or '
                          '--params for a compression target.', CompressWarning)
    elif params is not None:
        source = '--params'
    else:
        source = '--ratio'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', CompressWarning)  # the fallback is reported below, once
        shape = derive_student(network_opt, ratio=ratio, params=params, depth_keep=depth_keep, where=where)
    for note in shape.warnings:
        warnings.warn(note, CompressWarning)

    teacher_path = teacher_checkpoint or (prune_opt.get('path') or {}).get('pretrain_network_g')
    if not teacher_path:
        raise CompressError(f'{opt_path}: path.pretrain_network_g is empty, so the original dense teacher is unknown; '
                            'stage 3 distils from it (the sparse checkpoint is only evidence). Pass --teacher PATH.')
    notes = list(shape.warnings)
    if not Path(teacher_path).is_file():
        notes.append(f'the dense teacher {teacher_path} does not exist here (yet); stage 3 needs it')

    profiles = None
    if macs:
        scale = prune_opt.get('scale')
        profiles = (_profile(network_opt, scale, where), _profile(shape.network_opt(), scale, 'student network_g'))

    out = Path(out)
    name = name or _default_name(out)
    init_path = None
    if init == 'pruned':
        family, teacher_kwargs = teacher_family(network_opt, where)
        student_sd, selection = pruned_state_dict(family.name, state_dict, teacher_kwargs, shape.student_type,
                                                  shape.student_kwargs)
        init_path = pruned_init_path(out)
        init_score = _init_psnr(prune_opt, shape, student_sd, notes)
    else:
        student_sd = selection = init_score = None

    path_opt = prune_opt.get('path') or {}
    distill_opt = build_distill_options(
        prune_opt, shape.network_opt(), teacher_path, name,
        param_key_t=path_opt.get('param_key_g', 'params'),
        strict_load_t=path_opt.get('strict_load_g', True),
        student_init=init_path, total_iter=total_iter, recipe=recipe)

    report = build_report(
        opt_path=opt_path, checkpoint=checkpoint, key=key, density=density, ratio_source=source, shape=shape,
        profiles=profiles, teacher_path=teacher_path, out=out, recipe=recipe, init=init, init_path=init_path,
        report_files=report_paths(out), selection=selection, notes=notes)
    if init_score is not None:
        report['init_psnr'] = init_score
    return CompressResult(shape=shape, distill_opt=distill_opt, report=report, out=out, init_checkpoint=init_path,
                          student_state_dict=student_sd)


def compress_collecting_warnings(*args, **kwargs):
    """:func:`compress`, its :class:`CompressWarning` messages returned instead of emitted.

    Returns ``(result, messages)``: ``srcomp compress`` and the pipeline say each message as
    one line of their own after the run, rather than as Python's warning lines.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = compress(*args, **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, CompressWarning)]
