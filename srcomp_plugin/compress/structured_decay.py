"""Structured decay: stage 1 drives the weights that stage 2 will slice away to exactly zero.

Slicing a student out of a merely *sparse* teacher (``--init pruned``) drops channels and
blocks that still carry signal, so the sliced student starts far below bicubic. With
``train.sparsity.structured`` stage 1 instead chooses the student sub-network itself,
part-way through training, exactly as ``srcomp compress --init pruned`` would choose it
(the student shape of :func:`.shape_rule.derive_student`, the kept channels/blocks/groups
of the family's slicer on the current weights), and then shrinks every weight
*outside* it linearly to exactly zero while the rest keeps training and compensates.
When the decay ends, slicing removes only zeros: the student computes what the stage-1
network computes.

Schedule, with ``T = total_iter``, ``t0 = round(start * T)``, ``t1 = round(end * T)``:

* the selection is made on the weights after iteration ``t0`` (before the first step of
  iteration ``t0 + 1``; ``start: 0`` selects on the pretrained teacher);
* after the optimizer step of iteration ``t`` the dropped entries are multiplied by
  ``s(t) / s(t - 1)`` with ``s(t) = (t1 - t) / (t1 - t0)``: they reach exactly 0 at ``t1``;
* after every later step they are set to 0 again (Adam would otherwise revive them; the
  orthant steps of OBProx-SG keep them at 0 anyway).

The scaling acts on the parameters after the optimizer's step, so it works the same for
any optimizer. The masks (the family record's ``drop_masks``,
:func:`srcomp_plugin.families.edsr.drop_masks`) cover every entry the slicer does not
copy: the rows *and* the columns of dropped residual-stream channels, inner channels and
upsampler groups, and whole dropped blocks. Zeroing the columns that read a dropped
channel changes nothing (the channel is zero) but makes its L1 mass exactly zero, so the
slicer's mass-based choice on the final checkpoint is the choice made here.

Families whose record has ``drop_masks`` only (EDSR): a SwinIR slice changes LayerNorm
statistics (the mean and variance run over fewer channels), so no zeroing makes it lossless.
"""
from dataclasses import dataclass

import torch

from ..errors import CompressError
from ..families import teacher_family
from .shape_rule import derive_student, parse_ratio

OPTION = 'train.sparsity.structured'
KEYS = ('ratio', 'params', 'depth_keep', 'start', 'end')
DEFAULTS = {'depth_keep': 0.5, 'start': 0.2, 'end': 0.7}


@dataclass
class StructuredPlan:
    """The validated options: the student shape and the decay's first and last iteration."""
    shape: object  # shape_rule.StudentShape
    family: object  # the teacher's record (srcomp_plugin.families), with drop_masks
    start_iter: int  # t0: the selection is made on the weights after this iteration
    end_iter: int  # t1: the dropped weights are exactly 0 after this iteration's step


