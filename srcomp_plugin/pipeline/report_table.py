"""The tables of ``srcomp report``: the markdown table of the runs and the ``report.md`` around it."""
from pathlib import Path

STANDARD_SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
DEFAULT_SETS = ('Set5', 'Set14')


def ordered_sets(runs):
    """Every tested set, the standard benchmarks first in their usual order."""
    found = []
    for run in runs:
        found += [s for s in run.metrics if s not in found]
    return [s for s in STANDARD_SETS if s in found] + [s for s in found if s not in STANDARD_SETS]


def fmt_count(n, unit=''):
    """``n`` with a K/M/G suffix (``-`` for None): parameter and MAC counts in tables and legends."""
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
                 fmt_count(run.macs)]
        for set_name in columns:
            values = run.metrics.get(set_name, {})
            psnr = f'{values["psnr"]:.2f}' if 'psnr' in values else '-'
            ssim = f'{values["ssim"]:.4f}' if 'ssim' in values else '-'
            cells.append(f'{psnr}/{ssim}')
        mean = run.mean_psnr(sets)
        cells.append(f'{mean:.2f}' if mean is not None else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def report_markdown(runs, sets, plots, out_hw, bicubic=None):
    """``report.md``: what the numbers are, the table, the bicubic reference, notes, sources and plots."""
    reference = ', '.join(f'x{k} {v:.2f} dB' for k, v in sorted((bicubic or {}).items()))
    text = ['# SR benchmark report', '',
            'PSNR (dB) / SSIM as BasicSR computed them in the test runs. Params: of the tested network. '
            f'MACs: one forward for a {out_hw[1]}x{out_hw[0]} output, FlopCounterMode FLOPs / 2, attention '
            'matmuls included, LR input padded to the window for SwinIR.', '',
            markdown_table(runs, sets)]
    if reference:
        text += [f'Bicubic (MATLAB imresize) on the same images, mean Y-PSNR over {" + ".join(sets)}: {reference}.', '']
    notes = [(run.label, note) for run in runs for note in run.notes]
    if notes:
        text += ['Notes:', ''] + [f'- {label}: {note}' for label, note in notes] + ['']
    text += ['Test results (BasicSR\'s log beside each):', ''] + [f'- {run.label}: `{run.results}`' for run in runs]
    text += ['']
    for title, path in plots.items():
        text += [f'![{title}]({Path(path).name})', '']
    return '\n'.join(text)
