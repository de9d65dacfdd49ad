"""The files of stage 2: their names beside ``--out``, the refusal to replace them, and writing them.

:func:`~.compressor.compress` returns data (a :class:`~.compressor.CompressResult`); the
command (``srcomp compress``) and the pipeline hand it to :func:`write_outputs`. Why apart:
stage 2 can then be called and tested without touching the disk, and where its files go and
what they look like is decided in one place:

* ``out``: the stage-3 option file, the report as a comment header, then the options in
  the layout of the repository's option files;
* ``<out stem>_pruned_init.pth``: the sliced student (``init: pruned`` only), as
  ``{'params': state_dict}``;
* ``<out stem>_compress_report.json`` and ``.txt``: the report.
"""
import json
from pathlib import Path

import torch
import yaml

from ..errors import CompressError
from .report import format_report


def pruned_init_path(out):
    """Where the sliced student of ``init: pruned`` goes: ``<out stem>_pruned_init.pth`` beside ``out``."""
    out = Path(out)
    return out.with_name(f'{out.stem}_pruned_init.pth')


def report_paths(out):
    """``<out stem>_compress_report.json`` and ``.txt`` beside the stage-3 option file ``out``."""
    out = Path(out)
    return out.with_name(f'{out.stem}_compress_report.json'), out.with_name(f'{out.stem}_compress_report.txt')


def output_files(out):
    """Every file stage 2 may write for ``out``: the option file, the sliced student and the report."""
    return [Path(out), pruned_init_path(out), *report_paths(out)]


def refuse_to_replace(out):
    """CompressError if files of an earlier run are at ``out`` (``--force`` skips this check)."""
    existing = [str(path) for path in output_files(out) if path.exists()]
    if existing:
        raise CompressError(f'--out {out}: would replace {", ".join(existing)}; choose another --out, or pass '
                            '--force to replace them')


def write_outputs(result):
    """Write the files of a :class:`~.compressor.CompressResult` (folders created); returns their paths."""
    out = Path(result.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out]
    if result.student_state_dict is not None:
        torch.save({'params': result.student_state_dict}, result.init_checkpoint)
        written.append(result.init_checkpoint)
    out.write_text(_yaml_header(format_report(result.report)) + dump_options(result.distill_opt))
    json_path, txt_path = report_paths(out)
    json_path.write_text(json.dumps(result.report, indent=1, default=str) + '\n')
    txt_path.write_text(format_report(result.report) + '\n')
    return written + [json_path, txt_path]


class _OptionDumper(yaml.SafeDumper):
    """Block-style mappings (as BasicSR's option files are written), short scalar lists inline."""


def _represent_list(dumper, data):
    flow = all(isinstance(v, (bool, int, float, str, type(None))) for v in data)
    return dumper.represent_sequence('tag:yaml.org,2002:seq', data, flow_style=flow)


_OptionDumper.add_representer(list, _represent_list)
_OptionDumper.add_representer(tuple, _represent_list)


def dump_options(opt):
    """An option dict as YAML text in the layout of the repository's option files."""
    return yaml.dump(opt, Dumper=_OptionDumper, sort_keys=False, default_flow_style=False)


def _yaml_header(text):
    lines = ['Stage 3 (distillation) options written by `srcomp compress` (stage 2).',
             'Run: python -m srcomp_plugin.train -opt THIS_FILE', '']
    lines += text.splitlines()
    return ''.join(f'# {line}'.rstrip() + '\n' for line in lines) + '\n'
