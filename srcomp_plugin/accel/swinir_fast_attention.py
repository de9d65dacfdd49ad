"""Fused window attention for BasicSR's SwinIR: same weights, same output to float rounding.

Why: on CPU, BasicSR's SwinIR spends most of its time outside arithmetic. Per block it
materialises a ``(windows, heads, 64, 64)`` attention tensor and walks it four times
(q @ k^T, + bias, + shift mask, softmax) before attn @ v; ``torch.roll`` and the window
partition/reverse are slow strided copies; and for any input whose size differs from
``img_size`` it rebuilds the dense ``(windows, 64, 64)`` shift mask on every forward of
every shifted block. With 4-channel heads (SwinIRmini: 24 channels / 6 heads) that memory
traffic dwarfs the multiply-adds.

What :class:`FusedSwinTransformerBlock` does instead:

* **One gather in, one gather out.** The cyclic shift and the window partition are one
  permutation of the batch's tokens, done with ``index_select`` on a cached index (and
  its inverse on the way back), instead of ``roll`` + ``permute().contiguous()``.
* **Windows ordered interior first, border last.** In a shifted block only the windows of
  the last window row and column mix wrapped-around regions and need the shift mask;
  every other window's mask is zero. The permutation puts the interior windows of all
  images first and the border windows after them.
* **Fused attention.** ``F.scaled_dot_product_attention`` (PyTorch's blocked CPU kernel,
  which never materialises the attention tensor) runs over the interior windows with the
  relative position bias as a ``(1, heads, n, n)`` mask broadcast over windows, and over
  the few border windows with bias + shift mask. Each window is computed once, so the
  multiply-adds (and MAC counts) are exactly BasicSR's.
* **Inference** (eval, no autograd, float32 CPU) keeps the residual stream in window
  order for the whole block (everything but attention is token-wise) and lets oneDNN
  fuse each linear with what follows it: qkv + bias, proj + bias + residual, fc1 + bias
  + GELU, fc2 + bias + residual (``torch.ops.mkldnn._linear_pointwise``, PyTorch's own
  CPU-compiler kernel, used only after a self-check; plain modules otherwise).
* **Training** (autograd on) keeps the gather and the interior/border split but computes
  the attention core explicitly (q @ k^T + mask, softmax, @ v): PyTorch's CPU SDPA has no
  fast backward when its mask (the trainable bias) needs a gradient.
* **Export** (``torch.jit.trace``, used for TorchScript and ONNX) runs
  :meth:`FusedSwinTransformerBlock.forward_traceable`, BasicSR's roll/partition algorithm
  with the shift mask computed from the traced sizes, so exported graphs take any size.

Parameters and buffers are untouched (``relative_position_bias_table``,
``relative_position_index``, ``attn_mask`` keep their names and values), so state dicts
load both ways with ``strict=True``. Only geometry (token permutations and the 0/-100
shift mask of the border windows, equal to the matching rows of BasicSR's
``calculate_mask``) is cached, per (size, batch, window, shift, device) and shared by all
blocks. Nothing derived from parameters is cached: parameters change in training, and
BasicSR's EMA updates them through ``.data``, which a version counter does not see.
Gathering the bias each call costs microseconds.

Use :func:`use_fused_attention` on any module tree containing BasicSR SwinIR blocks
(``SwinIR``, ``SwinIRmini``, or a teacher inside a distillation model); it converts
them in place and returns the same object.
"""
import functools

import torch
import torch.nn.functional as F
from basicsr.archs.swinir_arch import SwinTransformerBlock, WindowAttention

from .onednn_fusion import LINEAR_POINTWISE, can_fuse_for_inference

# BasicSR's shift mask value (not -inf: it is added to logits before the softmax).
_MASK_VALUE = -100.0
_GEOMETRY_CACHE_SIZE = 32


