"""Build each stage's BasicSR option dict from one pipeline option file.

A pipeline file names the teacher (arch + checkpoint), the scale, the datasets, and
per-stage overrides; this module turns it into ordinary BasicSR option files:

* ``prune``: ``SparseSRModel`` fine-tuning of the teacher with OBProx-SG: the ``train``
  section of the family's release option file (``options/prune/``, named by the family's
  record in :mod:`srcomp_plugin.families`) deep-merged with ``prune:``. With the ``srcomp`` recipe
  (``recipe:``, the default), an EDSR-family teacher and a ``compress.ratio`` or
  ``compress.params``, stage 1 also decays the weights outside the student to exactly zero
  (``train.sparsity.structured``, with the recipe's Adam in place of OBProx-SG), so that the
  student sliced from it starts lossless;
* ``distill``: written by ``srcomp compress`` (Stage 2), then deep-merged with ``distill:``;
* ``test``: ``SRModel`` testing of the distilled student (``params_ema``) on ``test.datasets``
  (default: the validation set), Y-channel PSNR/SSIM with crop = scale.

Every value can be overridden, since the overrides are merged last.
"""
import copy
import difflib

import yaml

from ..compress.recipes import DEFAULT_RECIPE, RECIPES, load_recipe
from ..errors import SrcompError
from ..families import SUPPORTED_TEACHERS, teacher_family
from ..utils.option_templates import load_template
from ..utils.safe_yaml import OptionFileError, plain, read_options

REQUIRED_KEYS = ('name', 'scale', 'teacher', 'datasets')
# every key a pipeline file may hold; prune:/distill: are BasicSR option overrides, merged as they are
KNOWN_KEYS = REQUIRED_KEYS + ('recipe', 'num_gpu', 'manual_seed', 'dist_params', 'launcher', 'prune', 'compress',
                              'distill', 'test')
KNOWN_SUBKEYS = {'teacher': ('network', 'checkpoint', 'param_key'),
                 'compress': ('ratio', 'params', 'depth_keep', 'init'),
                 'test': ('datasets', 'save_img'),
                 'launcher': ('type', 'nproc_per_node', 'nnodes', 'node_rank', 'master_addr', 'master_port')}


class PipelineOptionError(SrcompError, ValueError):
    """A missing or wrong key in the pipeline option file, named in the message."""


def deep_merge(base, override):
    """Return ``base`` updated recursively with ``override`` (dicts merge, other values replace)."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path):
    """An option file, order kept, through the safe loader (no YAML tag builds a Python object)."""
    try:
        return read_options(path)
    except OptionFileError as err:
        raise PipelineOptionError(str(err)) from err


def save_yaml(path, opt):
    with open(path, 'w', encoding='utf-8') as f:
        yaml.dump(plain(opt), f, Dumper=yaml.SafeDumper, sort_keys=False)


def _check_known(section, allowed, where):
    """An unknown (e.g. misspelled) key is an error with the closest known one."""
    if not isinstance(section, dict):
        raise PipelineOptionError(f'{where} must be a mapping, got {section!r}')
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.5)
            hint = f' Did you mean {close[0]!r}?' if close else ''
            raise PipelineOptionError(f'{where}: unknown key {key!r}.{hint} Known keys: {", ".join(allowed)}')


def check_pipeline_options(pipe, source='pipeline options'):
    """Raise :class:`PipelineOptionError` naming the first problem of a pipeline dict."""
    _check_known(pipe, KNOWN_KEYS, source)
    for section, keys in KNOWN_SUBKEYS.items():
        if pipe.get(section) is not None:
            _check_known(pipe[section], keys, f'{source}: {section}')
    missing = [k for k in REQUIRED_KEYS if k not in pipe]
    if missing:
        raise PipelineOptionError(f'{source}: missing key(s) {missing}; required: {list(REQUIRED_KEYS)}')
    teacher = pipe['teacher']
    for key in ('network', 'checkpoint'):
        if not isinstance(teacher, dict) or not teacher.get(key):
            raise PipelineOptionError(f'{source}: teacher.{key} is required (the trained model to compress)')
    arch = teacher['network'].get('type')
    if arch not in SUPPORTED_TEACHERS:
        raise PipelineOptionError(f'{source}: teacher.network.type {arch!r} is not supported; '
                                  f'supported: {sorted(SUPPORTED_TEACHERS)}')
    if 'train' not in pipe['datasets'] or not any(k.startswith('val') for k in pipe['datasets']):
        raise PipelineOptionError(f'{source}: datasets needs a "train" and a "val" entry (BasicSR dataset options)')
    if pipe.get('recipe', DEFAULT_RECIPE) not in RECIPES:
        raise PipelineOptionError(f'{source}: recipe {pipe["recipe"]!r} is not one of {list(RECIPES)}')


def recipe_of(pipe):
    """The pipeline's stage-3 recipe (``recipe:``, default ``srcomp``)."""
    return pipe.get('recipe', DEFAULT_RECIPE)


