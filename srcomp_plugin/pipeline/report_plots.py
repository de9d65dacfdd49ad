"""The plots of ``srcomp report``: mean PSNR against parameters, MACs or CPU latency."""
import math
from pathlib import Path

from .report_runs import OUT_HW
from .report_table import fmt_count


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
                   label=f'{arch} ({fmt_count(params)} params)' if params else arch)
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
