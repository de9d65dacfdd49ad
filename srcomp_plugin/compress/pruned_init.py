"""``--init pruned``: a student state dict sliced out of the sparse teacher (beyond the paper).

The release trains the student from scratch; this gives stage 3 a start that already
carries what stage 1 concentrated into few channels. What is kept is chosen by L1 mass of
the (sparse) teacher's weights, and every tensor that shares an index space is sliced with
the same indices, so the student is a consistent sub-network. Each family's slicer is part
of its record (:func:`srcomp_plugin.families.edsr.slice_edsr`,
:func:`srcomp_plugin.families.swinir.slice_swinir`, where the rules are written out).

Buffers (attention masks, position indices) are taken from a freshly built student, since
they depend only on its shape. The result loads into the student with ``strict=True``;
:func:`pruned_state_dict` checks that.
"""
from collections import OrderedDict

from ..errors import CompressError
from ..families import FAMILIES
from .shape_rule import build_arch


def pruned_state_dict(family, teacher_sd, teacher_kwargs, student_type, student_kwargs):
    """``(state_dict, selection)`` of the student sliced from ``teacher_sd``; loads strictly.

    ``family`` is the name of the teacher's family record (``'EDSR'``, ``'SwinIR'``).

    Buffers of the student (masks, position indices) come from a freshly built student.
    Raises CompressError when the result does not load with ``strict=True``.
    """
    state, selection = FAMILIES[family].slice_student(teacher_sd, teacher_kwargs, student_kwargs)
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