def structured_handoff(pipe, family):
    """``train.sparsity.structured`` for stage 1, or None where it does not apply.

    ``family``: the teacher's record. It applies with the ``srcomp`` recipe on a teacher
    whose family can be sliced losslessly (``drop_masks``: EDSR) when the compression
    target is given up front (``compress.ratio`` or ``compress.params``): the student's shape
    is then known before stage 1, which can decay everything outside it to exactly zero.
    """
    cfg = pipe.get('compress') or {}
    if recipe_of(pipe) != 'srcomp' or family.drop_masks is None or (cfg.get('init') or 'pruned') != 'pruned':
        return None
    target = {k: cfg[k] for k in ('ratio', 'params') if cfg.get(k) is not None}
    if not target:
        return None
    return dict(target, depth_keep=cfg.get('depth_keep', 0.5))


def release_prune_train(family):
    """The ``train`` section of the release's stage 1 for ``family`` (its ``options/prune`` file)."""
    return load_template(f'prune/{family.prune_template}')['train']


def _common(pipe, name):
    opt = {'name': name, 'scale': pipe['scale'], 'num_gpu': pipe.get('num_gpu', 'auto'),
           'manual_seed': pipe.get('manual_seed', 0)}
    if 'dist_params' in pipe:
        opt['dist_params'] = pipe['dist_params']
    return opt


def prune_options(pipe):
    """Stage 1 options (``SparseSRModel``) for the pipeline's teacher."""
    teacher = pipe['teacher']
    family, _ = teacher_family(teacher['network'], 'teacher.network')  # its record (srcomp_plugin.families)
    scale = pipe['scale']
    opt = _common(pipe, f'{pipe["name"]}_prune')
    opt.update({
        'model_type': 'SparseSRModel',
        'datasets': copy.deepcopy(pipe['datasets']),
        'network_g': copy.deepcopy(teacher['network']),
        'path': {'pretrain_network_g': teacher['checkpoint'], 'param_key_g': teacher.get('param_key', 'params'),
                 'strict_load_g': True, 'resume_state': None},
        'train': release_prune_train(family),
        'val': {'val_freq': 5000, 'save_img': False, 'metrics': _metrics(scale)},
        'logger': {'print_freq': 100, 'save_checkpoint_freq': 5000, 'use_tb_logger': True,
                   'wandb': {'project': None, 'resume_id': None}},
    })
    structured = structured_handoff(pipe, family)
    if structured is not None:  # the srcomp recipe's stage 1: Adam and structured decay, no L1 term to place
        opt['train']['sparsity'] = {'structured': structured}
        opt['train']['optim_g'] = load_recipe(recipe_of(pipe))['prune_optim_g']
    return deep_merge(opt, pipe.get('prune'))


def distill_options(pipe, generated):
    """Stage 3 options: ``srcomp compress``'s output renamed and merged with ``distill:``."""
    opt = deep_merge(generated, _common(pipe, f'{pipe["name"]}_distill'))
    return deep_merge(opt, pipe.get('distill'))


def test_options(pipe, network_g, checkpoint, name_suffix='test'):
    """Testing options for a trained network (``params_ema``, falling back to ``params``)."""
    scale = pipe['scale']
    test = pipe.get('test') or {}
    datasets = test.get('datasets')
    if not datasets:
        datasets = {f'test_{i}': copy.deepcopy(v)
                    for i, (k, v) in enumerate(sorted(pipe['datasets'].items()), 1) if k.startswith('val')}
    opt = _common(pipe, f'{pipe["name"]}_{name_suffix}')
    opt.update({
        'model_type': 'SRModel',
        'datasets': datasets,
        'network_g': copy.deepcopy(network_g),
        'path': {'pretrain_network_g': str(checkpoint), 'param_key_g': 'params_ema', 'strict_load_g': True},
        'val': {'save_img': test.get('save_img', False), 'suffix': None, 'metrics': _metrics(scale)},
    })
    return opt


def _metrics(scale):
    return {'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True},
            'ssim': {'type': 'calculate_ssim', 'crop_border': scale, 'test_y_channel': True}}
