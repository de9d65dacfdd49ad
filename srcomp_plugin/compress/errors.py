"""The one error type of stage 2, so the CLI can print it without a traceback."""
from ..errors import SrcompError


class CompressError(SrcompError, ValueError):
    """A compression request that cannot be carried out; the message says what to change."""


class CompressWarning(UserWarning):
    """Stage 2 went ahead but not as asked (e.g. the student is over budget); the message says why."""
