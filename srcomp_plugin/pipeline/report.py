"""``srcomp report RESULTS...``: test results -> a markdown table and PSNR plots.

The numbers come from the ``results/<name>/test_<name>_<time>.json`` that
``python -m srcomp_plugin.test`` writes beside BasicSR's log (the newest run of each
folder), so the report shows what was really measured, with nothing re-run: the metrics of
each test set as BasicSR computed them, the tested network's parameter count, and the
options (``scale``, ``network_g``, each metric's ``crop_border``/``test_y_channel``) that
the protocol check reads. A folder tested before srcomp wrote that file is an error that
says to test it again.

MACs are not in the results: they are counted on the run's ``network_g`` by
:func:`srcomp_plugin.measure.profile_network` for a 1280x720 output (FLOPs / 2, attention
matmuls included), the convention of the paper's figure. The plots put one point per run
at (params or MACs, mean PSNR over ``sets``), log x axis; the paper's figure averaged Set5
and Set14, which is the default.

One concept per module: :mod:`.report_runs` reads the runs, :mod:`.report_table` writes the
table and ``report.md``, :mod:`.report_plots` draws the plots; this one puts them together.

Python use::

    from srcomp_plugin.pipeline.report import make_report
    summary = make_report(['results/test_EDSRmini_x2', 'results/test_EDSR_f64b16_x2'], 'report')
"""
import argparse
import json
import sys
from pathlib import Path

from ..errors import SrcompError, message
from .report_plots import AXES, plot_psnr
from .report_runs import OUT_HW, ReportError, collect_runs
from .report_table import DEFAULT_SETS, markdown_table, ordered_sets, report_markdown


def bicubic_psnr(runs, sets):
    """``{scale: mean over sets of the bicubic Y-PSNR}`` on the runs' test sets (the same
    pairs and protocol); a scale whose sets are not all readable here is left out."""
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
        raise ReportError(f'no run has PSNR for all of --sets {" ".join(sets)} (sets in the results: {found}); '
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
            run.latency_s = profile_network(run.network_g, scale=run.scale, out_hw=out_hw, repeats=3,
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
    files['report'].write_text(report_markdown(runs, sets, plots, out_hw, bicubic), encoding='utf-8')
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
        description='Collect test results (results/<name>/test_<name>_<time>.json, written by "python -m '
        'srcomp_plugin.test"; the newest of each folder) into a markdown table (model, params, MACs at 1280x720, '
        'PSNR/SSIM per set) and PSNR-vs-params and PSNR-vs-MACs plots (log x axis).')
    parser.add_argument('results', nargs='+', metavar='RESULTS_DIR',
                        help='results/<name> folders of test runs, a folder holding them, or runs\' .json files')
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
    except SrcompError as err:  # a results folder or option that is wrong: one line, no traceback
        print(f'srcomp report: error: {message(err)}', file=sys.stderr)
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
