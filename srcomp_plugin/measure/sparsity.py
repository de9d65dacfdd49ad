"""Density of a network's weights: the measurement behind stage 1 and stage 2.

"Density" is the fraction of exactly non-zero entries among the *measured* weights. As in
the release, only the body's ``weight`` tensors are measured by default (head, tail and
upsampler are not counted), while the L1 term of stage 1 may cover more parameters.

Which tensors are measured is given by **name patterns**: shell-style globs matched with
:func:`fnmatch.fnmatchcase` against full parameter names, where ``*`` matches any run of
characters *including dots*, ``?`` one character and ``[seq]`` one character of ``seq``.
So ``body.*.weight`` is every ``weight`` under ``body`` (EDSR's residual blocks) and
``layers.*weight`` every tensor under ``layers`` whose name ends in ``weight`` (SwinIR's
stages: linear, conv *and* LayerNorm weights, the release's choice). A pattern list
selects the union; ``'all'`` selects everything.

Everything here is a pure function of a state dict (name -> tensor), so the training
model, the ``srcomp sparsity`` command and stage 2 share one definition.
"""
import re
from fnmatch import fnmatchcase

import torch

from ..families import FAMILIES, family_of_arch, family_of_state_dict

# Unknown architectures: every prefix that ends in a list index (``x.<i>``).
_GENERIC_BLOCK = re.compile(r'\.\d+(?=\.)')


def _arch_type_of(network_opt_or_arch_type):
    if isinstance(network_opt_or_arch_type, dict):
        return network_opt_or_arch_type.get('type')
    return network_opt_or_arch_type


def default_measure_patterns(network_opt_or_arch_type):
    """Default measured-weight patterns: EDSR ``body.*.weight``, SwinIR ``layers.*weight``.

    Accepts a ``network_g`` option dict or an arch type name. Other architectures have no
    default: a ``ValueError`` says to set ``train.sparsity.measure``.
    """
    arch_type = _arch_type_of(network_opt_or_arch_type)
    family = family_of_arch(arch_type)
    if family is not None:
        return list(family.measure)
    raise ValueError(f'No default density patterns for arch type {arch_type!r} (defaults exist for the '
                     f'{" and ".join(FAMILIES)} families). Set train.sparsity.measure to a list of parameter-name '
                     "globs, e.g. ['body.*.weight'] (or pass --measure to srcomp sparsity).")


def _as_patterns(patterns):
    if isinstance(patterns, str):
        return [patterns]
    patterns = list(patterns or [])
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f'Patterns must be a non-empty list of name globs (or "all"), got {patterns!r}.')
    return patterns


def select_params(names, patterns):
    """The names (in their order) matched by any pattern; ``'all'`` matches every name."""
    patterns = _as_patterns(patterns)
    if patterns == ['all']:
        return list(names)
    return [n for n in names if any(fnmatchcase(n, p) for p in patterns)]


def block_names(name, family=None):
    """The blocks a tensor belongs to, outermost first (e.g. SwinIR: stage, then layer).

    ``family``: the network's record (:mod:`srcomp_plugin.families`), whose ``block_rules``
    name its residual units; without one, every prefix ending in a list index is a block.
    """
    if family is not None:
        return [m.group(1) for m in (r.match(name) for r in family.block_rules) if m]
    return [name[:m.start()] + m.group(0) for m in _GENERIC_BLOCK.finditer(name)]


def tensor_density(tensor):
    """Density, counts and per-output-channel (dim 0) density of one tensor."""
    nonzero = tensor.detach() != 0
    numel = nonzero.numel()
    nnz = int(nonzero.sum())
    rows = nonzero.reshape(nonzero.shape[0], -1) if nonzero.dim() > 0 else nonzero.reshape(1, 1)
    per_channel = rows.float().mean(dim=1).tolist()
    return {
        'shape': list(tensor.shape),
        'numel': numel,
        'zeros': numel - nnz,
        'density': nnz / numel if numel else 1.0,
        'zero_channels': sum(1 for d in per_channel if d == 0),
        'per_channel': per_channel,
    }


