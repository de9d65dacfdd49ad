"""The pipeline's compress stage runs stage 2 through the library (compress, then the writer)
and says what ``srcomp compress`` says: the report on stdout, warnings and errors on stderr,
an error as a failed stage that names the command to rerun by hand."""
import pytest
import torch

import srcomp_plugin  # noqa: F401  (fills the registries)
from srcomp_plugin.compress.shape_rule import build_arch
from srcomp_plugin.pipeline import stage_options as so
from srcomp_plugin.pipeline.runner import Pipeline, StageFailed

TEACHER = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 4, 'upscale': 2}


def _pipeline(tmp_path, teacher_state, compress):
    pipe = {'name': 'p', 'scale': 2, 'teacher': {'network': TEACHER, 'checkpoint': str(tmp_path / 't.pth')},
            'datasets': {'train': {'name': 'train'}, 'val': {'name': 'val'}},
            'compress': compress, 'distill': {'train': {'total_iter': 100}}}
    pipeline = Pipeline(pipe, root=tmp_path, log=lambda line: None)
    pipeline.options_dir.mkdir(parents=True)
    so.save_yaml(pipeline.option_file('prune'), so.prune_options(pipe))
    pipeline.final_checkpoint('prune').parent.mkdir(parents=True)
    torch.save({'params': teacher_state}, pipeline.final_checkpoint('prune'))
    return pipeline


def test_compress_stage_writes_the_distill_options_and_prints_the_report(tmp_path, capsys):
    teacher = build_arch('EDSR', {k: v for k, v in TEACHER.items() if k != 'type'})
    pipeline = _pipeline(tmp_path, teacher.state_dict(), {'init': 'scratch'})  # a dense checkpoint: warned
    pipeline._run_compress()
    distill = so.load_yaml(pipeline.option_file('distill'))
    assert distill['name'] == 'p_distill' and distill['network_g']['type'] == 'EDSRmini'
    assert distill['train']['total_iter'] == 100
    generated = pipeline.options_dir / 'distill_generated.yml'
    assert generated.read_text().startswith('# Stage 3 (distillation) options written by `srcomp compress`')
    assert (pipeline.options_dir / 'distill_generated_compress_report.json').is_file()
    out, err = capsys.readouterr()
    assert '(measured global density)' in out and 'stage-3 options   ' in out
    assert f"srcomp compress: warning: {pipeline.final_checkpoint('prune')} is not sparse" in err


def test_compress_error_is_a_failed_stage_naming_the_command(tmp_path, capsys):
    pipeline = _pipeline(tmp_path, {'not': torch.zeros(1)}, {'ratio': 0.5, 'init': 'scratch'})  # not the teacher's
    with pytest.raises(StageFailed, match=r'stage compress failed \(exit 2\): srcomp compress -opt .*prune\.yml '
                       r'--checkpoint .*net_g_latest\.pth --out .*distill_generated\.yml --depth-keep 0\.5 '
                       r'--recipe srcomp --force --init scratch --total-iter 100 --ratio 0\.5$'):
        pipeline._run_compress()
    assert 'srcomp compress: checkpoint ' in capsys.readouterr().err
    assert not pipeline.option_file('distill').exists()
