"""``python -m srcomp_plugin.test -opt OPT.yml``: BasicSR's own test pipeline.

Results go to ``results/<name>/`` under the current working directory.
"""
import os

import srcomp_plugin  # noqa: F401  (registers the plugin before BasicSR builds anything)
from basicsr.test import test_pipeline


def main():
    test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
