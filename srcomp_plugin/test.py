"""``python -m srcomp_plugin.test -opt OPT.yml``: BasicSR's own test pipeline.

Results go to ``results/<name>/`` under the current working directory.
"""
import os
import sys

import srcomp_plugin  # noqa: F401  (registers the plugin before BasicSR builds anything)
from basicsr.test import test_pipeline

from srcomp_plugin.errors import SrcompError, message
from srcomp_plugin.models import safe_sr_model
from srcomp_plugin.utils import option_checks, safe_yaml


def main():
    safe_yaml.install()  # BasicSR's parse_options would build any Python object a YAML tag names
    option_checks.install()  # a bad option file stops here, naming the option, before any folder is made
    safe_sr_model.install()  # a checkpoint that does not fit network_g is explained
    try:
        test_pipeline(os.getcwd())
    except SrcompError as err:  # the user's input (option file, dataset, checkpoint): one line, no traceback
        print(f'error: {message(err)}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
