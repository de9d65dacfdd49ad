"""Inference latency of the teachers and the compact students on CPU, with our speed targets.

    python benchmarks/inference.py                 # 1280x720 output, x2, 2 threads, the table + JSON
    python benchmarks/inference.py --onnx          # also ONNX Runtime rows for the students
    python benchmarks/inference.py --channels-last --no-eager   # channels_last memory format rows
    python benchmarks/inference.py --ablation      # SwinIRmini: eager -> SDPA -> fused, on a smaller input
    python benchmarks/inference.py --ablation edsr # EDSRmini: BasicSR -> channels_last -> fused convolutions

The networks are built from the repository's test option files (``options/test/``), i.e.
exactly what ``srcomp test`` runs for a user: EDSR f64b16 and EDSRmini (both ``EDSRmini``
networks, fused convolutions on by default), SwinIR-light and SwinIRmini (both
``SwinIRmini`` networks, fused attention on by default). For reference all four are also
timed with BasicSR's own forward (``fused_convs: false`` / ``fused_attention: false``).
Batch 1, float32, eval mode, ``torch.inference_mode``, random weights (latency does not
depend on the values), LR input = output / scale.

Timing is interleaved (see ``common.py``): every round runs every network once. MACs are
``srcomp_plugin.measure.macs.mac_counts`` (FlopCounterMode FLOPs / 2, attention
matmuls included). Targets:
  * EDSRmini speedup over EDSR >= 0.8 x their MACs ratio;
  * SwinIRmini speedup over SwinIR-light >= 0.8 x their MACs ratio;
  * SwinIRmini latency / EDSRmini latency <= 2 x their MACs ratio (half EDSRmini's
    per-MAC efficiency).
"""
import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch

import common

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {
    'EDSR': 'options/test/test_EDSR_f64b16_x{s}.yml',
    'EDSRmini': 'options/test/test_EDSRmini_x{s}.yml',
    'SwinIR-light': 'options/test/test_SwinIR_light_x{s}.yml',
    'SwinIRmini': 'options/test/test_SwinIRmini_x{s}.yml',
}
EAGER_SUFFIX = ' (BasicSR forward)'
ONNX_SUFFIX = ' (ONNX Runtime)'
CL_SUFFIX = ' (channels_last)'


def _hw(text):
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w


def build(name, scale, eager=False):
    """The network of ``name``'s test option file; ``eager`` switches back to BasicSR's own forward."""
    import srcomp_plugin  # noqa: F401
    from srcomp_plugin.accel.edsr_fused_convs import use_eager_convs
    from srcomp_plugin.accel.swinir_fast_attention import use_eager_attention
    from srcomp_plugin.measure.networks import build_from_opt

    option_file = REPO / OPTIONS[name].format(s=scale)
    network_opt = common.load_network_opt(option_file)
    torch.manual_seed(0)
    net = build_from_opt(network_opt, where=f'{option_file}: network_g').eval()
    if eager:
        use_eager_convs(use_eager_attention(net))
    return net, str(option_file.relative_to(REPO)), network_opt


