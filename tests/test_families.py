"""The family records: every module reads what it knows about EDSR and SwinIR from one class each."""
import re

import pytest
import torch
from basicsr.archs import build_network

import srcomp_plugin  # noqa: F401  (registers EDSRmini / SwinIRmini)
from srcomp_plugin.families import (FAMILIES, SUPPORTED_TEACHERS, EDSRFamily, SwinIRFamily, family_of_arch,
                                    family_of_state_dict)
from srcomp_plugin.utils.option_templates import load_template

EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 3, 'upscale': 3,
        'res_scale': 1, 'img_range': 255.}
SWINIR = {'type': 'SwinIR', 'upscale': 2, 'img_size': 16, 'window_size': 4, 'embed_dim': 12, 'depths': [2, 2],
          'num_heads': [3, 3], 'mlp_ratio': 2, 'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'}
RECORD = ('name', 'base_arch', 'teacher_types', 'student_type', 'width_key', 'measure', 'block_rules',
          'prune_template', 'slice_student', 'drop_masks', 'network_from_state_dict', 'owns_keys', 'check',
          'depth_plan', 'min_depth', 'widths', 'student_kwargs', 'shape')


@pytest.mark.parametrize('family', FAMILIES.values(), ids=list(FAMILIES))
def test_every_record_is_complete_and_its_release_file_exists(family):
    assert all(hasattr(family, key) for key in RECORD)
    assert family.student_type in family.teacher_types and SUPPORTED_TEACHERS[family.teacher_types[0]] == \
        family.student_type
    assert all(isinstance(rule, re.Pattern) for rule in family.block_rules)
    train = load_template(f'prune/{family.prune_template}')['train']
    assert train['optim_g']['type'] == 'OBProxSG' and train['sparsity']['measure'] == list(family.measure)


@pytest.mark.parametrize('arch, family', [('EDSR', EDSRFamily), ('EDSRmini', EDSRFamily), ('SwinIR', SwinIRFamily),
                                          ('SwinIRmini', SwinIRFamily), ('RRDBNet', None), ('EDSRlike', EDSRFamily),
                                          (None, None)])
def test_family_of_an_arch_type(arch, family):
    """Registered types by their BasicSR base class; an unregistered name by its prefix."""
    assert family_of_arch(arch) is family


@pytest.mark.parametrize('network, family', [(EDSR, EDSRFamily), (SWINIR, SwinIRFamily)], ids=['EDSR', 'SwinIR'])
def test_family_of_a_state_dict_and_its_blocks(network, family):
    state = build_network(dict(network)).state_dict()
    assert family_of_state_dict(state) is family
    assert family_of_state_dict({'conv_first.weight': 0, 'trunk.0.weight': 0}) is None
    blocks = {m.group(1) for name in state for rule in family.block_rules for m in [rule.match(name)] if m}
    expected = ({'body.0', 'body.1', 'body.2'} if family is EDSRFamily else
                {'layers.0', 'layers.1'} | {f'layers.{s}.residual_group.blocks.{b}' for s in (0, 1) for b in (0, 1)})
    assert blocks == expected


def test_an_edsr_network_is_read_back_from_its_weights():
    state = build_network(dict(EDSR)).state_dict()
    assert EDSRFamily.network_from_state_dict(state) == EDSR
    assert EDSRFamily.network_from_state_dict(build_network(dict(SWINIR)).state_dict()) is None
    assert SwinIRFamily.network_from_state_dict is None and SwinIRFamily.drop_masks is None


def test_the_edsr_slicer_keeps_the_heaviest_channels():
    state = {k: torch.zeros_like(v) for k, v in build_network(dict(EDSR)).state_dict().items()}
    state['conv_first.weight'][[3, 7]] = 1.0  # residual stream channels 3 and 7 carry all the mass
    teacher = {k: v for k, v in EDSR.items() if k != 'type'}
    student = EDSRFamily.student_kwargs(teacher, EDSRFamily.depth_plan(teacher, 0.3), 4)
    assert student['num_block'] == 1 and student['res_scale'] == 2  # EDSRmini's own res_scale
    _, selection = EDSRFamily.slice_student(state, teacher, student)
    assert {3, 7} <= set(selection['stream']) and len(selection['stream']) == 4 and len(selection['blocks']) == 1
