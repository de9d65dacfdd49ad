"""The option files shipped in ``options/``: the one source of the release's settings.

Stage 1's release settings (``options/prune/*.yml``) and the stage-3 recipes
(``options/distill/recipe_*.yml``) are read from these files wherever the code needs them
(``srcomp pipeline``, ``srcomp compress``), so what a user reads in an option file is what the
tools write. They are found in the repository the package is installed from (a clone, or an
editable install), else in the current folder.
"""
from pathlib import Path

from ..errors import InputFileError
from .safe_yaml import read_options

MARKER = Path('options') / 'distill' / 'recipe_srcomp.yml'  # a file every checkout has


def options_root():
    """The ``options/`` folder of the repository (a clone or an editable install), else of the cwd."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / MARKER).is_file():
            return root / 'options'
    raise InputFileError('the option templates (options/prune/*.yml, options/distill/recipe_*.yml) were not found '
                         'next to the package or in the current folder; install srcomp from a clone of its '
                         'repository (pip install -e .)')


def load_template(relative):
    """``options/<relative>`` as plain dicts (safe YAML: no tag builds a Python object)."""
    return read_options(options_root() / relative)
