"""``recipe:`` in pipeline files: which stage 1 each recipe gets, and the errors."""
from pathlib import Path

import pytest

from srcomp_plugin.pipeline import stage_options as so

OPTIONS = Path(__file__).resolve().parents[1] / 'options'

EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'upscale': 2,
        'res_scale': 1, 'img_range': 255.}
SWINIR = {'type': 'SwinIR', 'upscale': 2, 'in_chans': 3, 'img_size': 64, 'window_size': 8, 'img_range': 1.,
          'depths': [6, 6, 6, 6], 'embed_dim': 60, 'num_heads': [6, 6, 6, 6], 'mlp_ratio': 2,
          'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'}


def _pipe(network=EDSR, **extra):
    pipe = {'name': 'p', 'scale': 2, 'teacher': {'network': network, 'checkpoint': 't.pth'},
            'datasets': {'train': {'name': 'train'}, 'val': {'name': 'val'}}}
    pipe.update(extra)
    return pipe


def test_srcomp_recipe_on_edsr_with_a_ratio_decays_to_the_student_with_adam():
    pipe = _pipe(compress={'ratio': '49603/1369859', 'depth_keep': 0.5})
    assert so.recipe_of(pipe) == 'srcomp'  # the default
    train = so.prune_options(pipe)['train']
    assert train['sparsity'] == {'structured': {'ratio': '49603/1369859', 'depth_keep': 0.5}}
    assert train['optim_g']['type'] == 'Adam'


@pytest.mark.parametrize('pipe', [
    _pipe(recipe='paper', compress={'ratio': 0.04}),  # the release's stage 1
    _pipe(compress={}),  # the ratio comes from the measured density: the student is unknown before stage 1
    _pipe(compress={'ratio': 0.04, 'init': 'scratch'}),  # nothing is sliced
    _pipe(network=SWINIR, compress={'ratio': 0.1}),  # a SwinIR slice is never lossless
])
def test_other_cases_keep_the_papers_stage_one(pipe):
    train = so.prune_options(pipe)['train']
    assert 'structured' not in train['sparsity']
    assert train['optim_g']['type'] == 'OBProxSG'
    family = 'EDSR_f64b16' if pipe['teacher']['network']['type'] == 'EDSR' else 'SwinIR_light'
    assert train == so.load_yaml(OPTIONS / 'prune' / f'train_{family}_x2_prune.yml')['train']  # the release's file


def test_structured_stage_one_keeps_the_release_file_but_its_optimizer():
    train = so.prune_options(_pipe(compress={'ratio': 0.04}))['train']
    release = so.load_yaml(OPTIONS / 'prune' / 'train_EDSR_f64b16_x2_prune.yml')['train']
    assert {k: v for k, v in train.items() if k not in ('optim_g', 'sparsity')} == {
        k: v for k, v in release.items() if k not in ('optim_g', 'sparsity')}


def test_prune_overrides_merge_onto_the_release_file():
    train = so.prune_options(_pipe(recipe='paper', prune={'train': {'total_iter': 300, 'optim_g': {'Np': 2}}}))['train']
    assert train['total_iter'] == 300 and train['optim_g']['Np'] == 2 and train['optim_g']['lambda_'] == 1e-4


def test_unknown_recipe_is_refused():
    with pytest.raises(so.PipelineOptionError, match=r"recipe 'fast' is not one of \['srcomp', 'paper'\]"):
        so.check_pipeline_options(_pipe(recipe='fast'))


@pytest.mark.parametrize('extra, words', [
    ({'distil': {'train': {'total_iter': 10}}}, "unknown key 'distil'. Did you mean 'distill'?"),
    ({'compress': {'ration': 0.04}}, "compress: unknown key 'ration'. Did you mean 'ratio'?"),
    ({'launcher': {'nproc': 2}}, "launcher: unknown key 'nproc'. Did you mean 'nproc_per_node'?"),
    ({'test': ['Set5']}, 'test must be a mapping'),
])
def test_unknown_or_misspelled_keys_are_refused(extra, words):
    with pytest.raises(so.PipelineOptionError, match='unknown key|must be a mapping') as err:
        so.check_pipeline_options(_pipe(**extra))
    assert words in str(err.value)


def test_shipped_pipeline_files_pass():
    for path in sorted((OPTIONS / 'pipeline').glob('*.yml')):
        so.check_pipeline_options(so.load_yaml(path), str(path))
