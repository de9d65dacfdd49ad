"""``python -m srcomp_plugin.train -opt OPT.yml``: BasicSR's own training pipeline.

Importing ``srcomp_plugin`` registers our archs/losses/models; BasicSR's
``train_pipeline`` then runs unchanged. ``experiments/`` and ``tb_logger/`` are created
under the current working directory, as when BasicSR is run from its repository root.
All BasicSR flags work: ``--launcher pytorch|slurm``, ``--auto_resume``, ``--debug``,
``--force_yml key:sub=value``.
"""
import os

import srcomp_plugin  # noqa: F401  (registers the plugin before BasicSR builds anything)
from basicsr.train import train_pipeline


def main():
    train_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
