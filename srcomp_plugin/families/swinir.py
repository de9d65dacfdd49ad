"""The SwinIR family: BasicSR's ``SwinIR`` (and our ``SwinIRmini``) compressed to ``SwinIRmini``.

Residual units are stages (RSTBs, ``len(depths)``) x transformer layers per stage
(``depths[i]``), two levels; the width is ``embed_dim``, a multiple of the number of heads
(heads are kept). Stage 1 measures every ``*weight`` under the stages (``layers.*weight``:
linear, conv and LayerNorm weights, the release's choice).

Slicing (``--init pruned``, :func:`slice_swinir`):

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
"""
import math
import re
from collections import OrderedDict

import torch

from ..errors import CompressError
from .slicing import mass, take, top_indices
from .arch_kwargs import round_half_up


def _norm_mass(sd, prefix):
    norm_l1 = mass(sd[f'{prefix}.weight'], 0)
    if f'{prefix}.bias' in sd:
        norm_l1 = norm_l1 + mass(sd[f'{prefix}.bias'], 0)
    return norm_l1


def _conv_block_keys(prefix, resi):
    """(first conv, last conv, middle conv or None) of a ``1conv``/``3conv`` block."""
    if resi == '1conv':
        return prefix, prefix, None
    return f'{prefix}.0', f'{prefix}.4', f'{prefix}.2'


def _stream_mass_conv_block(sd, prefix, resi):
    first, last, _ = _conv_block_keys(prefix, resi)
    return mass(sd[f'{first}.weight'], 1) + mass(sd[f'{last}.weight'], 0) + mass(sd[f'{last}.bias'], 0)


def _slice_conv_block(sd, prefix, resi, keep, inner_size, out, dst=None):
    """Slice a ``1conv``/``3conv`` stream->stream block; 3conv inner channels by their mass."""
    dst = dst or prefix
    if resi == '1conv':
        out[f'{dst}.weight'] = take(sd[f'{prefix}.weight'], keep, keep)
        out[f'{dst}.bias'] = take(sd[f'{prefix}.bias'], keep)
        return
    c0, c2, c4 = (f'{prefix}.{i}' for i in (0, 2, 4))
    a = top_indices(mass(sd[f'{c0}.weight'], 0) + mass(sd[f'{c0}.bias'], 0) + mass(sd[f'{c2}.weight'], 1),
                    inner_size)
    b = top_indices(mass(sd[f'{c2}.weight'], 0) + mass(sd[f'{c2}.bias'], 0) + mass(sd[f'{c4}.weight'], 1),
                    inner_size)
    for src_key, rows, cols in ((c0, a, keep), (c2, b, a), (c4, keep, b)):
        d = f'{dst}{src_key[len(prefix):]}'
        out[f'{d}.weight'] = take(sd[f'{src_key}.weight'], rows, cols)
        out[f'{d}.bias'] = take(sd[f'{src_key}.bias'], rows)


def _reconstruction_input_key(upsampler):
    if upsampler == 'pixelshuffledirect':
        return 'upsample.0'
    if upsampler in ('pixelshuffle', 'nearest+conv'):
        return 'conv_before_upsample.0'
    return 'conv_last'


def _head_dims(dim_mass, heads, keep_per_head):
    """Per head, the ``keep_per_head`` dims of largest mass, as global indices (head-major)."""
    per_head = dim_mass.numel() // heads
    picked = [top_indices(dim_mass[h * per_head:(h + 1) * per_head], keep_per_head) + h * per_head
              for h in range(heads)]
    return torch.cat(picked)