class FusedWindowAttention(WindowAttention):
    """``WindowAttention`` computed with ``scaled_dot_product_attention``.

    Same parameters, buffers and call contract as BasicSR's class; the block calls
    :meth:`forward_windows`, which adds the interior/border scheme of the module docstring.
    """

    def relative_bias(self, dtype):
        """``(1, heads, n, n)`` relative position bias, gathered from the table each call."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table.index_select(0, self.relative_position_index.view(-1))
        return bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0).to(dtype)

    def _attend(self, q, k, v, mask):
        """Attention of (windows, heads, n, head_dim) tensors, returned as (windows, n, heads, head_dim).

        Without autograd: SDPA. With autograd (training): the explicit product, softmax,
        product, because PyTorch's CPU SDPA falls back to a slower generic path when the
        mask (here the trainable bias) needs a gradient (measured per SwinIRmini training step:
        the explicit product beats SDPA there, which is no faster than BasicSR).
        """
        if torch.is_grad_enabled() and (q.requires_grad or mask.requires_grad):
            attn = (q * self.scale) @ k.transpose(-2, -1) + mask
            return (self.attn_drop(attn.softmax(dim=-1)) @ v).transpose(1, 2)
        drop = self.attn_drop.p if self.training else 0.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, scale=self.scale)
        # With q laid out as (windows, n, heads, head_dim), as the block's qkv view is, the CPU
        # kernel writes its output the same way, so this transpose (and the reshape after it) is free.
        return out.transpose(1, 2)

    def forward_windows(self, x, num_interior, border_mask=None):
        """Attention of windows ``x`` (windows, n, c) whose first ``num_interior`` need no shift mask.

        ``border_mask`` is the (num_border_per_image, n, n) 0/-100 shift mask of the
        remaining windows (the border windows of each image in turn), or None when every
        window is interior (non-shifted block).
        """
        return self.proj_drop(self.proj(self.attention_core(x, num_interior, border_mask)))

    def attention_core(self, x, num_interior, border_mask=None, qkv=None):
        """:meth:`forward_windows` without the output projection: (windows, n, c) before ``proj``.

        ``qkv`` may give the already computed ``self.qkv(x)`` (the block's fused linear).
        """
        b_, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x) if qkv is None else qkv
        q, k, v = qkv.view(b_, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_bias(q.dtype)
        if num_interior == b_:
            out = self._attend(q, k, v, bias)
        else:
            images = (b_ - num_interior) // border_mask.shape[0]
            # 4-D mask per window: the CPU kernel is slow when it must broadcast a batch dim.
            mask = (bias + border_mask.to(q.dtype).unsqueeze(1)).repeat(images, 1, 1, 1)
            border = self._attend(q[num_interior:], k[num_interior:], v[num_interior:], mask)
            if num_interior:
                out = torch.cat([self._attend(q[:num_interior], k[:num_interior], v[:num_interior], bias), border])
            else:
                out = border
        return out.reshape(b_, n, c)

    def forward(self, x, mask=None):
        """BasicSR's contract: ``x`` (num_windows*b, n, c), ``mask`` (num_windows, n, n) or None."""
        b_, n, c = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).view(b_, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn_mask = self.relative_bias(q.dtype)
        if mask is not None:
            attn_mask = (attn_mask + mask.to(q.dtype).unsqueeze(1)).repeat(b_ // mask.shape[0], 1, 1, 1)
        return self.proj_drop(self.proj(self._attend(q, k, v, attn_mask).reshape(b_, n, c)))


class FusedSwinTransformerBlock(SwinTransformerBlock):
    """``SwinTransformerBlock`` whose shift + partition is one cached gather (see module docstring).

    Under ``torch.jit.trace`` (TorchScript and ONNX export) it runs :meth:`forward_traceable`
    instead, since the cached geometry is Python-side and would freeze the traced graph to
    one input size.
    """

    def forward(self, x, x_size):
        if torch.jit.is_tracing():
            return self.forward_traceable(x, x_size)
        h, w = x_size
        b, length, c = x.shape
        geometry = window_geometry(b, h, w, self.window_size, self.shift_size, x.device)
        n = self.window_size * self.window_size
        if self._can_fuse_linears(x):
            return self._forward_inference(x, geometry, n)

        shortcut = x
        windows = self.norm1(x).reshape(b * length, c).index_select(0, geometry.order).view(-1, n, c)
        attn = self.attn.forward_windows(windows, geometry.num_interior, geometry.border_mask)
        attn = attn.view(b * length, c).index_select(0, geometry.inverse).view(b, length, c)
        x = shortcut + self.drop_path(attn)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _can_fuse_linears(self, x):
        """Inference with oneDNN's fused linear (see :mod:`.onednn_fusion`) and BasicSR's MLP."""
        if type(self.mlp.act) is not torch.nn.GELU or self.mlp.act.approximate != 'none':
            return False
        linears = (self.attn.qkv, self.attn.proj, self.mlp.fc1, self.mlp.fc2)
        return can_fuse_for_inference(LINEAR_POINTWISE, x, self, linears)

    def _forward_inference(self, x, geometry, n):
        """The block with the residual stream in window order and oneDNN-fused linears.

        Every step is token-wise except attention, so the whole block can run in window
        order between one gather in and one gather out; oneDNN then fuses each linear
        with what follows it (qkv bias; proj bias + residual; fc1 bias + GELU; fc2 bias +
        residual), saving a pass over the token tensor per fusion.
        """
        b, length, c = x.shape
        attn, mlp = self.attn, self.mlp
        stream = x.reshape(b * length, c).index_select(0, geometry.order)
        normed = self.norm1(stream)
        qkv = LINEAR_POINTWISE(normed, attn.qkv.weight, attn.qkv.bias, 'none', [], '')
        core = attn.attention_core(normed.view(-1, n, c), geometry.num_interior, geometry.border_mask, qkv=qkv)
        core = core.reshape(-1, c).contiguous()
        stream = LINEAR_POINTWISE.binary(core, stream, attn.proj.weight, attn.proj.bias, 'add')
        hidden = LINEAR_POINTWISE(self.norm2(stream), mlp.fc1.weight, mlp.fc1.bias, 'gelu', [], 'none')
        stream = LINEAR_POINTWISE.binary(hidden, stream, mlp.fc2.weight, mlp.fc2.bias, 'add')
        return stream.index_select(0, geometry.inverse).view(b, length, c)

    def forward_traceable(self, x, x_size):
        """BasicSR's algorithm (roll, partition, dense shift mask) in shape-generic tensor ops.

        Everything that depends on the input size is computed from the traced sizes, so a
        graph traced at one size runs at any multiple of the window.
        """
        h, w = x_size
        b, length, c = x.shape
        window, shift = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        nh, nw = h // window, w // window
        windows = x.view(b, nh, window, nw, window, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)
        mask = traceable_shift_mask(h, w, window, shift, x.device) if shift else None
        attn = self.attn(windows, mask)
        attn = attn.view(b, nh, nw, window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if shift:
            attn = torch.roll(attn, shifts=(shift, shift), dims=(1, 2))
        x = shortcut + self.drop_path(attn.reshape(b, length, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class WindowGeometry:
    """Token permutation of a batch's (shifted) window partition, and its border windows' mask.

    ``order[i]`` is the flat ``b*h*w`` position of the i-th token in window order (cyclic
    shift by ``-shift`` included): the interior windows of every image, then the border
    windows of every image. ``inverse`` undoes it. ``num_interior`` counts the interior
    windows of the batch; ``border_mask`` is the (num_border_per_image, n, n) 0/-100 shift
    mask of one image's border windows (None without shift).
    """

    def __init__(self, order, inverse, num_interior, border_mask):
        self.order = order
        self.inverse = inverse
        self.num_interior = num_interior
        self.border_mask = border_mask


@functools.lru_cache(maxsize=_GEOMETRY_CACHE_SIZE)
def window_geometry(batch, h, w, window, shift, device):
    """The cached :class:`WindowGeometry` of ``batch`` images of ``h x w`` tokens (shared by all blocks)."""
    if h % window or w % window:
        raise ValueError(f'SwinIR window attention needs a feature size that is a multiple of the window '
                         f'({window}), got {h} x {w}; pad the input (SwinIRmini does) or use a multiple')
    # Built on the CPU (whatever the default device is, e.g. ``meta`` while counting MACs)
    # and outside inference mode, so the indices stay usable when autograd is on later.
    cpu = torch.device('cpu')
    with torch.inference_mode(False), torch.no_grad():
        nh, nw = h // window, w // window
        positions = torch.arange(h * w, device=cpu).view(h, w)
        if shift:
            positions = positions.roll((-shift, -shift), (0, 1))
        positions = _partition(positions, window)  # (windows, n)
        if shift:
            # BasicSR's region labels are already in shifted coordinates: partition them as they are.
            regions = _partition(_shift_regions(h, w, window, shift), window)
            # Border windows hold tokens of several regions (BasicSR's nonzero mask rows).
            is_border = (regions != regions[:, :1]).any(dim=1)
        else:
            is_border = torch.zeros(nh * nw, dtype=torch.bool, device=cpu)
        interior = torch.nonzero(~is_border).flatten()
        border = torch.nonzero(is_border).flatten()
        offsets = torch.arange(batch, device=cpu).view(batch, 1, 1) * (h * w)
        order = torch.cat([(positions[interior] + offsets).flatten(), (positions[border] + offsets).flatten()])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=cpu)
        border_mask = None
        if shift:
            labels = regions[border]
            differs = labels.unsqueeze(1) != labels.unsqueeze(2)
            border_mask = torch.zeros(differs.shape, device=cpu).masked_fill_(differs, _MASK_VALUE).to(device)
        return WindowGeometry(order.to(device), inverse.to(device), batch * len(interior), border_mask)


def _partition(grid, window):
    """(h, w) grid -> (windows, window*window), windows in row-major order as BasicSR's ``window_partition``."""
    h, w = grid.shape
    grid = grid.view(h // window, window, w // window, window).permute(0, 2, 1, 3)
    return grid.reshape(-1, window * window)


def _shift_regions(h, w, window, shift):
    """Region label of each position, as in BasicSR's ``calculate_mask``."""
    labels = torch.zeros(h, w, dtype=torch.long, device=torch.device('cpu'))
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    count = 0
    for rows in cuts:
        for cols in cuts:
            labels[rows, cols] = count
            count += 1
    return labels


def traceable_shift_mask(h, w, window, shift, device):
    """BasicSR's ``calculate_mask`` (nh*nw, n, n) from comparisons, so ``h``/``w`` may be traced sizes.

    Region of a row: 0 before ``h - window``, 1 up to ``h - shift``, 2 after (BasicSR's
    three slices); a position's label is ``3 * row region + column region``.
    """
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    row_region = (rows >= h - window).long() + (rows >= h - shift).long()
    col_region = (cols >= w - window).long() + (cols >= w - shift).long()
    labels = row_region.unsqueeze(1) * 3 + col_region.unsqueeze(0)
    labels = labels.view(h // window, window, w // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    differs = labels.unsqueeze(1) != labels.unsqueeze(2)
    return torch.zeros(differs.shape, device=device).masked_fill(differs, _MASK_VALUE)


_FUSED_CLASSES = {WindowAttention: FusedWindowAttention, SwinTransformerBlock: FusedSwinTransformerBlock}


def use_fused_attention(model):
    """Convert every BasicSR SwinIR block in ``model`` to the fused path, in place; returns ``model``.

    Works on any module tree (a ``SwinIR``, a ``SwinIRmini``, a distillation model's
    teacher). Only the classes of ``WindowAttention``/``SwinTransformerBlock`` instances
    change; parameters, buffers and state-dict keys stay as they are. Subclasses of
    those BasicSR classes (someone else's override) are left alone.
    """
    return _swap_classes(model, _FUSED_CLASSES)


def use_eager_attention(model):
    """Undo :func:`use_fused_attention`: back to BasicSR's own forwards, in place; returns ``model``."""
    return _swap_classes(model, {fused: original for original, fused in _FUSED_CLASSES.items()})


def _swap_classes(model, mapping):
    """Give every module of ``model`` whose exact class is a key of ``mapping`` the mapped class."""
    for module in model.modules():
        new_class = mapping.get(type(module))
        if new_class is not None:
            module.__class__ = new_class
    return model


def uses_fused_attention(model):
    """True when ``model`` has SwinIR blocks and all of them run the fused path."""
    blocks = [m for m in model.modules() if isinstance(m, SwinTransformerBlock)]
    return bool(blocks) and all(isinstance(m, FusedSwinTransformerBlock) for m in blocks)
