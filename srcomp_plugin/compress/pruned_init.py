"""``--init pruned``: a student state dict sliced out of the sparse teacher (beyond the paper).

The release trains the student from scratch; this gives stage 3 a start that already
carries what stage 1 concentrated into few channels. Everything is chosen by L1 mass of
the (sparse) teacher's weights, and every tensor that shares an index space is sliced with
the same indices, so the student is a consistent sub-network:

EDSR (:func:`prune_edsr`)
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

SwinIR (:func:`prune_swinir`)
    * embedding channels (``embed_dim``): one set for conv_first, patch-embed norm,
      absolute position embedding, every LayerNorm, ``qkv`` inputs, ``proj`` and ``fc2``
      outputs, ``fc1`` inputs, the RSTB convs, ``conv_after_body`` and the reconstruction
      input;
    * attention: all heads are kept; inside each head the query/key dimensions are one
      set (q . k sums over them) and the value dimensions another (they are ``proj``'s
      inputs); queries are multiplied by sqrt(student head_dim / teacher head_dim) so that
      q . k keeps the teacher's scale (unless ``qk_scale`` is set explicitly). The relative
      position tables are per head, so they are kept whole;
    * each layer's MLP hidden units, and the inner channels of ``3conv`` blocks, by their
      own mass;
    * stages (RSTBs) and transformer layers inside them by remaining mass, order kept.
      A kept layer takes its new position's shift (even positions unshifted, odd shifted
      by half a window): BasicSR fixes the shift by position. LayerNorm statistics change
      with the channel count, so a SwinIR slice is a start, never lossless.

Buffers (attention masks, position indices) are taken from a freshly built student, since
they depend only on its shape. The result loads into the student with ``strict=True``;
:func:`pruned_state_dict` checks that.
"""
import math
from collections import OrderedDict

import torch

from .errors import CompressError
from .shape_rule import build_arch


def _mass(tensor, dim):
    """L1 mass per index of ``dim`` (summed over every other dim)."""
    t = tensor.detach().abs().double()
    dims = [d for d in range(t.dim()) if d != dim]
    return t.sum(dim=dims) if dims else t


def top_indices(mass, k):
    """Indices of the ``k`` largest entries, in increasing index order (ties: lower index first)."""
    n = mass.numel()
    if k > n:
        raise CompressError(f'cannot keep {k} of {n} channels/units: the student is larger than the teacher here')
    order = sorted(range(n), key=lambda i: (-float(mass[i]), i))[:k]
    return torch.tensor(sorted(order), dtype=torch.long)


def _take(tensor, rows=None, cols=None):
    """``tensor`` restricted to ``rows`` (dim 0) and ``cols`` (dim 1), contiguous."""
    if rows is not None:
        tensor = tensor.index_select(0, rows)
    if cols is not None:
        tensor = tensor.index_select(1, cols)
    return tensor.detach().clone().contiguous()


def _groups(groups, size):
    """Channel indices of whole groups: group g -> g*size .. g*size+size-1 (PixelShuffle's layout)."""
    return (groups[:, None] * size + torch.arange(size)[None, :]).reshape(-1)


def _group_mass(mass, size):
    return mass.reshape(-1, size).sum(dim=1)


# ----------------------------------------------------------------------------- EDSR


def _upsample_stages(upscale):
    """``[(conv key prefix, shuffle factor)]`` of BasicSR's ``Upsample`` for ``upscale``."""
    if upscale & (upscale - 1) == 0:
        return [(f'upsample.{2 * i}', 2) for i in range(int(math.log2(upscale)))]
    if upscale == 3:
        return [('upsample.0', 3)]
    raise CompressError(f'EDSR upscale {upscale} is not supported by BasicSR (2^n or 3)')


