"""``python -m srcomp_plugin.test -opt OPT.yml``: BasicSR's own test pipeline.

Results go to ``results/<name>/`` under the current working directory: BasicSR's log
``test_<name>_<time>.log`` and, beside it, ``test_<name>_<time>.json`` with the metrics of
each test set and the options they depend on (:mod:`srcomp_plugin.utils.test_results`),
which ``srcomp report`` reads.
"""
import os
import sys

import srcomp_plugin  # noqa: F401  (registers the plugin before BasicSR builds anything)
from basicsr.test import test_pipeline

from srcomp_plugin import basicsr_patches
from srcomp_plugin.errors import SrcompError, message


def main():
    basicsr_patches.install()  # every change to BasicSR, listed with its reason in that module
    try:
        test_pipeline(os.getcwd())
    except SrcompError as err:  # the user's input (option file, dataset, checkpoint): one line, no traceback
        print(f'error: {message(err)}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