def density_report(state_dict, patterns, arch_type=None):
    """Density report of the tensors of ``state_dict`` selected by ``patterns``.

    Returns a dict with ``global_density`` (non-zero fraction over all measured entries),
    ``num_measured``, ``num_zero``, ``tensors`` ({name: {density, numel, zeros, shape,
    zero_channels, per_channel}}), ``blocks`` ({block: density}) and ``block_counts``
    ({block: {numel, zeros}}); blocks are grouped by the arch family of ``arch_type``
    (inferred from the names when ``None``). ``layer_types`` ({type: density}) groups the
    tensors by their name after the last index (``conv1.weight``, ``attn.qkv.weight``, ...).
    """
    tensors = {k: v for k, v in state_dict.items() if torch.is_tensor(v)}
    patterns = _as_patterns(patterns)
    names = select_params(list(tensors), patterns)
    if not names:
        sample = ', '.join(list(tensors)[:6])
        raise ValueError(f'The density patterns {patterns} match none of the {len(tensors)} tensors '
                         f'(names look like: {sample}, ...). Fix train.sparsity.measure / --measure.')
    family = family_of_arch(arch_type) if arch_type else family_of_state_dict(tensors)
    per_tensor, block_counts, type_counts = {}, {}, {}
    for name in names:
        entry = tensor_density(tensors[name])
        per_tensor[name] = entry
        counts = type_counts.setdefault(layer_type(name), {'numel': 0, 'zeros': 0})
        counts['numel'] += entry['numel']
        counts['zeros'] += entry['zeros']
        for block in block_names(name, family):
            counts = block_counts.setdefault(block, {'numel': 0, 'zeros': 0})
            counts['numel'] += entry['numel']
            counts['zeros'] += entry['zeros']
    num_measured = sum(e['numel'] for e in per_tensor.values())
    num_zero = sum(e['zeros'] for e in per_tensor.values())
    return {
        'arch_type': arch_type,
        'family': family.name if family is not None else None,
        'patterns': patterns,
        'global_density': (num_measured - num_zero) / num_measured if num_measured else 1.0,
        'num_measured': num_measured,
        'num_zero': num_zero,
        'tensors': per_tensor,
        'blocks': {b: (c['numel'] - c['zeros']) / c['numel'] for b, c in block_counts.items()},
        'block_counts': block_counts,
        'layer_types': {t: (c['numel'] - c['zeros']) / c['numel'] for t, c in type_counts.items()},
    }


def layer_type(name):
    """The part of a parameter name after its last numeric index: what kind of layer it is."""
    parts = name.split('.')
    last = max((i for i, part in enumerate(parts) if part.isdigit()), default=-1)
    return '.'.join(parts[last + 1:]) or name


def global_density(named_tensors):
    """Non-zero fraction over an iterable of tensors (cheap: for per-iteration logging)."""
    total = nonzero = 0
    for tensor in named_tensors:
        total += tensor.numel()
        nonzero += int(torch.count_nonzero(tensor.detach()))
    return nonzero / total if total else 1.0


def format_report(report, per_tensor=True):
    """A human-readable table of a :func:`density_report` result."""
    lines = [f"global density {report['global_density']:.4f}: {report['num_measured'] - report['num_zero']:,} of "
             f"{report['num_measured']:,} measured weights non-zero ({report['num_zero']:,} zeros)",
             f"measured: {', '.join(report['patterns'])}"
             + (f"  (arch {report['arch_type']})" if report.get('arch_type') else '')]
    if report['blocks']:
        lines += ['', f"{'block':<44} {'numel':>10} {'zeros':>10} {'density':>8}"]
        for block, density in report['blocks'].items():
            counts = report['block_counts'][block]
            lines.append(f"{block:<44} {counts['numel']:>10,} {counts['zeros']:>10,} {density:>8.4f}")
    if per_tensor:
        lines += ['', f"{'tensor':<52} {'shape':<18} {'zeros':>9} {'density':>8} {'ch min':>7} {'ch max':>7} "
                  f"{'0-ch':>5}"]
        for name, entry in report['tensors'].items():
            shape = 'x'.join(str(s) for s in entry['shape'])
            per_channel = entry['per_channel']
            lines.append(f"{name:<52} {shape:<18} {entry['zeros']:>9,} {entry['density']:>8.4f} "
                         f"{min(per_channel):>7.3f} {max(per_channel):>7.3f} {entry['zero_channels']:>5}")
    return '\n'.join(lines)


def resolve_patterns(state_dict, opt=None, measure=None, arch=None):
    """Measured patterns and arch type from the command line, option file or key names."""
    network_opt = (opt or {}).get('network_g') or {}
    arch = arch or network_opt.get('type')
    if measure:
        return list(measure), arch
    sparsity_opt = ((opt or {}).get('train') or {}).get('sparsity') or {}
    if sparsity_opt.get('measure'):
        patterns = sparsity_opt['measure']
        return ([patterns] if isinstance(patterns, str) else list(patterns)), arch
    if arch:
        return default_measure_patterns(arch), arch
    family = family_of_state_dict(state_dict)
    if family is not None:
        return list(family.measure), arch
    raise ValueError('Cannot tell which weights to measure: the checkpoint is neither EDSR- nor SwinIR-shaped. '
                     'Pass --measure GLOB [GLOB ...], --arch TYPE or -opt OPT.yml.')