def prune_edsr(sd, teacher_kwargs, student_kwargs):
    """Student state dict of an EDSR-family teacher ``sd`` (see the module docstring).

    Returns ``(state_dict, selection)``; ``selection`` records the kept indices
    (``stream``, ``blocks``, ``inner`` per kept block, ``upsample`` per stage).
    """
    small = student_kwargs['num_feat']
    n_blocks, keep_blocks = teacher_kwargs['num_block'], student_kwargs['num_block']
    res_factor = float(teacher_kwargs['res_scale']) / float(student_kwargs['res_scale'])
    stages = _upsample_stages(teacher_kwargs['upscale'])
    body = [f'body.{i}' for i in range(n_blocks)]

    stream = (_mass(sd['conv_first.weight'], 0) + _mass(sd['conv_first.bias'], 0)
              + _mass(sd['conv_after_body.weight'], 0) + _mass(sd['conv_after_body.bias'], 0)
              + _mass(sd['conv_after_body.weight'], 1) + _mass(sd[f'{stages[0][0]}.weight'], 1))
    for b in body:
        stream += (_mass(sd[f'{b}.conv1.weight'], 1) + _mass(sd[f'{b}.conv2.weight'], 0)
                   + _mass(sd[f'{b}.conv2.bias'], 0))
    keep = top_indices(stream, small)

    inner, remaining = {}, []
    for b in body:
        w1, b1, w2, b2 = (sd[f'{b}.{k}'] for k in ('conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias'))
        inner[b] = top_indices(_mass(w1, 0) + _mass(b1, 0) + _mass(w2, 1), small)
        remaining.append(float(_take(w1, inner[b], keep).abs().sum() + b1[inner[b]].abs().sum()
                               + _take(w2, keep, inner[b]).abs().sum() + b2[keep].abs().sum()))
    kept_blocks = top_indices(torch.tensor(remaining), keep_blocks).tolist()

    out = OrderedDict()
    out['conv_first.weight'] = _take(sd['conv_first.weight'], keep)
    out['conv_first.bias'] = _take(sd['conv_first.bias'], keep)
    for j, i in enumerate(kept_blocks):
        src, dst, rows = f'body.{i}', f'body.{j}', inner[f'body.{i}']
        out[f'{dst}.conv1.weight'] = _take(sd[f'{src}.conv1.weight'], rows, keep)
        out[f'{dst}.conv1.bias'] = _take(sd[f'{src}.conv1.bias'], rows)
        out[f'{dst}.conv2.weight'] = _take(sd[f'{src}.conv2.weight'], keep, rows) * res_factor
        out[f'{dst}.conv2.bias'] = _take(sd[f'{src}.conv2.bias'], keep) * res_factor
    out['conv_after_body.weight'] = _take(sd['conv_after_body.weight'], keep, keep)
    out['conv_after_body.bias'] = _take(sd['conv_after_body.bias'], keep)

    selection = {'stream': keep.tolist(), 'blocks': kept_blocks,
                 'inner': {i: inner[f'body.{i}'].tolist() for i in kept_blocks}, 'upsample': []}
    inputs = keep
    for k, (prefix, factor) in enumerate(stages):
        w, bias = sd[f'{prefix}.weight'], sd[f'{prefix}.bias']
        size = factor * factor
        consumer = stages[k + 1][0] if k + 1 < len(stages) else 'conv_last'
        mass = _group_mass(_mass(w, 0) + _mass(bias, 0), size) + _mass(sd[f'{consumer}.weight'], 1)
        groups = top_indices(mass, small)
        rows = _groups(groups, size)
        out[f'{prefix}.weight'] = _take(w, rows, inputs)
        out[f'{prefix}.bias'] = _take(bias, rows)
        selection['upsample'].append(groups.tolist())
        inputs = groups
    out['conv_last.weight'] = _take(sd['conv_last.weight'], None, inputs)
    out['conv_last.bias'] = _take(sd['conv_last.bias'])
    return out, selection


# ----------------------------------------------------------------------------- SwinIR


def _norm_mass(sd, prefix):
    mass = _mass(sd[f'{prefix}.weight'], 0)
    if f'{prefix}.bias' in sd:
        mass = mass + _mass(sd[f'{prefix}.bias'], 0)
    return mass


