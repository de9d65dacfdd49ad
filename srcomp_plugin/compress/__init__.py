"""Stage 2 of the method: derive the compact student from a (sparse) teacher.

What depth, width and slicing mean for each teacher family is in its record
(:mod:`srcomp_plugin.families`); this package applies them:

* :mod:`.shape_rule`: the rule (depth kept, then the largest width within r x teacher params);
* :mod:`.pruned_init`: ``--init pruned``, a student state dict sliced from the sparse teacher;
* :mod:`.recipes`: the stage-3 recipes (``srcomp``, ``paper``) read from ``options/distill``;
* :mod:`.distill_options`: the stage-3 option file;
* :mod:`.report`: the printed/saved report;
* :mod:`.compressor`: all of it from an option file and a checkpoint, returned as data;
* :mod:`.writer`: the files of stage 2 (names, no silent replacing, writing them), used by
  ``srcomp compress`` (whose argument parsing is :mod:`.cli`) and the pipeline.
"""
from ..errors import CompressError, CompressWarning
from ..families import SUPPORTED_TEACHERS, teacher_family
from .compressor import CompressResult, compress
from .distill_options import build_distill_options, check_distill_options
from .pruned_init import pruned_state_dict
from .recipes import DEFAULT_RECIPE, RECIPES, load_recipe, recipe_train
from .shape_rule import StudentShape, derive_student, parse_ratio
from .writer import write_outputs

__all__ = [
    'CompressError', 'CompressResult', 'CompressWarning', 'DEFAULT_RECIPE', 'RECIPES', 'SUPPORTED_TEACHERS',
    'StudentShape', 'build_distill_options', 'check_distill_options', 'compress', 'derive_student', 'load_recipe',
    'parse_ratio', 'pruned_state_dict', 'recipe_train', 'teacher_family', 'write_outputs'
]