def lr_input(net, scale, out_hw):
    from srcomp_plugin.measure.shapes import input_channels

    lr_hw = tuple(side // scale for side in out_hw)
    return torch.rand(1, input_channels(net), *lr_hw, generator=torch.Generator().manual_seed(0))


def onnx_runner(net, threads, workdir):
    from srcomp_plugin.export import export_network, load_runner

    path = export_network(copy.deepcopy(net), Path(workdir) / f'{id(net)}.onnx', 'onnx')
    return load_runner(path, 'onnx', threads=threads)


def targets(rows, macs):
    """Our three speed targets from median latencies ``rows`` (name -> s) and MACs (name -> int)."""
    def ratio(a, b):
        return rows[a] / rows[b]

    checks = []
    for teacher, student in (('EDSR', 'EDSRmini'), ('SwinIR-light', 'SwinIRmini')):
        macs_ratio = macs[teacher] / macs[student]
        variants = ((teacher, 'both fused'), (teacher + EAGER_SUFFIX, f'{student} fused, {teacher} as BasicSR runs it'))
        for name, how in variants:
            if name in rows:
                checks.append({'target': f'{student} speedup over {teacher} ({how}) >= 0.8 x MACs ratio',
                               'value': ratio(name, student), 'bound': 0.8 * macs_ratio, 'direction': '>=',
                               'macs_ratio': macs_ratio})
    mini_macs = macs['SwinIRmini'] / macs['EDSRmini']
    checks.append({'target': 'SwinIRmini latency / EDSRmini latency <= 2 x MACs ratio',
                   'value': ratio('SwinIRmini', 'EDSRmini'), 'bound': 2 * mini_macs, 'direction': '<=',
                   'macs_ratio': mini_macs})
    for check in checks:
        value, bound = check['value'], check['bound']
        check['met'] = value >= bound if check['direction'] == '>=' else value <= bound
    return checks


def run_table(args, log):
    from srcomp_plugin.measure.macs import mac_counts

    names = list(OPTIONS)
    nets, option_files, macs = {}, {}, {}
    for name in names:
        nets[name], option_files[name], _ = build(name, args.scale)
        macs[name] = mac_counts(nets[name], args.scale, out_hw=args.out_size).macs
    if not args.no_eager:
        for name in names:
            nets[name + EAGER_SUFFIX], _, _ = build(name, args.scale, eager=True)
            switch = 'fused_convs' if name.startswith('EDSR') else 'fused_attention'
            option_files[name + EAGER_SUFFIX] = option_files[name] + f' + {switch}: false'
            macs[name + EAGER_SUFFIX] = macs[name]
    x = lr_input(nets['EDSR'], args.scale, args.out_size)
    cases = {}
    for name, net in nets.items():
        cases[name] = (lambda net=net: net(x))
    if args.channels_last:
        x_cl = x.contiguous(memory_format=torch.channels_last)
        for name in OPTIONS:
            net_cl = copy.deepcopy(nets[name]).to(memory_format=torch.channels_last)
            cases[name + CL_SUFFIX] = (lambda net=net_cl: net(x_cl))
            option_files[name + CL_SUFFIX] = option_files[name] + ' + .to(memory_format=torch.channels_last)'
            macs[name + CL_SUFFIX] = macs[name]
    workdir = tempfile.TemporaryDirectory(prefix='srcomp_bench_')
    if args.onnx:
        for name in ('EDSRmini', 'SwinIRmini'):
            run = onnx_runner(nets[name], args.threads, workdir.name)
            cases[name + ONNX_SUFFIX] = (lambda run=run: run(x))
            option_files[name + ONNX_SUFFIX] = option_files[name] + ' -> srcomp export --format onnx'
            macs[name + ONNX_SUFFIX] = macs[name]
    log(f'timing {len(cases)} networks on a {tuple(x.shape)} input, {args.warmup} warm-up + {args.repeats} rounds')
    with torch.inference_mode():
        times = common.interleaved_times(cases, args.repeats, args.warmup, log=log)
    workdir.cleanup()
    medians = {name: t['median_s'] for name, t in times.items()}
    checks = targets(medians, macs)
    # The fastest round is the least disturbed by other load on a shared machine: report
    # the targets on it too (the median, the statistic they are set on, decides).
    for check, best in zip(checks, targets({name: t['min_s'] for name, t in times.items()}, macs)):
        check['value_min'], check['met_min'] = best['value'], best['met']
    rows = []
    for name, t in times.items():
        rows.append({'name': name, 'option_file': option_files[name], 'macs': macs[name],
                     'gmacs_per_s': macs[name] / t['median_s'] / 1e9, **t})
    return {'rows': rows, 'targets': checks, 'lr_hw': list(x.shape[-2:])}


def _time_variants(variants, x, args, log):
    """Interleaved times of ``variants`` (name -> callable net) on ``x``, against the first one."""
    names = list(variants)
    with torch.inference_mode():
        ref = variants[names[0]](x)
        diffs = {name: float((net(x) - ref).abs().max()) for name, net in variants.items()}
        log(f'ablation on a {tuple(x.shape)} input, {args.warmup} warm-up + {args.repeats} rounds')
        times = common.interleaved_times({k: (lambda n=n: n(x)) for k, n in variants.items()}, args.repeats,
                                         args.warmup, log=log)
    base = times[names[0]]['median_s']
    return {'lr_hw': list(x.shape[-2:]),
            'rows': [{'name': name, 'speedup_vs_eager': base / t['median_s'], 'max_abs_diff_vs_eager': diffs[name],
                      **t} for name, t in times.items()]}


def run_edsr_ablation(args, log):
    """EDSRmini at ``--ablation-size`` (default the 720p LR): BasicSR, + channels_last, + fused convolutions."""
    from srcomp_plugin.accel.edsr_fused_convs import use_eager_convs

    fused, _, _ = build('EDSRmini', args.scale)
    eager = use_eager_convs(copy.deepcopy(fused))
    eager_cl = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    variants = {'BasicSR forward': eager,
                '+ channels_last (network and input)':
                    lambda x: eager_cl(x.contiguous(memory_format=torch.channels_last)),
                '+ oneDNN-fused conv+ReLU, conv+scale+residual, folded output (= fused)': fused}
    x = torch.rand(1, 3, *(args.ablation_size or (360, 640)), generator=torch.Generator().manual_seed(0))
    return _time_variants(variants, x, args, log)


def run_ablation(args, log):
    """SwinIRmini at ``--ablation-size``, each optimisation added in turn (see RESULTS.md)."""
    from basicsr.archs.swinir_arch import WindowAttention

    from srcomp_plugin.accel import swinir_fast_attention as fast

    fused, _, _ = build('SwinIRmini', args.scale)
    eager = fast.use_eager_attention(copy.deepcopy(fused))
    sdpa_only = copy.deepcopy(eager)
    for module in sdpa_only.modules():
        if type(module) is WindowAttention:
            module.__class__ = fast.FusedWindowAttention  # SDPA, but BasicSR's block: roll, partition, mask per call

    def without_onednn_linears(x):
        saved, fast.LINEAR_POINTWISE = fast.LINEAR_POINTWISE, None
        try:
            return fused(x)
        finally:
            fast.LINEAR_POINTWISE = saved

    variants = {'BasicSR eager': eager, '+ SDPA attention (BasicSR block)': sdpa_only,
                '+ gather, border windows, cached geometry': without_onednn_linears,
                '+ window-order stream, oneDNN-fused linears (= fused)': fused}
    x = torch.rand(1, 3, *(args.ablation_size or (176, 320)), generator=torch.Generator().manual_seed(0))
    return _time_variants(variants, x, args, log)


def print_table(result):
    rows = result['rows']
    table = common.format_table(
        ['network', 'MACs (G)', 'latency (s, median)', 'min-max (s)', 'GMAC/s'],
        [[r['name'], f'{r["macs"] / 1e9:.2f}', f'{r["median_s"]:.3f}', f'{r["min_s"]:.3f}-{r["max_s"]:.3f}',
          f'{r["gmacs_per_s"]:.1f}'] for r in rows])
    print(table)
    print()
    print(common.format_table(
        ['target', 'measured (medians)', 'bound', 'MACs ratio', 'met', 'measured (fastest rounds)', 'met'],
        [[t['target'], f'{t["value"]:.2f}', f'{t["direction"]} {t["bound"]:.2f}', f'{t["macs_ratio"]:.2f}',
          'yes' if t['met'] else 'NO', f'{t["value_min"]:.2f}', 'yes' if t['met_min'] else 'NO']
         for t in result['targets']]))


def print_ablation(result, network):
    print(common.format_table(
        [f'{network} variant', 'latency (s, median)', 'speedup vs eager', 'max |diff| vs eager'],
        [[r['name'], f'{r["median_s"]:.3f}', f'{r["speedup_vs_eager"]:.2f}', f'{r["max_abs_diff_vs_eager"]:.1e}']
         for r in result['rows']]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scale', type=int, default=2, choices=(2, 3, 4))
    parser.add_argument('--out-size', type=_hw, default=(720, 1280), metavar='HxW', help='output size (720x1280)')
    parser.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default 2)')
    parser.add_argument('--repeats', type=int, default=3, help='timed rounds (default 3)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first (default 1)')
    parser.add_argument('--no-eager', action='store_true', help="skip the rows of BasicSR's own forwards (slowest)")
    parser.add_argument('--onnx', action='store_true', help='add ONNX Runtime rows for EDSRmini and SwinIRmini')
    parser.add_argument('--channels-last', action='store_true',
                        help='add rows with network and input in channels_last memory format')
    parser.add_argument('--ablation', nargs='?', const='swinir', choices=('swinir', 'edsr'),
                        help='run an ablation instead of the table: SwinIRmini (default) or EDSRmini')
    parser.add_argument('--ablation-size', type=_hw, metavar='HxW',
                        help='LR size of the ablation (default 176x320 for swinir, 360x640 for edsr)')
    parser.add_argument('--json-out', help='JSON file (default benchmarks/results/inference[_ablation[_edsr]].json)')
    parser.add_argument('--quiet', action='store_true', help='no per-forward log lines')
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    log = common.progress_logger(args.quiet)
    info = common.machine_info(torch.get_num_threads())
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
    if args.ablation:
        edsr = args.ablation == 'edsr'
        result = (run_edsr_ablation if edsr else run_ablation)(args, log)
        print_ablation(result, 'EDSRmini' if edsr else 'SwinIRmini')
        benchmark = 'inference_ablation' + ('_edsr' if edsr else '')
    else:
        result = run_table(args, log)
        print_table(result)
        benchmark = 'inference'
    default_out = common.RESULTS_DIR / f'{benchmark}.json'
    result = {'benchmark': benchmark, 'settings': settings,
              'machine': common.finish_info(info), **result}
    path = common.write_json(result, args.json_out or default_out)
    print(f'\nload average start {info["load_average_start"]}, end {info["load_average_end"]}; JSON: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
