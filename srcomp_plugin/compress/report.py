"""The stage-2 report: the evidence (densities), the target, the chosen shape, and what it costs.

One dict (:func:`build_report`), printed as a table (:func:`format_report`) and saved as
``<out stem>_compress_report.json`` and ``.txt`` beside the stage-3 option file
(:mod:`.writer`). Parameters and MACs come from
:func:`srcomp_plugin.measure.complexity.profile_network`, the counter of ``srcomp profile``.
"""
from ..families import FAMILIES

# Per-block densities are printed only up to this many rows (all of them go to the JSON).
MAX_BLOCK_ROWS = 40


def _net_entry(network_opt, shape, params, profile):
    entry = {'type': network_opt['type'], 'shape': shape, 'params': params, 'network_g': network_opt}
    if profile is not None:
        entry.update(macs=profile['macs'], macs_conv_linear=profile['macs_conv_linear'])
    return entry


def build_report(opt_path, checkpoint, key, density, ratio_source, shape, profiles, teacher_path, out, recipe, init,
                 init_path, report_files, selection, notes):
    """The report dict (see module docstring); ``profiles`` is (teacher, student) or None.

    ``report_files`` are the JSON and text paths the report will be saved at (it names them).
    """
    teacher_profile, student_profile = profiles if profiles else (None, None)
    teacher_opt = {'type': shape.teacher_type, **shape.teacher_kwargs}
    report = {
        'option_file': str(opt_path),
        'checkpoint': str(checkpoint),
        'checkpoint_key': key,
        'density': {
            'global': density['global_density'],
            'nonzero': density['num_measured'] - density['num_zero'],
            'measured': density['num_measured'],
            'patterns': list(density['patterns']),
            'blocks': dict(density['blocks']),
        },
        'target': {
            'ratio': float(shape.ratio),
            'ratio_exact': f'{shape.ratio.numerator}/{shape.ratio.denominator}',
            'source': ratio_source,
            'budget_params': float(shape.budget),
            'depth_keep': shape.depth_keep,
        },
        'teacher': _net_entry(teacher_opt, FAMILIES[shape.family].shape(shape.teacher_kwargs), shape.teacher_params,
                              teacher_profile),
        'student': _net_entry(shape.network_opt(), FAMILIES[shape.family].shape(shape.student_kwargs),
                              shape.student_params, student_profile),
        'width_candidates': [{'width': w, 'params': p} for w, p in shape.candidates],
        'fallback': shape.fallback,
        'achieved': {'params_ratio': shape.achieved_ratio,
                     'params_reduction': 1 - shape.achieved_ratio},
        'distill_teacher_checkpoint': str(teacher_path),
        'recipe': recipe,
        'init': init,
        'outputs': {'distill_options': str(out), 'pruned_init': str(init_path) if init_path else None,
                    'report_json': str(report_files[0]), 'report_txt': str(report_files[1])},
        'notes': list(notes),
    }
    if teacher_profile is not None:
        macs_ratio = student_profile['macs'] / teacher_profile['macs']
        report['achieved'].update(macs_ratio=macs_ratio, macs_reduction=1 - macs_ratio)
        report['macs_convention'] = (f"{teacher_profile['macs_convention']}; LR input {teacher_profile['lr_hw']} "
                                     f"(teacher padded to {teacher_profile['padded_lr_hw']}, student to "
                                     f"{student_profile['padded_lr_hw']}) for a {teacher_profile['target_out_hw']} "
                                     'output; every matmul counted (attention included where there is one)')
    if selection is not None:
        report['pruned_selection'] = selection
    return report


def _fmt_shape(shape):
    return ', '.join(f'{k} {v}' for k, v in shape.items())


def _macs(entry):
    return f"{entry['macs'] / 1e9:,.2f} G" if 'macs' in entry else 'not counted'


def format_report(report):
    """The report as a human-readable table."""
    d, t, te, st, a = report['density'], report['target'], report['teacher'], report['student'], report['achieved']
    lines = [
        f"option file   {report['option_file']}",
        f"checkpoint    {report['checkpoint']} (key {report['checkpoint_key']})",
        '',
        f"measured density  {d['global']:.6f}  ({d['nonzero']:,} of {d['measured']:,} weights non-zero; "
        f"{', '.join(d['patterns'])})",
    ]
    blocks = list(d['blocks'].items())
    if blocks:
        lines.append('  per block:')
        for block, density in blocks[:MAX_BLOCK_ROWS]:
            lines.append(f'    {block:<44} {density:.4f}')
        if len(blocks) > MAX_BLOCK_ROWS:
            lines.append(f'    ... {len(blocks) - MAX_BLOCK_ROWS} more in the JSON report')
    lines += [
        '',
        f"target ratio      {t['ratio']:.6f} = {t['ratio_exact']} ({t['source']}); budget "
        f"{t['budget_params']:,.1f} params; depth kept {t['depth_keep']}",
        '',
        f"{'':<9} {'type':<11} {'params':>11} {'MACs@720p':>12}  shape",
        f"{'teacher':<9} {te['type']:<11} {te['params']:>11,} {_macs(te):>12}  {_fmt_shape(te['shape'])}",
        f"{'student':<9} {st['type']:<11} {st['params']:>11,} {_macs(st):>12}  {_fmt_shape(st['shape'])}",
        '',
        f"achieved ratio    params {a['params_ratio']:.6f} ({a['params_reduction']:.1%} fewer)"
        + (f"; MACs {a['macs_ratio']:.6f} ({a['macs_reduction']:.1%} fewer)" if 'macs_ratio' in a else ''),
        'widths tried      ' + ', '.join(f"{c['width']}: {c['params']:,}" for c in report['width_candidates']),
    ]
    if 'macs_convention' in report:
        lines.append(f"MACs              {report['macs_convention']}")
    lines += [
        '',
        f"stage-3 options   {report['outputs']['distill_options']}",
        f"distil from       {report['distill_teacher_checkpoint']} (the original dense teacher)",
        f"recipe            {report['recipe']}",
        f"student init      {report['outputs']['pruned_init'] or 'scratch (random weights)'}",
    ]
    if report.get('init_psnr') is not None:
        lines.append(f"init PSNR         {report['init_psnr']['psnr']:.2f} dB (Y, on {report['init_psnr']['dataset']})")
    lines += [f'NOTE: {note}' for note in report['notes']]
    return '\n'.join(lines)
