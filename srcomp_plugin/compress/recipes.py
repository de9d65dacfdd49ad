"""Stage-3 recipes: named sets of ordinary BasicSR option keys for the distillation run.

A recipe is a YAML template in ``options/distill/recipe_<name>.yml`` (read through
:mod:`srcomp_plugin.utils.option_templates`) with two sections:
``recipe`` (its ``name``, where the student starts, ``init: scratch|pruned``, and for
``srcomp`` the stage-1 optimizer of the pipeline's structured prune) and the ``train``
section that ``srcomp compress`` writes, unchanged, into the stage-3 option file.
Nothing else changes between recipes: no hidden code path, so any generated option file
reads as a complete description of its run.

* ``paper``: the authors' release (student from scratch, MultiLapLoss x 1.0 + L1 to the
  ground truth x 0.1, MultiStepLR);
* ``srcomp`` (the default): the student sliced from the stage-1 checkpoint, L1 to the
  teacher's output plus L1 to the ground truth, a cosine schedule that ends at the last
  iteration. Measured against ``paper`` and scratch training by ``benchmarks/quality.py``
  (``benchmarks/QUALITY.md``).

A shorter ``total_iter`` rescales the schedule: MultiStepLR milestones keep their fractions
of the run, and a cosine period becomes the run itself, so every schedule still decays to
its end.
"""
import copy

from ..errors import CompressError
from ..utils.option_templates import load_template

RECIPES = ('srcomp', 'paper')
DEFAULT_RECIPE = 'srcomp'
INITS = ('scratch', 'pruned')


def load_recipe(name):
    """The recipe template ``name`` as ``{'name', 'init', 'prune_optim_g', 'train'}`` (a fresh copy).

    ``prune_optim_g`` (or None) is the stage-1 optimizer that ``srcomp pipeline`` uses with
    ``train.sparsity.structured``.
    """
    if name not in RECIPES:
        raise CompressError(f'--recipe must be one of {list(RECIPES)}, got {name!r}')
    relative = f'distill/recipe_{name}.yml'
    template = load_template(relative)
    head = template.get('recipe') or {}
    if head.get('name') != name or head.get('init') not in INITS or not isinstance(template.get('train'), dict):
        raise CompressError(f'options/{relative}: a recipe template needs recipe.name ({name}), recipe.init '
                            f'(one of {INITS}) and a train mapping')
    return {'name': name, 'init': head['init'], 'prune_optim_g': copy.deepcopy(head.get('prune_optim_g')),
            'train': copy.deepcopy(template['train'])}


def recipe_train(name, total_iter=None):
    """The recipe's ``train`` section, its schedule rescaled to ``total_iter`` when given."""
    train = load_recipe(name)['train']
    return train if total_iter is None else rescale_schedule(train, total_iter)


def rescale_schedule(train, total_iter):
    """``train`` (changed in place and returned) with ``total_iter`` and the scheduler scaled to it.

    MultiStepLR milestones keep their fractions of the run; cosine periods scale likewise,
    so a schedule that ended with the old ``total_iter`` ends with the new one.
    """
    if not isinstance(total_iter, int) or isinstance(total_iter, bool) or total_iter < 1:
        raise CompressError(f'--total-iter must be a positive integer, got {total_iter!r}')
    full, scheduler = train['total_iter'], train['scheduler']
    train['total_iter'] = total_iter
    if 'milestones' in scheduler:
        scheduler['milestones'] = [max(1, round(m * total_iter / full)) for m in scheduler['milestones']]
    if 'periods' in scheduler:
        scheduler['periods'] = [max(1, round(p * total_iter / full)) for p in scheduler['periods']]
    return train
