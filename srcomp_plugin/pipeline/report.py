"""``srcomp report RESULTS...``: BasicSR test logs -> a markdown table and PSNR plots.

The numbers come from the logs that ``python -m srcomp_plugin.test`` (BasicSR's
``test_pipeline``) writes to ``results/<name>/test_<name>_<time>.log``, so the report shows
what was really measured, with nothing re-run:

* the option dump (``dict2str``) gives ``name``, ``scale``, ``network_g`` and the metric
  settings (``crop_border``, ``test_y_channel``) that the protocol check reads;
* ``Network: <arch>, with parameters: <n>`` gives the tested network's parameter count;
* each ``Validation <set>`` record gives that set's metrics (4 decimals, as logged).

MACs are not in the logs: they are counted on the logged ``network_g`` by
:func:`srcomp_plugin.measure.profile_network` for a 1280x720 output (FLOPs / 2, attention
matmuls included), the convention of the paper's figure. The plots put one point per run
at (params or MACs, mean PSNR over ``sets``), log x axis; the paper's figure averaged Set5
and Set14, which is the default.

Python use::

    from srcomp_plugin.pipeline.report import make_report
    summary = make_report(['results/test_EDSRmini_x2', 'results/test_EDSR_f64b16_x2'], 'report')
"""
import argparse
import ast
import dataclasses
import json
import math
import re
import sys
from pathlib import Path

from ..errors import SrcompError

STANDARD_SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
DEFAULT_SETS = ('Set5', 'Set14')
OUT_HW = (720, 1280)

_RECORD_START = re.compile(r'^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+: ?(.*)$')
_NETWORK = re.compile(r'^Network: (?:\S+ - )?(\S+), with parameters: ([\d,]+)')
_METRIC = re.compile(r'#\s*(\S+):\s*(-?(?:[\d.]+(?:e[-+]?\d+)?|nan|inf))', re.IGNORECASE)
_LOG_TIME = re.compile(r'_(\d{8}_\d{6})\.log$')


class ReportError(SrcompError, ValueError):
    """A results folder or log that cannot be reported; the message names it and says why."""


@dataclasses.dataclass
class TestRun:
    """One BasicSR test run, as read from its log (plus the counted MACs)."""
    name: str
    log: str
    scale: int
    arch: str
    network_g: dict
    params: int  # as logged by BasicSR for the tested network
    macs: int  # at a 1280x720 output; None when the network could not be built here
    metrics: dict  # set name -> {'psnr': float, 'ssim': float} (keys present when logged)
    notes: list
    datasets: dict = dataclasses.field(default_factory=dict)  # set name -> its dataset options, as logged
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


# ----------------------------------------------------------------------------- reading logs


def find_test_logs(path):
    """The newest ``test_*.log`` of a results folder, or of each of its sub-folders.

    ``path`` may also be a log file. BasicSR names test logs ``test_<name>_<YYYYmmdd_HHMMSS>.log``;
    the newest is chosen by that time stamp (file modification time when there is none).
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ReportError(f'{path}: no such results folder or log file')
    newest = _newest_log(path)
    if newest is not None:
        return [newest]
    logs = [log for log in (_newest_log(sub) for sub in sorted(path.iterdir()) if sub.is_dir()) if log is not None]
    if not logs:
        raise ReportError(f'{path}: no BasicSR test log (test_<name>_<time>.log) in it or its sub-folders; '
                          'run "python -m srcomp_plugin.test -opt OPT.yml" first (logs go to results/<name>/)')
    return logs


def _newest_log(folder):
    logs = [p for p in folder.glob('test_*.log') if p.is_file()]
    if not logs:
        return None

    def key(p):
        stamp = _LOG_TIME.search(p.name)
        return (stamp.group(1) if stamp else '', p.stat().st_mtime)

    return max(logs, key=key)


def _records(text):
    """Log records as lists of lines (first line without the time/level prefix)."""
    records = []
    for line in text.splitlines():
        start = _RECORD_START.match(line)
        if start:
            records.append([start.group(1)])
        elif records:
            records[-1].append(line)
    return records


def _value(text):
    """A ``dict2str`` leaf back to a Python value: numbers, lists, None, booleans; else the string.

    Other literals stay strings: ``filename_tmpl: {}`` is the template ``'{}'``, not a dict.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if value is None or isinstance(value, (bool, int, float, list, tuple)) else text


