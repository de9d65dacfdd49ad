"""``python -m srcomp_plugin.train -opt OPT.yml``: BasicSR's own training pipeline.

Importing ``srcomp_plugin`` registers our archs/losses/models; BasicSR's
``train_pipeline`` then runs unchanged. ``experiments/`` and ``tb_logger/`` are created
under the current working directory, as when BasicSR is run from its repository root.
All BasicSR flags work: ``--launcher pytorch|slurm``, ``--auto_resume``, ``--debug``,
``--force_yml key:sub=value``.
"""
import os
import signal
import sys

import srcomp_plugin  # noqa: F401  (registers the plugin before BasicSR builds anything)
from basicsr.train import train_pipeline

from srcomp_plugin import basicsr_patches
from srcomp_plugin.errors import SrcompError, message


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a scheduler, kill) ends the run as Ctrl-C does


def main():
    basicsr_patches.install()  # every change to BasicSR, listed with its reason in that module
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        train_pipeline(os.getcwd())
    except KeyboardInterrupt:
        args = [a for a in sys.argv[1:] if a != '--auto_resume']
        print(f'\ninterrupted; the checkpoints and training states written so far are kept. Resume with:\n'
              f'  python -m srcomp_plugin.train {" ".join(args)} --auto_resume', file=sys.stderr)
        sys.exit(130)
    except SrcompError as err:  # the user's input (option file, dataset, checkpoint): one line, no traceback
        print(f'error: {message(err)}', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
