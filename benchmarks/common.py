"""Shared pieces of the benchmark scripts: interleaved timing, machine facts, tables, JSON.

Why interleaved: the benchmark machine is shared and its load changes by the second. Each
round times every case once, in turn, so a burst of load hits all of them alike; the
median over rounds and the ratios between cases are then far steadier than timing one
case many times and then the next.
"""
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / 'results'


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def machine_info(threads):
    """What a reader needs to compare the numbers: CPU, cores, threads, versions, load, date."""
    import srcomp_plugin  # noqa: F401  (BasicSR needs the plugin's torchvision alias before import)
    import basicsr

    info = {
        'date': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        'cpu': cpu_model(),
        'logical_cpus': os.cpu_count(),
        'torch_threads': threads,
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'torch': torch.__version__,
        'basicsr': basicsr.__version__,
        'python': platform.python_version(),
        'platform': platform.platform(),
    }
    info['load_average_start'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    return info


def progress_logger(quiet):
    """A ``log(msg)`` for progress lines: to stderr (the table and JSON path go to stdout), or silent."""
    if quiet:
        return lambda msg: None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def finish_info(info):
    """Add the load average at the end of the run (a busy machine inflates all latencies)."""
    info['load_average_end'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    return info


def interleaved_times(cases, repeats, warmup=1, log=None):
    """Time each callable of ``cases`` (name -> fn) ``repeats`` times, round-robin, after ``warmup`` rounds.

    Returns name -> {'median_s', 'min_s', 'max_s', 'times_s'}.
    """
    times = {name: [] for name in cases}
    for round_index in range(warmup + repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
            if log:
                tag = 'warm-up' if round_index < warmup else f'round {round_index - warmup + 1}/{repeats}'
                log(f'  {tag:<13} {name:<28} {elapsed:8.3f} s')
    return {name: {'median_s': statistics.median(ts), 'min_s': min(ts), 'max_s': max(ts), 'times_s': ts}
            for name, ts in times.items()}


def format_table(headers, rows):
    """A plain-text table (also valid Markdown) of ``rows`` (lists of already formatted cells)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'  # noqa: E731
    return '\n'.join([line(headers), '|' + '|'.join('-' * (w + 2) for w in widths) + '|'] + [line(r) for r in rows])


def write_json(result, path):
    """Write ``result`` as indented JSON to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + '\n', encoding='utf-8')
    return path


def load_network_opt(option_file, key='network_g'):
    """The ``key`` mapping of a BasicSR option file, as the user's ``srcomp test`` would build it."""
    import yaml

    with open(option_file, encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict) or not isinstance(opt.get(key), dict):
        raise ValueError(f'{option_file} has no "{key}" mapping')
    return dict(opt[key])
