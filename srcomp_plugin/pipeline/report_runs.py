"""The runs of ``srcomp report``: test results JSON -> :class:`TestRun`, with MACs and notes.

Each run is read from the ``test_<name>_<time>.json`` that ``python -m srcomp_plugin.test``
writes beside BasicSR's log (:mod:`srcomp_plugin.utils.test_results`): metrics as BasicSR
computed them, the tested network's parameter count, and the options the protocol check
reads. MACs are not measured by a test run: they are counted here on its ``network_g``.
"""
import dataclasses
from pathlib import Path

from ..errors import SrcompError
from ..utils.test_results import find_results, read_results

OUT_HW = (720, 1280)


class ReportError(SrcompError, ValueError):
    """Runs that cannot be reported as asked; the message says why."""


@dataclasses.dataclass
class TestRun:
    """One BasicSR test run, as read from its results JSON (plus the counted MACs)."""
    name: str
    results: str  # the JSON it was read from
    log: str  # BasicSR's log of the run, beside it
    scale: int
    arch: str
    network_g: dict
    params: int  # counted on the tested network by the test run
    macs: int  # at a 1280x720 output; None when the network could not be built here
    metrics: dict  # set name -> {'psnr': float, 'ssim': float} (keys present when measured)
    notes: list
    datasets: dict = dataclasses.field(default_factory=dict)  # set name -> its dataset options, folders absolute
    latency_s: float = None  # CPU latency for a 1280x720 output (``--latency``)

    @property
    def label(self):
        """The run's name without BasicSR's conventional ``test_`` prefix."""
        return self.name[5:] if self.name.startswith('test_') else self.name

    def mean_psnr(self, sets):
        """Mean PSNR over ``sets``, or None when one of them was not measured."""
        values = [self.metrics.get(s, {}).get('psnr') for s in sets]
        return None if any(v is None for v in values) else sum(values) / len(values)

    def as_dict(self):
        return dict(dataclasses.asdict(self), label=self.label)


def _metric_keys(metrics):
    """Names under which the run holds PSNR and SSIM (by metric ``type``, else by name)."""
    keys = {'psnr': 'psnr', 'ssim': 'ssim'}
    for key, metric_opt in metrics.items():
        kind = metric_opt.get('type', '') if isinstance(metric_opt, dict) else ''
        for short in ('psnr', 'ssim'):
            if kind == f'calculate_{short}':
                keys[short] = key
    return keys


def _protocol_notes(scale, keys, metrics):
    """Differences from the evaluation protocol (Y channel, crop_border = scale)."""
    notes = []
    for short, key in keys.items():
        metric_opt = metrics.get(key)
        if not isinstance(metric_opt, dict):
            continue
        if metric_opt.get('test_y_channel') is not True:
            notes.append(f'{short} on RGB, not the Y channel (val.metrics.{key}.test_y_channel)')
        if metric_opt.get('crop_border') != scale:
            notes.append(f'{short} crop_border {metric_opt.get("crop_border")} != scale {scale} '
                         f'(val.metrics.{key}.crop_border)')
    return notes


def load_run(path, out_hw=OUT_HW):
    """A :class:`TestRun` from a results folder (its newest test run) or a run's ``.json``/``.log``."""
    found = find_results(path)
    if len(found) > 1:
        raise ReportError(f'{path}: holds {len(found)} runs; pass one results/<name> folder (or use collect_runs)')
    return _run_from_results(found[0], out_hw)


def collect_runs(paths, out_hw=OUT_HW):
    """Every run under ``paths`` (results folders, their parent folder, or runs' files), in order."""
    if not paths:
        raise ReportError('no results folders given')
    return [_run_from_results(found, out_hw) for path in paths for found in find_results(path)]


def _run_from_results(path, out_hw):
    data = read_results(path)
    network_g, scale = data['network_g'], data['scale']
    keys = _metric_keys(data['metrics'])
    notes = _protocol_notes(scale, keys, data['metrics'])
    metrics = {set_name: {short: entry['metrics'][key] for short, key in keys.items() if key in entry['metrics']}
               for set_name, entry in data['results'].items()}
    macs = None
    from srcomp_plugin.measure import profile_network

    try:
        profile = profile_network(network_g, scale=scale, out_hw=out_hw, latency=False,
                                  where=f'{path}: network_g')
        macs = profile['macs']
        if profile['params'] != data['params']:
            notes.append(f'network_g rebuilt here has {profile["params"]:,} parameters, the tested one '
                         f'{data["params"]:,}')
    except SrcompError as err:  # an arch this install lacks, or one that cannot be counted: no MACs
        notes.append(f'MACs not counted: {err}')
    return TestRun(
        name=data['name'],
        results=str(Path(path).resolve()),
        log=str(Path(path).resolve().with_suffix('.log')),
        scale=scale,
        arch=network_g['type'],
        network_g=network_g,
        params=data['params'],
        macs=macs,
        metrics=metrics,
        notes=notes,
        datasets=data['datasets'])
