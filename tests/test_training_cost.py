"""Training compute in scratch-step equivalents (srcomp_plugin.measure.training_cost) and the demo's column."""
import pytest

from srcomp_plugin.measure import training_cost
from srcomp_plugin.pipeline.demo import row_compute


def _edsr(num_feat, num_block):
    return {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': num_feat, 'num_block': num_block,
            'upscale': 2, 'res_scale': 1, 'img_range': 255.}


def _edsr_x2_macs_per_lr_pixel(f, b):
    """Every convolution of an x2 EDSR, counted by hand: head, 2b body convs + conv_after_body, upsampler, tail."""
    return 9 * 3 * f + (2 * b + 1) * 9 * f * f + 9 * f * 4 * f + 4 * 9 * f * 3


@pytest.mark.parametrize('f, b', [(4, 1), (16, 4), (64, 8)])
def test_forward_macs_count_every_convolution(f, b):
    assert training_cost.forward_macs(_edsr(f, b), (8, 12), 2) == 8 * 12 * _edsr_x2_macs_per_lr_pixel(f, b)


def test_a_training_step_is_three_forwards_per_sample_and_a_teacher_forward_one():
    net = _edsr(16, 4)
    forward = training_cost.forward_macs(net, (32, 32), 2)
    assert training_cost.train_step_macs(net, 16, 32, 2) == 3 * 16 * forward
    assert training_cost.teacher_forward_macs(net, 16, 32, 2) == 16 * forward
    assert training_cost.scratch_steps(5 * training_cost.train_step_macs(net, 16, 32, 2),
                                       training_cost.train_step_macs(net, 16, 32, 2)) == 5


def test_the_f64b8_teacher_costs_24_student_steps_per_step():
    """The figure benchmarks/QUALITY.md's equal-compute table rests on (EDSR f64b8 -> f16b4)."""
    teacher, student = (training_cost.train_step_macs(_edsr(f, b), 16, 32, 2) for f, b in ((64, 8), (16, 4)))
    ratio = teacher / student
    assert ratio == pytest.approx(_edsr_x2_macs_per_lr_pixel(64, 8) / _edsr_x2_macs_per_lr_pixel(16, 4))
    assert 24 < ratio < 25


def test_demo_rows_charge_stage_one_and_every_teacher_forward():
    teacher, student = _edsr(32, 4), _edsr(8, 2)
    budget = {'prune': 10, 'student': 40, 'batch': 4, 'lr_patch': 16}
    t, s = _edsr_x2_macs_per_lr_pixel(32, 4), _edsr_x2_macs_per_lr_pixel(8, 2)
    expected = (10 * 3 * t + 40 * (3 * s + t)) / (3 * s)  # per sample and pixel: the batch and patch cancel
    assert row_compute('scratch', teacher, student, budget, 2) == 40
    for role in ('srcomp', 'paper'):
        assert row_compute(role, teacher, student, budget, 2) == pytest.approx(expected)
    assert row_compute('teacher', teacher, student, budget, 2) is None
    assert row_compute('bicubic', teacher, student, budget, 2) is None