def _slice_swin_layer(sd, src, dst, keep, big, small, heads, hidden_s, q_factor, out):
    """Slice one transformer layer ``src`` into ``dst`` (see module docstring)."""
    for norm in ('norm1', 'norm2'):
        for kind in ('weight', 'bias'):
            if f'{src}.{norm}.{kind}' in sd:
                out[f'{dst}.{norm}.{kind}'] = take(sd[f'{src}.{norm}.{kind}'], keep)
    qkv_w, qkv_b = sd[f'{src}.attn.qkv.weight'], sd.get(f'{src}.attn.qkv.bias')
    q_mass = mass(qkv_w[:big], 0) + mass(qkv_w[big:2 * big], 0)
    v_mass = mass(qkv_w[2 * big:], 0) + mass(sd[f'{src}.attn.proj.weight'], 1)
    if qkv_b is not None:
        q_mass = q_mass + qkv_b[:big].abs().double() + qkv_b[big:2 * big].abs().double()
        v_mass = v_mass + qkv_b[2 * big:].abs().double()
    qk = _head_dims(q_mass, heads, small // heads)
    v = _head_dims(v_mass, heads, small // heads)
    rows = torch.cat([qk, qk + big, v + 2 * big])
    scale = torch.ones(3 * small, dtype=qkv_w.dtype)
    scale[:small] = q_factor
    out[f'{dst}.attn.qkv.weight'] = take(qkv_w, rows, keep) * scale[:, None]
    if qkv_b is not None:
        out[f'{dst}.attn.qkv.bias'] = take(qkv_b, rows) * scale
    out[f'{dst}.attn.relative_position_bias_table'] = take(sd[f'{src}.attn.relative_position_bias_table'])
    out[f'{dst}.attn.proj.weight'] = take(sd[f'{src}.attn.proj.weight'], keep, v)
    out[f'{dst}.attn.proj.bias'] = take(sd[f'{src}.attn.proj.bias'], keep)
    fc1_w, fc1_b = sd[f'{src}.mlp.fc1.weight'], sd[f'{src}.mlp.fc1.bias']
    fc2_w = sd[f'{src}.mlp.fc2.weight']
    hidden = top_indices(mass(fc1_w, 0) + mass(fc1_b, 0) + mass(fc2_w, 1), hidden_s)
    out[f'{dst}.mlp.fc1.weight'] = take(fc1_w, hidden, keep)
    out[f'{dst}.mlp.fc1.bias'] = take(fc1_b, hidden)
    out[f'{dst}.mlp.fc2.weight'] = take(fc2_w, keep, hidden)
    out[f'{dst}.mlp.fc2.bias'] = take(sd[f'{src}.mlp.fc2.bias'], keep)


def _l1_sum(tensors):
    return float(sum(t.detach().abs().double().sum() for t in tensors.values()))


def slice_swinir(sd, teacher_kwargs, student_kwargs):
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

    stream = (mass(sd['conv_first.weight'], 0) + mass(sd['conv_first.bias'], 0) + _norm_mass(sd, 'norm')
              + _stream_mass_conv_block(sd, 'conv_after_body', resi) + mass(sd[f'{recon}.weight'], 1))
    if 'patch_embed.norm.weight' in sd:
        stream += _norm_mass(sd, 'patch_embed.norm')
    if 'absolute_pos_embed' in sd:
        stream += mass(sd['absolute_pos_embed'], 2)
    for s, depth in enumerate(depths):
        stream += _stream_mass_conv_block(sd, f'layers.{s}.conv', resi)
        for layer in range(depth):
            p = f'layers.{s}.residual_group.blocks.{layer}'
            stream += (_norm_mass(sd, f'{p}.norm1') + _norm_mass(sd, f'{p}.norm2')
                       + mass(sd[f'{p}.attn.qkv.weight'], 1) + mass(sd[f'{p}.attn.proj.weight'], 0)
                       + mass(sd[f'{p}.attn.proj.bias'], 0) + mass(sd[f'{p}.mlp.fc1.weight'], 1)
                       + mass(sd[f'{p}.mlp.fc2.weight'], 0) + mass(sd[f'{p}.mlp.fc2.bias'], 0))
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
    out['conv_first.weight'] = take(sd['conv_first.weight'], keep)
    out['conv_first.bias'] = take(sd['conv_first.bias'], keep)
    if 'absolute_pos_embed' in sd:
        out['absolute_pos_embed'] = sd['absolute_pos_embed'].index_select(2, keep).clone()
    for kind in ('weight', 'bias'):
        if f'patch_embed.norm.{kind}' in sd:
            out[f'patch_embed.norm.{kind}'] = take(sd[f'patch_embed.norm.{kind}'], keep)
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
        out[f'norm.{kind}'] = take(sd[f'norm.{kind}'], keep)
    _slice_conv_block(sd, 'conv_after_body', resi, keep, small // 4, out)
    out[f'{recon}.weight'] = take(sd[f'{recon}.weight'], None, keep)
    prefix = recon.split('.')[0]
    for key, value in sd.items():  # the rest of the reconstruction does not touch embed_dim
        if key.startswith(prefix) and key not in out:
            out[key] = value.detach().clone()
    for key, value in sd.items():
        if key.startswith(('conv_last', 'conv_up', 'conv_hr', 'upsample')) and key not in out:
            out[key] = value.detach().clone()
    return out, selection


class SwinIRFamily:
    """SwinIR: ``len(depths)`` stages of ``depths[i]`` transformer layers, width ``embed_dim`` (the record)."""
    name = 'SwinIR'
    base_arch = 'SwinIR'  # BasicSR's class: registered subclasses (SwinIRmini, user presets) belong to the family
    teacher_types = ('SwinIR', 'SwinIRmini')
    student_type = 'SwinIRmini'
    width_key = 'embed_dim'
    measure = ('layers.*weight', )  # stage 1's density: every *weight under the stages (the release's choice)
    # per-block density: stages (layers.<s>), then their transformer layers
    block_rules = (re.compile(r'^(layers\.\d+)\.'), re.compile(r'^(layers\.\d+\.residual_group\.blocks\.\d+)\.'))
    prune_template = 'train_SwinIR_light_x2_prune.yml'  # options/prune: the release's stage 1 (train section)
    slice_student = staticmethod(slice_swinir)
    drop_masks = None  # a slice changes the LayerNorm statistics: no zeroing makes it lossless
    network_from_state_dict = None  # window, mlp_ratio and upsampler cannot be read from the weights

    @staticmethod
    def owns_keys(names):
        """Whether state-dict key ``names`` are SwinIR's (a checkpoint given without options)."""
        return any(n.startswith('layers.') and '.residual_group.blocks.' in n for n in names)

    @staticmethod
    def check(kwargs, where):
        depths, heads = kwargs.get('depths'), kwargs.get('num_heads')
        if not depths or not all(isinstance(d, int) and d > 0 for d in depths):
            raise CompressError(f'{where}.depths must be a non-empty list of positive integers, got {depths!r}')
        if not heads or len(heads) != len(depths):
            raise CompressError(f'{where}.num_heads must have one entry per stage ({len(depths)}), got {heads!r}')
        if len(set(heads)) != 1:
            raise CompressError(f'{where}.num_heads {heads}: only teachers with the same number of heads in every '
                                'stage are supported (the student keeps the heads)')
        if not isinstance(kwargs.get('embed_dim'), int) or kwargs['embed_dim'] % heads[0]:
            raise CompressError(f'{where}.embed_dim must be a multiple of num_heads ({heads[0]}), '
                                f'got {kwargs.get("embed_dim")!r}')
        if kwargs.get('resi_connection', '1conv') not in ('1conv', '3conv'):
            raise CompressError(f'{where}.resi_connection must be 1conv or 3conv, got {kwargs["resi_connection"]!r}')

    @staticmethod
    def depth_plan(kwargs, depth_keep):
        """Stages and layers per stage each scaled by sqrt(depth_keep), rounded, at least 1.

        With different layer counts per stage the mean is scaled (every student stage has
        the same number of layers).
        """
        depths = kwargs['depths']
        factor = math.sqrt(depth_keep)
        stages = max(1, round_half_up(len(depths) * factor))
        layers = max(1, round_half_up(sum(depths) / len(depths) * factor))
        return {'depths': [layers] * stages, 'num_heads': [kwargs['num_heads'][0]] * stages}

    @staticmethod
    def min_depth(kwargs):
        return {'depths': [1], 'num_heads': [kwargs['num_heads'][0]]}

    @staticmethod
    def widths(kwargs):
        """Multiples of the head count up to the teacher's embed_dim (3conv also needs dim // 4 >= 1)."""
        step = kwargs['num_heads'][0]
        widths = range(step, kwargs['embed_dim'] + 1, step)
        if kwargs.get('resi_connection') == '3conv':
            widths = [w for w in widths if w >= 4]
        return list(widths)

    @staticmethod
    def student_kwargs(teacher_kwargs, depth, width):
        return dict(teacher_kwargs, embed_dim=width, **depth)

    @staticmethod
    def shape(kwargs):
        return {'embed_dim': kwargs['embed_dim'], 'depths': list(kwargs['depths']),
                'num_heads': list(kwargs['num_heads'])}