def _number(opt, key, what):
    value = opt[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{OPTION}.{key} must be a number ({what}), got {value!r}.')
    return value


def _budget(params):
    if params is not None and (isinstance(params, bool) or not isinstance(params, int) or params < 1):
        raise ValueError(f'{OPTION}.params must be a positive integer (a parameter budget), got {params!r}')
    return params


def parse_structured(structured, network_opt, total_iter):
    """A :class:`StructuredPlan` from ``train.sparsity.structured``; ValueError naming the key if invalid."""
    if not isinstance(structured, dict):
        raise ValueError(f'{OPTION} must be a mapping with ratio (or params), depth_keep, start and end; '
                         f'got {structured!r}.')
    unknown = set(structured) - set(KEYS)
    if unknown:
        raise ValueError(f'{OPTION}: unknown key(s) {sorted(unknown)}; allowed: {list(KEYS)}.')
    opt = dict(DEFAULTS, **structured)
    if ('ratio' in opt) == ('params' in opt):
        raise ValueError(f'{OPTION}: give exactly one of ratio (as srcomp compress --ratio) and params '
                         f'(an absolute parameter budget, as --params).')
    start = _number(opt, 'start', 'a fraction of train.total_iter')
    end = _number(opt, 'end', 'a fraction of train.total_iter')
    if not (0 <= start < 1 and start < end):
        raise ValueError(f'{OPTION}.start must be in [0, 1) and < end; got start {start}, end {end}.')
    if not 0 < end <= 1:
        raise ValueError(f'{OPTION}.end must be in (0, 1] and > start; got {end}.')
    if not 0 < _number(opt, 'depth_keep', 'the fraction of residual blocks kept') <= 1:
        raise ValueError(f'{OPTION}.depth_keep must be in (0, 1] (as srcomp compress --depth-keep), '
                         f'got {opt["depth_keep"]}.')
    ratio = None if 'ratio' not in opt else parse_ratio(opt['ratio'], where=f'{OPTION}.ratio')
    params = _budget(opt.get('params'))
    try:
        family, _ = teacher_family(network_opt)
        if family.drop_masks is None:
            raise CompressError(f'structured decay supports EDSR-family teachers only for now; network_g.type is '
                                f'{network_opt["type"]!r} (a {family.name} slice changes the LayerNorm statistics, '
                                f'so it is never lossless).')
        shape = derive_student(network_opt, ratio=ratio, params=params, depth_keep=opt['depth_keep'])
    except CompressError as err:
        raise ValueError(f'{OPTION}: {err}') from err
    return StructuredPlan(shape=shape, family=family, start_iter=round(start * total_iter),
                          end_iter=round(end * total_iter))


# ------------------------------------------------------------------------------ the decay


class StructuredDecay:
    """Chooses the student sub-network at ``start_iter`` and decays the rest to 0 by ``end_iter``.

    ``select`` and ``apply`` take the network's ``named_parameters()`` (of the bare model);
    the only state is the selection (:meth:`state_dict`), since the masks and the factors
    follow from it and the iteration.
    """

    def __init__(self, plan):
        self.plan = plan
        self.selection = None
        self.masks = None

    @property
    def shape(self):
        return self.plan.shape

    def keep_fraction(self, current_iter):
        """s(t): 1 up to ``start_iter``, falling linearly to 0 at ``end_iter``, 0 after."""
        t0, t1 = self.plan.start_iter, self.plan.end_iter
        if current_iter <= t0:
            return 1.0
        if current_iter >= t1:
            return 0.0
        return (t1 - current_iter) / (t1 - t0)

    def due(self, current_iter):
        """Whether the selection must be made before the step of ``current_iter``."""
        return self.selection is None and current_iter > self.plan.start_iter

    def select(self, named_params):
        """Choose the kept sub-network on the current weights, as ``srcomp compress --init pruned`` would."""
        state = {name: p.detach().cpu() for name, p in named_params}
        _, selection = self.plan.family.slice_student(state, self.shape.teacher_kwargs, self.shape.student_kwargs)
        self.set_selection(selection, {name: t.shape for name, t in state.items()})

    def set_selection(self, selection, shapes):
        self.selection = selection
        self.masks = self.plan.family.drop_masks(shapes, selection, self.shape.teacher_kwargs)

    @torch.no_grad()
    def apply(self, named_params, current_iter):
        """Scale the dropped entries after the optimizer step of ``current_iter`` (see the module docstring)."""
        if self.masks is None:
            return
        previous = self.keep_fraction(current_iter - 1)
        factor = self.keep_fraction(current_iter) / previous if previous > 0 else 0.0
        if factor == 1.0:
            return
        for name, p in named_params:
            mask = self._mask_on(name, p.device)
            if factor == 0.0:
                p.masked_fill_(mask, 0.)
            else:
                p.copy_(torch.where(mask, p * factor, p))

    def _mask_on(self, name, device):
        """The mask of ``name`` on ``device``, moved there once (not at every step)."""
        if self.masks[name].device != device:
            self.masks[name] = self.masks[name].to(device)
        return self.masks[name]

    @torch.no_grad()
    def dropped_l1(self, named_params):
        """L1 mass of the dropped entries / L1 mass of all parameters (0 once the decay has ended)."""
        dropped = total = 0.0
        for name, p in named_params:
            a = p.detach().abs().double()
            total += float(a.sum())
            dropped += float(a[self._mask_on(name, p.device)].sum())
        return dropped / total if total else 0.0

    def num_dropped(self):
        """How many weights lie outside the kept sub-network."""
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def report(self, named_params, current_iter):
        """JSON-friendly summary for the stage-1 sparsity report."""
        shape = self.shape
        out = {'student': shape.network_opt(), 'student_params': shape.student_params,
               'teacher_params': shape.teacher_params, 'ratio': str(shape.ratio),
               'depth_keep': shape.depth_keep, 'start_iter': self.plan.start_iter, 'end_iter': self.plan.end_iter,
               'keep_fraction': self.keep_fraction(current_iter), 'selection': self.selection}
        if self.masks is not None:
            out['num_dropped'] = self.num_dropped()
            out['dropped_l1'] = self.dropped_l1(named_params)
            out['dropped_all_zero'] = out['dropped_l1'] == 0
        return out

    def state_dict(self):
        return {'selection': self.selection, 'student': self.shape.network_opt(),
                'start_iter': self.plan.start_iter, 'end_iter': self.plan.end_iter}

    def load_state_dict(self, state, shapes):
        """Restore the selection saved in a training state; refuse one made for another student."""
        if state['student'] != self.shape.network_opt():
            raise ValueError(f'{OPTION}: the resumed state chose a sub-network for the student {state["student"]}, '
                             f'but the options now give {self.shape.network_opt()}; resume with the same '
                             f'ratio/params and depth_keep, or start a new run.')
        if state['selection'] is not None:
            self.set_selection(state['selection'], shapes)
