"""The EDSR family: BasicSR's ``EDSR`` (and our ``EDSRmini``) compressed to ``EDSRmini``.

Residual units are the ``num_block`` residual blocks (one level, no stages); the width is
``num_feat``, a multiple of 4. The student keeps ``EDSRmini``'s own ``res_scale`` (2, the
release's value). Stage 1 measures the residual blocks' weights (``body.*.weight``).

Slicing (``--init pruned``, :func:`slice_edsr`):

* residual stream: one channel set for every layer that reads or writes the stream
  (``conv_first`` outputs, each block's ``conv1`` inputs and ``conv2`` outputs,
  ``conv_after_body`` inputs and outputs, the first upsampler conv's inputs), chosen
  by the summed mass over all of them;
* inside each block: its own ``conv1``-output / ``conv2``-input channels, by their mass;
* blocks: those with the largest mass *remaining after the channel slicing*, in their
  original order;
* upsampler: each conv + PixelShuffle(r) stage keeps whole groups of r^2 output
  channels (one group becomes one channel after the shuffle), chosen by the group's
  mass plus the next layer's input columns; ``conv_last`` reads the last kept groups;
* residual scale: the student (``EDSRmini``) has ``res_scale`` 2 where the teacher may
  have 1, so each kept ``conv2`` (weight and bias) is multiplied by
  teacher_res_scale / student_res_scale; the block then adds exactly what it added in
  the teacher. With this, a teacher whose dropped channels and blocks are exactly zero
  gives a student with identical outputs.

:func:`drop_masks` marks every entry the slicer does not copy, for the structured decay of
stage 1 (:mod:`srcomp_plugin.compress.structured_decay`).
"""
import math
import re
from collections import OrderedDict

import torch

from ..errors import CompressError
from .arch_kwargs import resolved_kwargs, round_half_up
from .slicing import dropped, group_mass, groups_of, mass, take, top_indices


def _upsample_stages(upscale):
    """``[(conv key prefix, shuffle factor)]`` of BasicSR's ``Upsample`` for ``upscale``."""
    if upscale & (upscale - 1) == 0:
        return [(f'upsample.{2 * i}', 2) for i in range(int(math.log2(upscale)))]
    if upscale == 3:
        return [('upsample.0', 3)]
    raise CompressError(f'EDSR upscale {upscale} is not supported by BasicSR (2^n or 3)')


