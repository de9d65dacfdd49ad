"""One training run per experiment name at a time.

BasicSR renames an existing ``experiments/<name>`` to ``<name>_archived_<time>`` when a new
run starts: a second run started with the same name archives the first one's folder under
it, and both then write checkpoints into the same ``models/``. The first run (rank 0) takes
an exclusive ``flock`` on ``experiments/.<name>.lock`` before any folder is touched and holds
it until it exits; a second run fails at once naming the holder. The kernel drops the lock
when its process dies, so a lock file left by a killed run is simply taken over.
"""
import fcntl
import os
import time

from ..errors import SrcompError

_held = {}  # lock path -> open file: the lock lives as long as this process


class ExperimentBusyError(SrcompError, RuntimeError):
    """Another live process is training under the same experiment name."""


def acquire(root_path, name):
    """Lock ``<root_path>/experiments/<name>`` for this process, or raise :class:`ExperimentBusyError`."""
    folder = os.path.join(root_path, 'experiments')
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f'.{name}.lock')
    if path in _held:
        return path
    f = open(path, 'a+', encoding='utf-8')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or 'another process'
        f.close()
        raise ExperimentBusyError(f'experiments/{name} is in use by a running training ({holder}); wait for it to '
                                  'finish, or give this run another name') from None
    f.seek(0)
    f.truncate()
    f.write(f'pid {os.getpid()}, started {time.strftime("%Y-%m-%d %H:%M:%S")}\n')
    f.flush()
    _held[path] = f
    return path


def release(path):
    """Give up a lock taken by :func:`acquire` in this process (tests; a process exit does it anyway)."""
    f = _held.pop(path, None)
    if f is not None:
        f.close()
