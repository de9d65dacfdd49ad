"""Stage 2's rule: from a teacher and a target ratio r to the student's shape.

The rule (ours, since the paper's equations could not
be obtained, and it reproduces the release's hand-typed EDSRmini and SwinIRmini exactly):

1. keep ``depth_keep`` of the residual units (see :mod:`srcomp_plugin.families` for what a unit is;
   where there are stages x layers each is scaled by sqrt(depth_keep)), rounded, >= 1;
2. take the largest valid width whose **exact** parameter count, counted on the
   instantiated student with :func:`srcomp_plugin.measure.params.count_params`, is
   <= r x teacher params. Body parameters grow as width^2 x depth, so width and depth
   must both move for ratios of a few percent.

Ratios are handled as exact fractions (``--ratio 49603/1369859`` is exact; a density is
nonzero/measured counts), so a budget that a student meets with equality is never lost to
floating point; a typed decimal may fall short of the fraction it stands for, so a student
within :data:`TOLERANCE` (relative) above the budget still fits it.

When even the smallest valid width at the kept depth is over budget, the rule falls back to
that width with a warning (lower ``depth_keep`` to meet the budget). When the budget is
below the smallest student of any kind (smallest width, one unit per level) no depth
could meet it, and that is an error.
"""
import functools
import json
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

from ..measure.params import count_params
from ..errors import CompressError, CompressWarning
from ..families import arch_class, teacher_family


TOLERANCE = Fraction(1, 10 ** 9)  # 0.03621029609616756 must give EDSRmini as 49603/1369859 does


def parse_ratio(value, where='--ratio'):
    """An exact ``Fraction`` from ``0.0362``, ``'0.0362'`` or ``'49603/1369859'``; must lie in (0, 1]."""
    try:
        ratio = Fraction(str(value).strip()) if not isinstance(value, Fraction) else value
    except (ValueError, ZeroDivisionError):
        raise CompressError(f'{where}: expected a number or a fraction such as 49603/1369859, got {value!r}') from None
    if not 0 < ratio <= 1:
        raise CompressError(f'{where}: the compression ratio must lie in (0, 1] (student params / teacher params), '
                            f'got {float(ratio):.6g}')
    return ratio


def build_arch(arch_type, kwargs):
    """An instance of a registered arch (plugin registered) from its kwargs."""
    return arch_class(arch_type)(**kwargs)


def arch_params(arch_type, kwargs):
    """Exact parameter count of the instantiated architecture (the same counter as ``srcomp profile``).

    Counts are cached per (type, kwargs): a sweep of ratios builds each candidate once.
    """
    try:
        key = json.dumps(kwargs, sort_keys=True)
    except TypeError:  # a kwarg that is not plain data: count without the cache
        return count_params(build_arch(arch_type, kwargs))
    return _cached_params(arch_type, key)


@functools.lru_cache(maxsize=512)
def _cached_params(arch_type, kwargs_json):
    return count_params(build_arch(arch_type, json.loads(kwargs_json)))


@dataclass
class StudentShape:
    """The derived student and the evidence for it."""
    family: str
    teacher_type: str
    teacher_kwargs: dict
    teacher_params: int
    student_type: str
    student_kwargs: dict
    student_params: int
    ratio: Fraction  # target r
    budget: Fraction  # r x teacher params
    depth_keep: float
    depth: dict  # the depth keys of the student (num_block, or depths + num_heads)
    width: int
    candidates: list = field(default_factory=list)  # [(width, params)] tried at the kept depth
    fallback: bool = False
    warnings: list = field(default_factory=list)

    @property
    def achieved_ratio(self):
        return self.student_params / self.teacher_params

    def network_opt(self):
        """The student's ``network_g`` dict: its type and every kwarg explicit."""
        return {'type': self.student_type, **self.student_kwargs}


def _check_depth_keep(depth_keep):
    if not isinstance(depth_keep, (int, float)) or not 0 < depth_keep <= 1:
        raise CompressError(f'--depth-keep must lie in (0, 1] (the fraction of residual units kept), '
                            f'got {depth_keep!r}')


def derive_student(network_opt, ratio=None, params=None, depth_keep=0.5, where='network_g', teacher_params=None):
    """Apply the rule to a teacher ``network_g`` dict and a target ratio or parameter budget.

    Args:
        network_opt: the teacher's BasicSR ``network_g`` dict (EDSR/EDSRmini/SwinIR/SwinIRmini).
        ratio: target r in (0, 1] (number, decimal string or ``'a/b'``); or give ``params``.
        params: an absolute parameter budget instead of ``ratio``.
        depth_keep: fraction of residual units kept, in (0, 1].
        where: the option's name in error messages.
        teacher_params: the teacher's parameter count when already known (else counted).
    """
    _check_depth_keep(depth_keep)
    family, teacher_kwargs = teacher_family(network_opt, where)
    if teacher_params is None:
        teacher_params = arch_params(network_opt['type'], teacher_kwargs)
    if (ratio is None) == (params is None):
        raise CompressError('give exactly one of a target ratio and a parameter budget')
    if params is not None:
        if not isinstance(params, int) or params < 1:
            raise CompressError(f'--params must be a positive integer, got {params!r}')
        if params > teacher_params:
            raise CompressError(f'--params {params:,} is more than the teacher\'s {teacher_params:,} parameters: '
                                'the student must be smaller than the teacher')
        ratio = Fraction(params, teacher_params)
    else:
        ratio = parse_ratio(ratio)
    budget = ratio * teacher_params
    fits = budget * (1 + TOLERANCE)

    widths = family.widths(teacher_kwargs)
    if not widths:
        raise CompressError(f'{where}.{family.width_key} {teacher_kwargs[family.width_key]} leaves no valid student '
                            f'width')
    smallest = arch_params(family.student_type,
                           family.student_kwargs(teacher_kwargs, family.min_depth(teacher_kwargs), widths[0]))
    if smallest > fits:
        raise CompressError(f'the budget of {float(budget):,.0f} params (ratio {float(ratio):.6g} of '
                            f'{teacher_params:,}) is smaller than the smallest valid student '
                            f'({family.width_key} {widths[0]}, one unit per level: {smallest:,} params); '
                            f'give a ratio of at least {smallest / teacher_params:.6g}')

    depth = family.depth_plan(teacher_kwargs, depth_keep)
    candidates, chosen = [], None
    for width in widths:  # params grow with width: stop at the first one over budget
        kwargs = family.student_kwargs(teacher_kwargs, depth, width)
        count = arch_params(family.student_type, kwargs)
        candidates.append((width, count))
        if count > fits:
            break
        chosen = (width, kwargs, count)
    notes, fallback = [], chosen is None
    if fallback:
        width, count = candidates[0]
        chosen = (width, family.student_kwargs(teacher_kwargs, depth, width), count)
        notes.append(f'no {family.width_key} fits the budget of {float(budget):,.0f} params at depth {depth}: '
                     f'fell back to the smallest valid {family.width_key} {width} ({count:,} params, ratio '
                     f'{count / teacher_params:.4g} > {float(ratio):.4g}); lower --depth-keep to meet the budget')
        warnings.warn(notes[-1], CompressWarning)
    width, kwargs, count = chosen
    return StudentShape(
        family=family.name,
        teacher_type=network_opt['type'],
        teacher_kwargs=teacher_kwargs,
        teacher_params=teacher_params,
        student_type=family.student_type,
        student_kwargs=kwargs,
        student_params=count,
        ratio=ratio,
        budget=budget,
        depth_keep=depth_keep,
        depth=depth,
        width=width,
        candidates=candidates,
        fallback=fallback,
        warnings=notes)
