"""Option files are read with PyYAML's safe loader, key order kept.

BasicSR's ``ordered_yaml()`` hands ``parse_options`` PyYAML's full ``yaml.Loader``, which
builds any Python object a tag names: ``!!python/object/apply:os.system [...]`` anywhere in
an option file runs a shell command. Option files are shared like checkpoints, so every
option file the plugin or its entry points read goes through :class:`OrderedSafeLoader`
(``yaml.SafeLoader`` with mappings as ``OrderedDict``, as BasicSR's loader returns them);
plain YAML reads exactly as before, and a Python tag is an :class:`OptionFileError` naming
the file and line. :func:`read_options` is the same reader for the plugin's own commands.
"""
from collections import OrderedDict

import yaml

from ..errors import SrcompError


class OptionFileError(SrcompError, ValueError):
    """An option file that is not plain YAML; the message names the file."""


class OrderedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings keep their order (``OrderedDict``)."""

    def construct_undefined(self, node):
        mark = node.start_mark
        raise OptionFileError(
            f'{mark.name}, line {mark.line + 1}: the tag {node.tag!r} would build a Python object; option files '
            'may hold only plain YAML (mappings, lists, strings, numbers, booleans, null)')


def _ordered_mapping(loader, node):
    loader.flatten_mapping(node)
    return OrderedDict(loader.construct_pairs(node))


OrderedSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _ordered_mapping)
OrderedSafeLoader.add_constructor(None, OrderedSafeLoader.construct_undefined)


def load_options(path):
    """The option file at ``path`` as (ordered) dicts; :class:`OptionFileError` if it is not plain YAML."""
    with open(path, encoding='utf-8') as f:
        try:
            return yaml.load(f, Loader=OrderedSafeLoader)
        except yaml.YAMLError as err:
            raise OptionFileError(f'{path}: not valid YAML: {err}') from err


def plain(value):
    """``value`` with every mapping a plain ``dict`` (what ``yaml.safe_dump`` can write back)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def read_options(path):
    """The option file at ``path`` as plain dicts, for the plugin's own commands and templates.

    Every way it can fail (missing, unreadable, not plain YAML, not a mapping) is an
    :class:`OptionFileError` naming the file.
    """
    try:
        opt = load_options(path)
    except OSError as err:
        raise OptionFileError(f'cannot read option file {path}: {err.strerror or err}') from err
    if not isinstance(opt, dict):
        raise OptionFileError(f'{path}: an option file is a mapping of options, this one holds a '
                              f'{type(opt).__name__}')
    return plain(opt)


def install():
    """Make BasicSR's ``parse_options`` (train and test pipelines) use :class:`OrderedSafeLoader`."""
    import basicsr.utils.options as bsr_options

    dumper = bsr_options.ordered_yaml()[1]
    bsr_options.ordered_yaml = lambda: (OrderedSafeLoader, dumper)
