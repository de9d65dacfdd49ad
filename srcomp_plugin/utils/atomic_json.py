"""Writing a JSON file so that a reader never sees half of it.

The test results beside a test log and the pipeline's stage records are read by other
processes (``srcomp report``, a rerun of ``srcomp pipeline``) possibly while, or after, a run
is killed mid-write; a temporary file and ``os.replace`` (atomic on POSIX) leave either the
old file or the new one.
"""
import json
import os
from pathlib import Path


def write_json(path, data):
    """``data`` as JSON at ``path`` via a temporary file and ``os.replace``: never half a file."""
    tmp = Path(f'{path}.tmp')
    tmp.write_text(json.dumps(data, indent=1, default=str) + '\n', encoding='utf-8')
    os.replace(tmp, path)