def slice_edsr(sd, teacher_kwargs, student_kwargs):
    """Student state dict of an EDSR-family teacher ``sd`` (see the module docstring).

    Returns ``(state_dict, selection)``; ``selection`` records the kept indices
    (``stream``, ``blocks``, ``inner`` per kept block, ``upsample`` per stage).
    """
    small = student_kwargs['num_feat']
    n_blocks, keep_blocks = teacher_kwargs['num_block'], student_kwargs['num_block']
    res_factor = float(teacher_kwargs['res_scale']) / float(student_kwargs['res_scale'])
    stages = _upsample_stages(teacher_kwargs['upscale'])
    body = [f'body.{i}' for i in range(n_blocks)]

    stream = (mass(sd['conv_first.weight'], 0) + mass(sd['conv_first.bias'], 0)
              + mass(sd['conv_after_body.weight'], 0) + mass(sd['conv_after_body.bias'], 0)
              + mass(sd['conv_after_body.weight'], 1) + mass(sd[f'{stages[0][0]}.weight'], 1))
    for b in body:
        stream += (mass(sd[f'{b}.conv1.weight'], 1) + mass(sd[f'{b}.conv2.weight'], 0)
                   + mass(sd[f'{b}.conv2.bias'], 0))
    keep = top_indices(stream, small)

    inner, remaining = {}, []
    for b in body:
        w1, b1, w2, b2 = (sd[f'{b}.{k}'] for k in ('conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias'))
        inner[b] = top_indices(mass(w1, 0) + mass(b1, 0) + mass(w2, 1), small)
        remaining.append(float(take(w1, inner[b], keep).abs().sum() + b1[inner[b]].abs().sum()
                               + take(w2, keep, inner[b]).abs().sum() + b2[keep].abs().sum()))
    kept_blocks = top_indices(torch.tensor(remaining), keep_blocks).tolist()

    out = OrderedDict()
    out['conv_first.weight'] = take(sd['conv_first.weight'], keep)
    out['conv_first.bias'] = take(sd['conv_first.bias'], keep)
    for j, i in enumerate(kept_blocks):
        src, dst, rows = f'body.{i}', f'body.{j}', inner[f'body.{i}']
        out[f'{dst}.conv1.weight'] = take(sd[f'{src}.conv1.weight'], rows, keep)
        out[f'{dst}.conv1.bias'] = take(sd[f'{src}.conv1.bias'], rows)
        out[f'{dst}.conv2.weight'] = take(sd[f'{src}.conv2.weight'], keep, rows) * res_factor
        out[f'{dst}.conv2.bias'] = take(sd[f'{src}.conv2.bias'], keep) * res_factor
    out['conv_after_body.weight'] = take(sd['conv_after_body.weight'], keep, keep)
    out['conv_after_body.bias'] = take(sd['conv_after_body.bias'], keep)

    selection = {'stream': keep.tolist(), 'blocks': kept_blocks,
                 'inner': {i: inner[f'body.{i}'].tolist() for i in kept_blocks}, 'upsample': []}
    inputs = keep
    for k, (prefix, factor) in enumerate(stages):
        w, bias = sd[f'{prefix}.weight'], sd[f'{prefix}.bias']
        size = factor * factor
        consumer = stages[k + 1][0] if k + 1 < len(stages) else 'conv_last'
        group_l1 = group_mass(mass(w, 0) + mass(bias, 0), size) + mass(sd[f'{consumer}.weight'], 1)
        groups = top_indices(group_l1, small)
        rows = groups_of(groups, size)
        out[f'{prefix}.weight'] = take(w, rows, inputs)
        out[f'{prefix}.bias'] = take(bias, rows)
        selection['upsample'].append(groups.tolist())
        inputs = groups
    out['conv_last.weight'] = take(sd['conv_last.weight'], None, inputs)
    out['conv_last.bias'] = take(sd['conv_last.bias'])
    return out, selection


def drop_masks(shapes, selection, teacher_kwargs):
    """``{param name: bool mask}`` of every entry of an EDSR teacher that the slicer does not copy.

    Args:
        shapes: ``{name: torch.Size}`` of the teacher's parameters.
        selection: what :func:`slice_edsr` returns as its second value.
        teacher_kwargs: the teacher's resolved kwargs (``num_block``, ``upscale``).
    """
    stream, inner = selection['stream'], selection['inner']
    masks = {'conv_first.weight': dropped(shapes['conv_first.weight'], stream),
             'conv_first.bias': dropped(shapes['conv_first.bias'], stream)}
    for i in range(teacher_kwargs['num_block']):
        block = f'body.{i}'
        if i not in inner:  # a dropped block: everything goes
            for kind in ('conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias'):
                masks[f'{block}.{kind}'] = torch.ones(shapes[f'{block}.{kind}'], dtype=torch.bool)
            continue
        masks[f'{block}.conv1.weight'] = dropped(shapes[f'{block}.conv1.weight'], inner[i], stream)
        masks[f'{block}.conv1.bias'] = dropped(shapes[f'{block}.conv1.bias'], inner[i])
        masks[f'{block}.conv2.weight'] = dropped(shapes[f'{block}.conv2.weight'], stream, inner[i])
        masks[f'{block}.conv2.bias'] = dropped(shapes[f'{block}.conv2.bias'], stream)
    masks['conv_after_body.weight'] = dropped(shapes['conv_after_body.weight'], stream, stream)
    masks['conv_after_body.bias'] = dropped(shapes['conv_after_body.bias'], stream)
    inputs = stream
    for (prefix, factor), groups in zip(_upsample_stages(teacher_kwargs['upscale']), selection['upsample']):
        rows = groups_of(torch.as_tensor(groups, dtype=torch.long), factor * factor)
        masks[f'{prefix}.weight'] = dropped(shapes[f'{prefix}.weight'], rows, inputs)
        masks[f'{prefix}.bias'] = dropped(shapes[f'{prefix}.bias'], rows)
        inputs = groups
    masks['conv_last.weight'] = dropped(shapes['conv_last.weight'], None, inputs)
    masks['conv_last.bias'] = dropped(shapes['conv_last.bias'])
    unknown = set(shapes) - set(masks)
    if unknown:
        raise CompressError(f'structured decay: parameters {sorted(unknown)} are not part of an EDSR network')
    return masks


