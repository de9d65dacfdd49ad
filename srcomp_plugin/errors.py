"""The base class of every error that a user's input causes.

An option file, checkpoint, dataset or command-line value that is wrong raises a subclass
of :class:`SrcompError` whose message names the input at fault and the fix. The entry points
(``srcomp ...``, ``python -m srcomp_plugin.train``/``.test``) print it as one line on stderr
and exit with code 2; any other exception is a bug and keeps its traceback.
"""


class SrcompError(Exception):
    """A problem with the user's input, explained in the message."""


class OptionError(SrcompError, ValueError):
    """An option of an option file (a key, a value or two keys together) is wrong."""


class InputFileError(SrcompError, FileNotFoundError):
    """A file or folder that an option names does not exist."""


class CompressError(SrcompError, ValueError):
    """A compression request (stage 2, or a family's shape rule) that cannot be carried out."""


class ProfileError(SrcompError, ValueError):
    """A network or profiling request that cannot be measured; the message says why."""


class CompressWarning(UserWarning):
    """Stage 2 went ahead but not as asked (e.g. the student is over budget); the message says why."""


def message(err):
    """The text of ``err`` (a ``KeyError`` subclass would otherwise print its message quoted)."""
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
