"""Stage 1 cost: an OBProx-SG step against an Adam step on the same model (target <= 1.1x).

    python benchmarks/stage1.py                  # EDSR f64b16 and SwinIR-light, 2 threads
    python benchmarks/stage1.py --no-iteration   # optimizer steps only (seconds)

Models and OBProx-SG settings come from the stage-1 option files
(``options/prune/train_{EDSR_f64b16,SwinIR_light}_x2_prune.yml``: network_g, train.optim_g);
every parameter is regularised, as in the release. Two measurements, both interleaved
(see ``common.py``):

* **optimizer step** alone, with fixed random gradients: OBProx-SG in its Prox-SG phase,
  in its orthant phase, Adam (BasicSR's usual betas 0.9/0.99) and plain SGD for scale;
* **training iteration**: forward, L1 loss, backward and step on a small CPU batch
  (``--batch`` LR patches of ``--patch`` pixels), which is what the step's cost adds to.
"""
import argparse
import sys
from pathlib import Path

import torch

import common

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {
    'EDSR': 'options/prune/train_EDSR_f64b16_x2_prune.yml',
    'SwinIR-light': 'options/prune/train_SwinIR_light_x2_prune.yml',
}


def optimizers(net, optim_opt):
    """name -> optimizer factory on ``net``'s parameters (OBProx-SG in each phase, Adam, SGD)."""
    from srcomp_plugin.optim import OBProxSG

    # The optimizer's own settings (SparseSRModel consumes the others, e.g. auto_epoch_unit);
    # the phase is all that epoch_size changes here, and it is set explicitly below.
    settings = {k: v for k, v in optim_opt.items() if k in ('lr', 'lambda_', 'lambda', 'Np', 'No', 'eps')}
    settings['epoch_size'] = optim_opt['epoch_size'] if isinstance(optim_opt.get('epoch_size'), int) else 160
    params = list(net.parameters())

    def obproxsg(phase):
        def make():
            opt = OBProxSG(params, **settings)
            if phase == 'orthant':
                opt.num_steps = opt.epoch_size * opt.Np  # the first orthant step
            assert opt.phase == phase, (opt.phase, phase)
            return opt
        return make

    lr = float(settings['lr'])
    return {
        'OBProxSG (Prox-SG phase)': obproxsg('prox-sg'),
        'OBProxSG (orthant phase)': obproxsg('orthant'),
        'Adam': lambda: torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99)),
        'SGD': lambda: torch.optim.SGD(params, lr=lr),
    }


def build(name):
    import srcomp_plugin  # noqa: F401
    from srcomp_plugin.measure.networks import build_from_opt
    import yaml

    option_file = REPO / OPTIONS[name]
    opt = yaml.safe_load(option_file.read_text(encoding='utf-8'))
    torch.manual_seed(0)
    net = build_from_opt(dict(opt['network_g']), where=f'{option_file}: network_g').train()
    return net, opt['train']['optim_g'], str(option_file.relative_to(REPO))


def time_steps(net, factories, repeats, log):
    """Median ``step()`` time of each optimizer with fixed random gradients."""
    gen = torch.Generator().manual_seed(0)
    for p in net.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    made = {name: make() for name, make in factories.items()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    times = common.interleaved_times({name: opt.step for name, opt in made.items()}, repeats, warmup=2)
    net.load_state_dict(state)
    return times


def time_iterations(net, factories, batch, patch, repeats, log):
    """Median forward + L1 + backward + step time with each optimizer."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, patch, patch, generator=gen)
    with torch.no_grad():
        scale = net(x[:1]).shape[-1] // patch
    target = torch.rand(batch, 3, patch * scale, patch * scale, generator=gen)
    made = {name: make() for name, make in factories.items()}

    def iteration(opt):
        def run():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.l1_loss(net(x), target).backward()
            opt.step()
        return run

    state = {k: v.clone() for k, v in net.state_dict().items()}
    times = common.interleaved_times({name: iteration(opt) for name, opt in made.items()}, repeats, warmup=1,
                                     log=log)
    net.load_state_dict(state)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--step-repeats', type=int, default=30, help='timed optimizer-step rounds (default 30)')
    parser.add_argument('--iter-repeats', type=int, default=5, help='timed training-iteration rounds (default 5)')
    parser.add_argument('--batch', type=int, default=2, help='LR patches per iteration (default 2)')
    parser.add_argument('--patch', type=int, default=48, help='LR patch size (default 48)')
    parser.add_argument('--no-iteration', action='store_true', help='time optimizer steps only')
    parser.add_argument('--json-out', help='JSON file (default benchmarks/results/stage1.json)')
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    log = common.progress_logger(args.quiet)
    info = common.machine_info(torch.get_num_threads())
    results, rows, checks = [], [], []
    for name in args.models:
        net, optim_opt, option_file = build(name)
        factories = optimizers(net, optim_opt)
        log(f'{name}: optimizer steps ({args.step_repeats} rounds)')
        steps = time_steps(net, factories, args.step_repeats, log)
        iters = None
        if not args.no_iteration:
            log(f'{name}: training iterations (batch {args.batch}, LR patch {args.patch})')
            iters = time_iterations(net, factories, args.batch, args.patch, args.iter_repeats, log)
        adam_step = steps['Adam']['median_s']
        adam_iter = iters['Adam']['median_s'] if iters else None
        for opt_name in factories:
            step = steps[opt_name]['median_s']
            row = {'model': name, 'option_file': option_file, 'optimizer': opt_name,
                   'params': sum(p.numel() for p in net.parameters()), 'step': steps[opt_name],
                   'step_vs_adam': step / adam_step, 'iteration': iters[opt_name] if iters else None,
                   'iteration_vs_adam': iters[opt_name]['median_s'] / adam_iter if iters else None}
            results.append(row)
            rows.append([name, opt_name, f'{step * 1e3:.2f}', f'{row["step_vs_adam"]:.2f}',
                         f'{iters[opt_name]["median_s"]:.3f}' if iters else '-',
                         f'{row["iteration_vs_adam"]:.3f}' if iters else '-'])
            if opt_name.startswith('OBProxSG'):
                checks.append({'target': f'{name}: {opt_name} step / Adam step <= 1.1',
                               'value': row['step_vs_adam'], 'met': row['step_vs_adam'] <= 1.1})
    print(common.format_table(['model', 'optimizer', 'step (ms)', 'step / Adam', 'iteration (s)',
                               'iteration / Adam'], rows))
    print()
    print(common.format_table(['target', 'measured', 'met'],
                              [[c['target'], f'{c["value"]:.2f}', 'yes' if c['met'] else 'NO'] for c in checks]))
    settings = vars(args)
    result = {'benchmark': 'stage1', 'settings': settings, 'machine': common.finish_info(info), 'rows': results,
              'targets': checks}
    path = common.write_json(result, args.json_out or common.RESULTS_DIR / 'stage1.json')
    print(f'\nload average start {info["load_average_start"]}, end {info["load_average_end"]}; JSON: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