def parse_option_dump(lines):
    """Rebuild the option dict from the lines of BasicSR's ``dict2str`` dump.

    ``dict2str`` writes ``key: value`` leaves and ``key:[`` ... ``]`` sub-dicts, two spaces
    of indent per level.
    """
    root = {}
    stack = [root]
    for line in lines:
        body = line.strip()
        if not body:
            continue
        if body == ']':
            if len(stack) > 1:
                stack.pop()
            continue
        if body.endswith(':['):
            child = {}
            stack[-1][body[:-2]] = child
            stack.append(child)
            continue
        key, sep, value = body.partition(': ')
        if not sep and body.endswith(':'):
            key, value = body[:-1], ''
        stack[-1][key] = _value(value)
    return root


def parse_test_log(log_path):
    """``{'options', 'network', 'params', 'validations'}`` read from one BasicSR test log.

    ``validations`` maps each tested set (in log order) to its ``{metric: value}``.
    """
    log_path = Path(log_path)
    try:
        text = log_path.read_text(encoding='utf-8', errors='replace')
    except OSError as err:
        raise ReportError(f'{log_path}: cannot read the log: {err}') from err
    options, network, params, validations = None, None, None, {}
    for record in _records(text):
        head = record[0]
        if options is None and head == '' and any(line.startswith('  name: ') for line in record[1:]):
            options = parse_option_dump(record[1:])
        elif network is None and _NETWORK.match(head):
            match = _NETWORK.match(head)
            network, params = match.group(1), int(match.group(2).replace(',', ''))
        elif head.startswith('Validation '):
            set_name = head[len('Validation '):].strip()
            validations[set_name] = {m: float(v) for m, v in _METRIC.findall('\n'.join(record[1:]))}
    if options is None:
        raise ReportError(f'{log_path}: no option dump found; is this a BasicSR test log (test_<name>_<time>.log)?')
    if not validations:
        raise ReportError(f'{log_path}: no "Validation <set>" results; the test run did not finish (see the log)')
    return {'options': options, 'network': network, 'params': params, 'validations': validations}


def _metric_keys(options):
    """Names under which the log reports PSNR and SSIM (by metric ``type``, else by name)."""
    metrics = (options.get('val') or {}).get('metrics') or {}
    keys = {'psnr': 'psnr', 'ssim': 'ssim'}
    for key, metric_opt in metrics.items():
        kind = metric_opt.get('type', '') if isinstance(metric_opt, dict) else ''
        for short in ('psnr', 'ssim'):
            if kind == f'calculate_{short}':
                keys[short] = key
    return keys, metrics


def _protocol_notes(options, scale, keys, metrics):
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
    """A :class:`TestRun` from a results folder (its newest test log) or a log file."""
    logs = find_test_logs(path)
    if len(logs) > 1:
        raise ReportError(f'{path}: holds {len(logs)} runs; pass one results/<name> folder (or use collect_runs)')
    return _run_from_log(logs[0], out_hw)


def collect_runs(paths, out_hw=OUT_HW):
    """Every run under ``paths`` (results folders, their parent folder, or log files), in order."""
    if not paths:
        raise ReportError('no results folders given')
    return [_run_from_log(log, out_hw) for path in paths for log in find_test_logs(path)]


