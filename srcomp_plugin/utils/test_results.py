"""BasicSR's test pipeline also writes its results as JSON, beside its test log.

BasicSR keeps the metrics of a test run only as text in ``results/<name>/test_<name>_<time>.log``
(rounded to 4 decimals, between the option dump and the network print), so whatever reads
them back (``srcomp report``, the demo, the benchmarks) would have to parse that text. With
this patch the same run also writes ``test_<name>_<time>.json`` beside the log: the averaged
metrics of each test set as BasicSR computed them (``model.metric_results``, unrounded), the
options they depend on (``name``, ``scale``, ``network_g``, the checkpoint and its param key,
each metric's settings, the datasets with their folders made absolute), the tested network's
parameter count, the seconds per set and the versions. The log stays as BasicSR writes it.

How: ``BaseModel.validation`` runs BasicSR's own validation and then, in the test pipeline
only (``opt['is_train']`` false: a training run's validations are left alone), copies
``metric_results``, which BasicSR has just averaged and logged, into the JSON. The test loop
is not forked and every model type gets it, since all inherit ``validation`` (``SRModel``
through :mod:`..models.safe_sr_model`, ``SparseSRModel``, ``DistillSRModel``). Under a
``--launcher`` only rank 0 writes: BasicSR validates on rank 0 only, and only rank 0's logger
has the log file that names the JSON. The file is rewritten after each test set (a temporary
file, then ``os.replace``), so a reader never sees half a file and an interrupted run keeps
the sets it finished, as its log does; the run is complete when every set of ``datasets`` has
its entry in ``results``.

:func:`find_results` and :func:`read_results` are the reading side, so the format is known
in this module only.
"""
import json
import logging
import os
import re
import time
from pathlib import Path

from ..errors import SrcompError
from .atomic_json import write_json

FORMAT = 1  # the JSON's "format"; raised when a key changes meaning
_STAMP = re.compile(r'_(\d{8}_\d{6})$')  # BasicSR's get_time_str() in the log's name
RERUN = 'rerun "python -m srcomp_plugin.test -opt OPT.yml"'


class ResultsError(SrcompError, ValueError):
    """A results folder or file without readable test results; the message names it and the fix."""


# ----------------------------------------------------------------------------- writing


def _test_log():
    """The test log of this process: BasicSR attaches it to the 'basicsr' logger on rank 0 only."""
    for handler in logging.getLogger('basicsr').handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return None


def _absolute(value):
    return os.path.abspath(value) if isinstance(value, str) else value


def _run_record(model):
    """The options the results depend on, with the paths that the run resolved against its
    working directory made absolute, so that the file is read the same from anywhere."""
    import basicsr
    import torch

    from .. import __version__

    opt = model.opt
    path_opt = opt['path']
    return {
        'format': FORMAT,
        'name': opt['name'],
        'model_type': opt['model_type'],
        'scale': opt['scale'],
        'network_g': opt['network_g'],
        'params': sum(p.numel() for p in model.get_bare_model(model.net_g).parameters()),
        'checkpoint': {'path': _absolute(path_opt.get('pretrain_network_g')),
                       'param_key': path_opt.get('param_key_g', 'params'),  # SRModel's default
                       'strict': path_opt.get('strict_load_g', True)},
        'metrics': opt['val'].get('metrics') or {},
        'datasets': {d['name']: {k: _absolute(v) if k.startswith('dataroot') else v for k, v in d.items()}
                     for _, d in sorted(opt['datasets'].items())},
        'versions': {'srcomp_plugin': __version__, 'basicsr': basicsr.__version__, 'torch': torch.__version__},
        'results': {},
    }


def _recording(validation):

    def validation_with_results(self, dataloader, current_iter, tb_logger, save_img=False):
        start = time.perf_counter()
        validation(self, dataloader, current_iter, tb_logger, save_img)
        log = None if self.opt['is_train'] else _test_log()
        if log is None:
            return
        if not hasattr(self, 'srcomp_test_results'):
            self.srcomp_test_results = _run_record(self)
        record = self.srcomp_test_results
        record['results'][dataloader.dataset.opt['name']] = {
            'images': len(dataloader.dataset),
            'seconds': round(time.perf_counter() - start, 3),
            'metrics': {k: float(v) for k, v in getattr(self, 'metric_results', {}).items()},
        }
        record['written'] = time.strftime('%Y-%m-%d %H:%M:%S')
        write_json(log.with_suffix('.json'), record)

    return validation_with_results


def install():
    """Make ``BaseModel.validation`` write the test pipeline's results JSON (idempotent)."""
    from basicsr.models.base_model import BaseModel

    if BaseModel.validation.__name__ != 'validation_with_results':
        BaseModel.validation = _recording(BaseModel.validation)


# ----------------------------------------------------------------------------- reading


def find_results(path):
    """The results JSON of the newest test run in a results folder, or in each of its sub-folders.

    ``path`` may also be a run's ``.json`` or ``.log``. The newest run is chosen by the time
    stamp in its name (``test_<name>_<YYYYmmdd_HHMMSS>``; file modification time when there
    is none). A run with a log and no JSON is an error rather than skipped, so an older JSON
    is never reported as the newest result.
    """
    path = Path(path)
    if path.is_file():
        return [_json_of(path, path)]
    if not path.is_dir():
        raise ResultsError(f'{path}: no such results folder or file')
    newest = _newest_run(path)
    if newest is not None:
        return [_json_of(newest, path)]
    runs = [(run, sub) for run, sub in ((_newest_run(sub), sub) for sub in sorted(path.iterdir()) if sub.is_dir())
            if run is not None]
    if not runs:
        raise ResultsError(f'{path}: no test results (test_<name>_<time>.json) in it or its sub-folders; '
                           'run "python -m srcomp_plugin.test -opt OPT.yml" first (results go to results/<name>/)')
    return [_json_of(run, sub) for run, sub in runs]


def _newest_run(folder):
    files = [p for p in folder.glob('test_*') if p.suffix in ('.json', '.log') and p.is_file()]
    if not files:
        return None

    def key(p):
        stamp = _STAMP.search(p.stem)
        return (stamp.group(1) if stamp else '', p.stat().st_mtime)

    return max(files, key=key)


def _json_of(run, where):
    """The JSON of ``run`` (its ``.json`` or ``.log``); ``where`` names the folder in the error."""
    results = run.with_suffix('.json')
    if run.suffix not in ('.json', '.log'):
        raise ResultsError(f'{run}: not a test run\'s .json or .log; pass its results/<name> folder')
    if not results.is_file():
        raise ResultsError(f'{where}: the test run {run.name} has no {results.name} beside it (a run of an older '
                           'srcomp or of BasicSR\'s own test script, or one that stopped before its first test set '
                           f'finished; see the log): {RERUN}')
    return results


def read_results(path):
    """The dict that :func:`install`'s hook wrote to ``path``."""
    try:
        data = json.loads(Path(path).read_text(encoding='utf-8'))
    except (OSError, ValueError) as err:
        raise ResultsError(f'{path}: cannot read the test results: {err}; {RERUN}') from err
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise ResultsError(f'{path}: not test results in format {FORMAT} (an older or newer srcomp wrote it?); '
                           f'{RERUN}')
    return data


def newest_metrics(results_dir):
    """``{set name: {metric: value}}`` of the newest test run in one ``results/<name>`` folder."""
    paths = find_results(results_dir)
    if len(paths) > 1:
        raise ResultsError(f'{results_dir}: holds {len(paths)} test runs; pass one results/<name> folder')
    return {name: entry['metrics'] for name, entry in read_results(paths[0])['results'].items()}