class EDSRFamily:
    """EDSR: ``num_block`` residual blocks of width ``num_feat`` (the record; see the module docstring)."""
    name = 'EDSR'
    base_arch = 'EDSR'  # BasicSR's class: registered subclasses (EDSRmini, user presets) belong to the family
    teacher_types = ('EDSR', 'EDSRmini')
    student_type = 'EDSRmini'
    width_key = 'num_feat'
    measure = ('body.*.weight', )  # stage 1's density: the residual blocks (head, tail, upsampler not counted)
    block_rules = (re.compile(r'^(body\.\d+)\.'), )  # per-block density: body.<i>
    prune_template = 'train_EDSR_f64b16_x2_prune.yml'  # options/prune: the release's stage 1 (train section)
    slice_student = staticmethod(slice_edsr)
    drop_masks = staticmethod(drop_masks)  # the slice is lossless once these entries are zero

    @staticmethod
    def owns_keys(names):
        """Whether state-dict key ``names`` are EDSR's (a checkpoint given without options)."""
        return any(re.match(r'^body\.\d+\.conv1\.weight$', n) for n in names)

    @staticmethod
    def network_from_state_dict(state):
        """BasicSR ``network_g`` of an EDSR state dict, or None when it is not one (res_scale is not stored: 1)."""
        if 'conv_first.weight' not in state or not any(k.startswith('body.') for k in state):
            return None
        num_feat = state['conv_first.weight'].shape[0]
        num_block = len({k.split('.')[1] for k in state if k.startswith('body.')})
        ups = sorted(k for k in state if k.startswith('upsample.') and k.endswith('weight'))
        factor = state[ups[0]].shape[0] // num_feat
        scale = {4: 2 ** len(ups), 9: 3}[factor]
        return {'type': 'EDSR', 'num_in_ch': state['conv_first.weight'].shape[1],
                'num_out_ch': state['conv_last.weight'].shape[0], 'num_feat': num_feat, 'num_block': num_block,
                'upscale': scale, 'res_scale': 1, 'img_range': 255.}

    @staticmethod
    def check(kwargs, where):
        for key in ('num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale'):
            if not isinstance(kwargs.get(key), int) or kwargs[key] < 1:
                raise CompressError(f'{where}.{key} must be a positive integer for an EDSR teacher, '
                                    f'got {kwargs.get(key)!r}')

    @staticmethod
    def depth_plan(kwargs, depth_keep):
        """All blocks form one level: keep ``depth_keep`` of them (rounded, at least 1)."""
        return {'num_block': max(1, round_half_up(kwargs['num_block'] * depth_keep))}

    @staticmethod
    def min_depth(kwargs):
        return {'num_block': 1}

    @staticmethod
    def widths(kwargs):
        """Multiples of 4 up to the teacher's width (the student is never wider)."""
        return list(range(4, kwargs['num_feat'] + 1, 4))

    @staticmethod
    def student_kwargs(teacher_kwargs, depth, width):
        student_defaults = resolved_kwargs({'type': 'EDSRmini'})
        kwargs = dict(teacher_kwargs, **depth)
        kwargs['num_feat'] = width
        kwargs['res_scale'] = student_defaults['res_scale']  # the release's EDSRmini keeps res_scale 2
        return kwargs

    @staticmethod
    def shape(kwargs):
        return {'num_feat': kwargs['num_feat'], 'num_block': kwargs['num_block'], 'res_scale': kwargs['res_scale']}