def _run_from_log(log, out_hw):
    parsed = parse_test_log(log)
    options = parsed['options']
    network_g = options.get('network_g')
    if not isinstance(network_g, dict) or 'type' not in network_g:
        raise ReportError(f'{log}: the option dump has no network_g with a type')
    scale = options.get('scale')
    if not isinstance(scale, int):
        raise ReportError(f'{log}: the option dump has no integer scale (got {scale!r})')
    keys, metric_opts = _metric_keys(options)
    notes = _protocol_notes(options, scale, keys, metric_opts)
    metrics = {
        set_name: {short: values[key] for short, key in keys.items() if key in values}
        for set_name, values in parsed['validations'].items()
    }
    macs, counted_params = None, None
    try:
        from srcomp_plugin.measure import profile_network

        profile = profile_network(network_g, scale=scale, out_hw=out_hw, latency=False, memory=False,
                                  where=f'{log}: network_g')
        macs, counted_params = profile['macs'], profile['params']
    except Exception as err:  # noqa: BLE001  (an arch this install lacks: report without MACs)
        notes.append(f'MACs not counted: {err}')
    params = parsed['params'] if parsed['params'] is not None else counted_params
    if parsed['params'] is not None and counted_params is not None and counted_params != parsed['params']:
        notes.append(f'network_g rebuilt here has {counted_params:,} parameters, the log says {parsed["params"]:,}')
    root = Path(log).resolve().parents[2]  # results/<name>/<log>: the folder the test ran in
    datasets = {d.get('name'): {k: (str(root / v) if k.startswith('dataroot') and isinstance(v, str)
                                    and not Path(v).is_absolute() else v) for k, v in d.items()}
                for d in (options.get('datasets') or {}).values() if isinstance(d, dict)}
    return TestRun(
        name=str(options.get('name', Path(log).parent.name)),
        log=str(Path(log).resolve()),
        scale=scale,
        arch=parsed['network'] or network_g['type'],
        network_g=network_g,
        params=params,
        macs=macs,
        metrics=metrics,
        notes=notes,
        datasets=datasets)


# ----------------------------------------------------------------------------- table


def ordered_sets(runs):
    """Every tested set, the standard benchmarks first in their usual order."""
    found = []
    for run in runs:
        found += [s for s in run.metrics if s not in found]
    return [s for s in STANDARD_SETS if s in found] + [s for s in found if s not in STANDARD_SETS]


def _fmt_count(n, unit=''):
    if n is None:
        return '-'
    for factor, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if n >= factor:
            return f'{n / factor:.2f}{suffix}{unit}'
    return f'{n}{unit}'


