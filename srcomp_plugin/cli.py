"""The ``srcomp`` command: one sub-command per job, each a thin shell over a module.

``srcomp train``/``srcomp test`` hand the remaining arguments to BasicSR's parser, exactly
as ``python -m srcomp_plugin.train``/``.test`` do. The other sub-commands live in their
own modules; each exposes ``main(argv)`` and is imported only when called.
"""
import importlib
import sys

from .errors import SrcompError, message

COMMANDS = {
    'train': ('srcomp_plugin.train', 'run BasicSR training with the plugin registered (-opt OPT.yml ...)'),
    'test': ('srcomp_plugin.test', 'run BasicSR testing with the plugin registered (-opt OPT.yml)'),
    'profile': ('srcomp_plugin.measure.profile_cli', 'params, MACs at 720p and CPU latency of an arch'),
    'prepare': ('srcomp_plugin.data.prepare', 'make the BasicSR HR/LR dataset layout from HR images'),
    'sparsity': ('srcomp_plugin.measure.sparsity_cli', 'density report of a checkpoint'),
    'teacher-cache': ('srcomp_plugin.data.teacher_cache_cli', "store the teacher's outputs for train.teacher_cache"),
    'compress': ('srcomp_plugin.compress.cli', 'derive the compact student and its distillation options'),
    'pipeline': ('srcomp_plugin.pipeline.cli', 'run prune -> compress -> distill -> test from one option file'),
    'demo': ('srcomp_plugin.pipeline.demo', 'the whole method on scikit-image photographs, on CPU'),
    'report': ('srcomp_plugin.pipeline.report', 'collect test results into a table and plots'),
    'export': ('srcomp_plugin.export', 'export a compact model to ONNX or TorchScript'),
}


def _usage():
    lines = ['usage: srcomp COMMAND [ARGS...]', '', 'commands:']
    lines += [f'  {name:<13} {help_}' for name, (_, help_) in COMMANDS.items()]
    lines += ['', 'Run "srcomp COMMAND -h" for the options of a command.']
    return '\n'.join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f'srcomp: unknown command {name!r}.\n\n{_usage()}', file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    from . import basicsr_patches

    basicsr_patches.install()  # every command that runs BasicSR code runs it as the entry points do
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith('srcomp_plugin'):
            print(f'srcomp: command {name!r} is not available in this version ({err.name} missing).',
                  file=sys.stderr)
            return 2
        raise
    if name in ('train', 'test'):
        # BasicSR parses sys.argv itself.
        sys.argv = [f'srcomp {name}'] + rest
        module.main()
        return 0
    try:
        return module.main(rest) or 0
    except SrcompError as err:  # the user's input: one line; anything else is a bug and keeps its traceback
        print(f'srcomp {name}: error: {message(err)}', file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError) as err:
        print(f'srcomp {name}: error: {err.strerror or err}: {err.filename}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