def _conv_block_keys(prefix, resi):
    """(first conv, last conv, middle conv or None) of a ``1conv``/``3conv`` block."""
    if resi == '1conv':
        return prefix, prefix, None
    return f'{prefix}.0', f'{prefix}.4', f'{prefix}.2'


def _stream_mass_conv_block(sd, prefix, resi):
    first, last, _ = _conv_block_keys(prefix, resi)
    return _mass(sd[f'{first}.weight'], 1) + _mass(sd[f'{last}.weight'], 0) + _mass(sd[f'{last}.bias'], 0)


def _slice_conv_block(sd, prefix, resi, keep, inner_size, out, dst=None):
    """Slice a ``1conv``/``3conv`` stream->stream block; 3conv inner channels by their mass."""
    dst = dst or prefix
    if resi == '1conv':
        out[f'{dst}.weight'] = _take(sd[f'{prefix}.weight'], keep, keep)
        out[f'{dst}.bias'] = _take(sd[f'{prefix}.bias'], keep)
        return
    c0, c2, c4 = (f'{prefix}.{i}' for i in (0, 2, 4))
    a = top_indices(_mass(sd[f'{c0}.weight'], 0) + _mass(sd[f'{c0}.bias'], 0) + _mass(sd[f'{c2}.weight'], 1),
                    inner_size)
    b = top_indices(_mass(sd[f'{c2}.weight'], 0) + _mass(sd[f'{c2}.bias'], 0) + _mass(sd[f'{c4}.weight'], 1),
                    inner_size)
    for src_key, rows, cols in ((c0, a, keep), (c2, b, a), (c4, keep, b)):
        d = f'{dst}{src_key[len(prefix):]}'
        out[f'{d}.weight'] = _take(sd[f'{src_key}.weight'], rows, cols)
        out[f'{d}.bias'] = _take(sd[f'{src_key}.bias'], rows)


def _reconstruction_input_key(upsampler):
    if upsampler == 'pixelshuffledirect':
        return 'upsample.0'
    if upsampler in ('pixelshuffle', 'nearest+conv'):
        return 'conv_before_upsample.0'
    return 'conv_last'


def _head_dims(mass, heads, keep_per_head):
    """Per head, the ``keep_per_head`` dims of largest mass, as global indices (head-major)."""
    per_head = mass.numel() // heads
    picked = [top_indices(mass[h * per_head:(h + 1) * per_head], keep_per_head) + h * per_head for h in range(heads)]
    return torch.cat(picked)