def markdown_table(runs, sets=DEFAULT_SETS):
    """The report table: one row per run, PSNR/SSIM per set and the mean PSNR over ``sets``."""
    columns = ordered_sets(runs)
    mean_col = f'mean PSNR ({", ".join(sets)})'
    header = ['model', 'arch', 'scale', 'params', 'MACs @1280x720'] + [f'{s} PSNR/SSIM' for s in columns] + [mean_col]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for run in runs:
        cells = [run.label, run.arch, f'x{run.scale}', f'{run.params:,}' if run.params is not None else '-',
                 _fmt_count(run.macs)]
        for set_name in columns:
            values = run.metrics.get(set_name, {})
            psnr = f'{values["psnr"]:.2f}' if 'psnr' in values else '-'
            ssim = f'{values["ssim"]:.4f}' if 'ssim' in values else '-'
            cells.append(f'{psnr}/{ssim}')
        mean = run.mean_psnr(sets)
        cells.append(f'{mean:.2f}' if mean is not None else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def _report_markdown(runs, sets, plots, out_hw, bicubic=None):
    reference = ', '.join(f'x{k} {v:.2f} dB' for k, v in sorted((bicubic or {}).items()))
    text = ['# SR benchmark report', '',
            'PSNR (dB) / SSIM as logged by BasicSR. Params: as BasicSR logged them for the tested network. '
            f'MACs: one forward for a {out_hw[1]}x{out_hw[0]} output, FlopCounterMode FLOPs / 2, attention '
            'matmuls included, LR input padded to the window for SwinIR.', '',
            markdown_table(runs, sets)]
    if reference:
        text += [f'Bicubic (MATLAB imresize) on the same images, mean Y-PSNR over {" + ".join(sets)}: {reference}.', '']
    notes = [(run.label, note) for run in runs for note in run.notes]
    if notes:
        text += ['Notes:', ''] + [f'- {label}: {note}' for label, note in notes] + ['']
    text += ['Logs:', ''] + [f'- {run.label}: `{run.log}`' for run in runs] + ['']
    for title, path in plots.items():
        text += [f'![{title}]({Path(path).name})', '']
    return '\n'.join(text)


# ----------------------------------------------------------------------------- plots


AXES = {'params': (1e3, 'Parameters (K, log scale)', 'parameters'),
        'macs': (1e9, 'MACs for a {w}x{h} output (G, log scale)', 'MACs'),
        'latency_s': (1.0, 'CPU latency for a {w}x{h} output (s, log scale)', 'CPU latency')}


def plot_psnr(runs, x, sets, path, out_hw=OUT_HW, bicubic=None):
    """Mean PSNR over ``sets`` against ``x`` ('params', 'macs' or 'latency_s') on a log axis.

    One point per run; one marker and legend entry per network (type and size: the teacher
    and the student), a label beside a point only where the legend alone does not identify it
    (several runs of one network, several scales).
    ``bicubic`` ({scale: mean PSNR}) draws the bicubic reference as dashed lines. Runs
    without the value are left out. Returns the number of points drawn.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    unit, xlabel, title = AXES[x]
    points = [(run, getattr(run, x), run.mean_psnr(sets)) for run in runs]
    points = [(run, xv / unit, yv) for run, xv, yv in points if xv and yv is not None]
    several_scales = len({run.scale for run, _, _ in points}) > 1
    networks = sorted({(run.arch, run.params) for run, _, _ in points}, key=lambda n: (-(n[1] or 0), n[0]))
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    for marker, (arch, params) in zip('osD^v<>ph*', networks):
        series = [(run, xv, yv) for run, xv, yv in points if (run.arch, run.params) == (arch, params)]
        ax.scatter([p[1] for p in series], [p[2] for p in series], marker=marker, s=48, zorder=3,
                   label=f'{arch} ({_fmt_count(params)} params)' if params else arch)
        for run, xv, yv in series:
            # the legend names the network; a point needs words only to tell apart runs of one network
            text = ' '.join(([run.label] if len(series) > 1 else []) + ([f'x{run.scale}'] if several_scales else []))
            if text:
                ax.annotate(text, (xv, yv), textcoords='offset points', xytext=(6, 4), fontsize=8)
    for scale, psnr in sorted((bicubic or {}).items()):
        if any(run.scale == scale for run, _, _ in points):
            ax.axhline(psnr, color='0.4', linestyle='--', linewidth=1,
                       label=f'bicubic x{scale}' if several_scales else 'bicubic')
    ax.set_xscale('log')
    plain = FuncFormatter(lambda v, _: f'{v:g}')
    ax.xaxis.set_major_formatter(plain)
    ax.tick_params(axis='both', which='both', labelsize=8)  # major and minor labels alike
    ys = [p[2] for p in points] + [v for k, v in (bicubic or {}).items() if any(r.scale == k for r, _, _ in points)]
    if points:
        lo = min(p[1] for p in points) / 10**0.15
        hi = max(p[1] for p in points) * 10**0.5  # room on the right for the labels
        ax.set_xlim(lo, hi)
        if math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) < 1:  # under two decade ticks: number the rest
            ax.xaxis.set_minor_formatter(plain)
        pad = max(0.25, 0.1 * (max(ys) - min(ys)))
        ax.set_ylim(min(ys) - pad, max(ys) + pad)
    if points:
        ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_xlabel(xlabel.format(w=out_hw[1], h=out_hw[0]))
    ax.set_ylabel(f'Mean Y-PSNR (dB), {" + ".join(sets)}')
    ax.set_title(f'PSNR vs {title}')
    ax.grid(True, which='both', alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return len(points)


def bicubic_psnr(runs, sets):
    """``{scale: mean over sets of the bicubic Y-PSNR}`` on the runs' logged test sets (the
    same pairs and protocol); a scale whose sets are not all readable here is left out."""
    from ..measure.bicubic import bicubic_scores

    found = {}
    for run in runs:
        if run.scale not in found:
            opts = [run.datasets.get(name) or {} for name in sets]
            values = [bicubic_scores(o.get('dataroot_gt'), o.get('dataroot_lq'), run.scale,
                                     o.get('filename_tmpl', '{}')) for o in opts]
            found[run.scale] = None if None in values else sum(v['psnr'] for v in values) / len(values)
    return {scale: value for scale, value in found.items() if value is not None}


# ----------------------------------------------------------------------------- report


def make_report(paths, out_dir='report', sets=DEFAULT_SETS, out_hw=OUT_HW, latency=False):
    """Write ``report.md``, ``psnr_vs_params.png`` and ``psnr_vs_macs.png`` (and, with
    ``latency``, ``psnr_vs_latency.png`` from a CPU timing of each network) to ``out_dir``.

    Returns ``{'runs': [TestRun.as_dict()...], 'sets', 'table', 'files'}``. Raises
    :class:`ReportError` when no run measured every one of ``sets`` (nothing to plot).
    """
    sets = list(sets)
    runs = collect_runs(paths, out_hw)
    complete = [run for run in runs if run.mean_psnr(sets) is not None]
    if not complete:
        found = ', '.join(ordered_sets(runs))
        raise ReportError(f'no run has PSNR for all of --sets {" ".join(sets)} (sets in the logs: {found}); '
                          'choose --sets among those')
    for run in runs:
        if run not in complete:
            missing = [s for s in sets if 'psnr' not in run.metrics.get(s, {})]
            run.notes.append(f'left out of the plots: no PSNR for {", ".join(missing)}')
        elif run.macs is None:
            run.notes.append('left out of the MACs plot')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    axes = ['params', 'macs']
    if latency:
        from srcomp_plugin.measure import profile_network

        for run in complete:
            run.latency_s = profile_network(run.network_g, scale=run.scale, out_hw=out_hw, memory=False, repeats=3,
                                            warmup=1)['latency']['median_s']
        axes.append('latency_s')
    bicubic = bicubic_psnr(complete, sets)
    for scale in sorted({run.scale for run in complete} - set(bicubic)):
        complete[0].notes.append(f'no bicubic reference at x{scale}: its test images are not readable here')
    files, plots = {}, {}
    for x in axes:
        key = f'psnr_vs_{x.replace("_s", "")}'
        files[key] = out_dir / f'{key}.png'
        plot_psnr(runs, x, sets, files[key], out_hw, bicubic=bicubic)
        plots[f'PSNR vs {AXES[x][2]}'] = files[key]
    files['report'] = out_dir / 'report.md'
    files['report'].write_text(_report_markdown(runs, sets, plots, out_hw, bicubic), encoding='utf-8')
    return {
        'runs': [run.as_dict() for run in runs],
        'sets': sets,
        'table': markdown_table(runs, sets),
        'bicubic': {f'x{scale}': value for scale, value in sorted(bicubic.items())},
        'files': {key: str(path) for key, path in files.items()},
    }


def build_parser():
    parser = argparse.ArgumentParser(
        prog='srcomp report',
        description='Collect BasicSR test logs (results/<name>/test_<name>_<time>.log, the newest of each '
        'folder) into a markdown table (model, params, MACs at 1280x720, PSNR/SSIM per set) and '
        'PSNR-vs-params and PSNR-vs-MACs plots (log x axis).')
    parser.add_argument('results', nargs='+', metavar='RESULTS_DIR',
                        help='results/<name> folders of test runs, a folder holding them, or log files')
    parser.add_argument('--out', default='report', help='folder for report.md and the plots (default: report)')
    parser.add_argument('--sets', nargs='+', default=list(DEFAULT_SETS),
                        help='sets whose PSNR is averaged for the plots (default: Set5 Set14, as in the paper)')
    parser.add_argument('--latency', action='store_true',
                        help='also time each network on this CPU (1280x720 output) and plot PSNR vs latency')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of the table')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        summary = make_report(args.results, args.out, args.sets, latency=args.latency)
    except ReportError as err:
        print(f'srcomp report: error: {err}', file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(summary['table'])
    for run in summary['runs']:
        for note in run['notes']:
            print(f'note: {run["label"]}: {note}')
    print('\n'.join(f'wrote {path}' for path in summary['files'].values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