def _slice_swin_layer(sd, src, dst, keep, big, small, heads, hidden_s, q_factor, out):
    """Slice one transformer layer ``src`` into ``dst`` (see module docstring)."""
    for norm in ('norm1', 'norm2'):
        for kind in ('weight', 'bias'):
            if f'{src}.{norm}.{kind}' in sd:
                out[f'{dst}.{norm}.{kind}'] = _take(sd[f'{src}.{norm}.{kind}'], keep)
    qkv_w, qkv_b = sd[f'{src}.attn.qkv.weight'], sd.get(f'{src}.attn.qkv.bias')
    q_mass = _mass(qkv_w[:big], 0) + _mass(qkv_w[big:2 * big], 0)
    v_mass = _mass(qkv_w[2 * big:], 0) + _mass(sd[f'{src}.attn.proj.weight'], 1)
    if qkv_b is not None:
        q_mass = q_mass + qkv_b[:big].abs().double() + qkv_b[big:2 * big].abs().double()
        v_mass = v_mass + qkv_b[2 * big:].abs().double()
    qk = _head_dims(q_mass, heads, small // heads)
    v = _head_dims(v_mass, heads, small // heads)
    rows = torch.cat([qk, qk + big, v + 2 * big])
    scale = torch.ones(3 * small, dtype=qkv_w.dtype)
    scale[:small] = q_factor
    out[f'{dst}.attn.qkv.weight'] = _take(qkv_w, rows, keep) * scale[:, None]
    if qkv_b is not None:
        out[f'{dst}.attn.qkv.bias'] = _take(qkv_b, rows) * scale
    out[f'{dst}.attn.relative_position_bias_table'] = _take(sd[f'{src}.attn.relative_position_bias_table'])
    out[f'{dst}.attn.proj.weight'] = _take(sd[f'{src}.attn.proj.weight'], keep, v)
    out[f'{dst}.attn.proj.bias'] = _take(sd[f'{src}.attn.proj.bias'], keep)
    fc1_w, fc1_b = sd[f'{src}.mlp.fc1.weight'], sd[f'{src}.mlp.fc1.bias']
    fc2_w = sd[f'{src}.mlp.fc2.weight']
    hidden = top_indices(_mass(fc1_w, 0) + _mass(fc1_b, 0) + _mass(fc2_w, 1), hidden_s)
    out[f'{dst}.mlp.fc1.weight'] = _take(fc1_w, hidden, keep)
    out[f'{dst}.mlp.fc1.bias'] = _take(fc1_b, hidden)
    out[f'{dst}.mlp.fc2.weight'] = _take(fc2_w, keep, hidden)
    out[f'{dst}.mlp.fc2.bias'] = _take(sd[f'{src}.mlp.fc2.bias'], keep)


def _l1_sum(tensors):
    return float(sum(t.detach().abs().double().sum() for t in tensors.values()))


def prune_swinir(sd, teacher_kwargs, student_kwargs):
    """Student state dict of a SwinIR-family teacher ``sd`` (see the module docstring).

    Returns ``(state_dict, selection)`` with the kept ``stream`` channels, ``stages`` and
    ``layers`` per kept stage. Buffers are not included (see :func:`pruned_state_dict`).
    """
    big, small = teacher_kwargs['embed_dim'], student_kwargs['embed_dim']
    heads = teacher_kwargs['num_heads'][0]
    depths, keep_layers = teacher_kwargs['depths'], student_kwargs['depths'][0]
    keep_stages = len(student_kwargs['depths'])
    resi = teacher_kwargs.get('resi_connection', '1conv')
    mlp_ratio = teacher_kwargs.get('mlp_ratio', 4.)
    hidden_s = int(small * mlp_ratio)
    q_factor = math.sqrt(small / big) if teacher_kwargs.get('qk_scale') is None else 1.0
    recon = _reconstruction_input_key(teacher_kwargs.get('upsampler', ''))

    stream = (_mass(sd['conv_first.weight'], 0) + _mass(sd['conv_first.bias'], 0) + _norm_mass(sd, 'norm')
              + _stream_mass_conv_block(sd, 'conv_after_body', resi) + _mass(sd[f'{recon}.weight'], 1))
    if 'patch_embed.norm.weight' in sd:
        stream += _norm_mass(sd, 'patch_embed.norm')
    if 'absolute_pos_embed' in sd:
        stream += _mass(sd['absolute_pos_embed'], 2)
    for s, depth in enumerate(depths):
        stream += _stream_mass_conv_block(sd, f'layers.{s}.conv', resi)
        for layer in range(depth):
            p = f'layers.{s}.residual_group.blocks.{layer}'
            stream += (_norm_mass(sd, f'{p}.norm1') + _norm_mass(sd, f'{p}.norm2')
                       + _mass(sd[f'{p}.attn.qkv.weight'], 1) + _mass(sd[f'{p}.attn.proj.weight'], 0)
                       + _mass(sd[f'{p}.attn.proj.bias'], 0) + _mass(sd[f'{p}.mlp.fc1.weight'], 1)
                       + _mass(sd[f'{p}.mlp.fc2.weight'], 0) + _mass(sd[f'{p}.mlp.fc2.bias'], 0))
    keep = top_indices(stream, small)

    # Slice every layer and stage conv first, then choose what to keep by remaining mass.
    sliced_layers, sliced_convs, stage_mass = {}, {}, []
    for s, depth in enumerate(depths):
        sliced_layers[s] = []
        for layer in range(depth):
            part = OrderedDict()
            _slice_swin_layer(sd, f'layers.{s}.residual_group.blocks.{layer}', 'x', keep, big, small, heads,
                              hidden_s, q_factor, part)
            sliced_layers[s].append(part)
        conv = OrderedDict()
        _slice_conv_block(sd, f'layers.{s}.conv', resi, keep, small // 4, conv, dst='x')
        sliced_convs[s] = conv
        eligible = depth >= keep_layers
        stage_mass.append(_l1_sum(conv) + sum(_l1_sum(p) for p in sliced_layers[s]) if eligible else -1.0)
    if sum(m >= 0 for m in stage_mass) < keep_stages:
        raise CompressError(f'cannot keep {keep_stages} stages of {keep_layers} layers from depths {depths}')
    kept_stages = top_indices(torch.tensor(stage_mass), keep_stages).tolist()

    out = OrderedDict()
    out['conv_first.weight'] = _take(sd['conv_first.weight'], keep)
    out['conv_first.bias'] = _take(sd['conv_first.bias'], keep)
    if 'absolute_pos_embed' in sd:
        out['absolute_pos_embed'] = sd['absolute_pos_embed'].index_select(2, keep).clone()
    for kind in ('weight', 'bias'):
        if f'patch_embed.norm.{kind}' in sd:
            out[f'patch_embed.norm.{kind}'] = _take(sd[f'patch_embed.norm.{kind}'], keep)
    selection = {'stream': keep.tolist(), 'stages': kept_stages, 'layers': {}}
    for j, s in enumerate(kept_stages):
        layer_mass = torch.tensor([_l1_sum(p) for p in sliced_layers[s]])
        kept = top_indices(layer_mass, keep_layers).tolist()
        selection['layers'][s] = kept
        for new, old in enumerate(kept):
            for key, value in sliced_layers[s][old].items():
                out[f'layers.{j}.residual_group.blocks.{new}{key[1:]}'] = value
        for key, value in sliced_convs[s].items():
            out[f'layers.{j}.conv{key[1:]}'] = value
    for kind in ('weight', 'bias'):
        out[f'norm.{kind}'] = _take(sd[f'norm.{kind}'], keep)
    _slice_conv_block(sd, 'conv_after_body', resi, keep, small // 4, out)
    out[f'{recon}.weight'] = _take(sd[f'{recon}.weight'], None, keep)
    prefix = recon.split('.')[0]
    for key, value in sd.items():  # the rest of the reconstruction does not touch embed_dim
        if key.startswith(prefix) and key not in out:
            out[key] = value.detach().clone()
    for key, value in sd.items():
        if key.startswith(('conv_last', 'conv_up', 'conv_hr', 'upsample')) and key not in out:
            out[key] = value.detach().clone()
    return out, selection


# ----------------------------------------------------------------------------- entry point

_PRUNERS = {'EDSR': prune_edsr, 'SwinIR': prune_swinir}


def pruned_state_dict(family, teacher_sd, teacher_kwargs, student_type, student_kwargs):
    """``(state_dict, selection)`` of the student sliced from ``teacher_sd``; loads strictly.

    Buffers of the student (masks, position indices) come from a freshly built student.
    Raises CompressError when the result does not load with ``strict=True``.
    """
    state, selection = _PRUNERS[family](teacher_sd, teacher_kwargs, student_kwargs)
    student = build_arch(student_type, student_kwargs)
    fresh = student.state_dict()
    params = {name for name, _ in student.named_parameters()}
    for key, value in fresh.items():
        if key not in params and key not in state:
            state[key] = value.clone()
    ordered = OrderedDict((key, state[key]) for key in fresh if key in state)
    extra = sorted(set(state) - set(fresh))
    try:
        student.load_state_dict(ordered, strict=True)
        if extra:
            raise RuntimeError(f'unexpected keys {extra}')
    except RuntimeError as err:
        raise CompressError(f'the pruned {student_type} state dict does not load strictly: {err}') from err
    return ordered, selection
