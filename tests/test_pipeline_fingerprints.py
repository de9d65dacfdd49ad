"""``srcomp pipeline`` reruns a finished stage when the options that made it changed, and every
stage after it; unchanged stages are skipped; ``--force`` reruns all. The stages are stubbed
(each writes the file that marks it done), so this checks the bookkeeping alone; the real
stages' skip and resume run in test_pipeline_demo.py."""
import copy

import pytest

from srcomp_plugin.pipeline.runner import STAGES, Pipeline
from srcomp_plugin.utils.atomic_json import write_json
from srcomp_plugin.utils.test_results import FORMAT

PIPE = {'name': 'p', 'scale': 2,
        'teacher': {'network': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16,
                                'upscale': 2}, 'checkpoint': 't.pth'},
        'datasets': {'train': {'name': 'train'}, 'val': {'name': 'val'}},
        'compress': {'ratio': 0.04}, 'distill': {'train': {'total_iter': 100}}}


@pytest.fixture
def stubbed(monkeypatch):
    """Replace each stage by a stub that marks it done; returns the list of (stage, fresh) calls."""
    calls = []

    def stub(stage):
        def run(self):
            calls.append((stage, self._fresh))
            if stage in ('prune', 'distill'):
                self.final_checkpoint(stage).parent.mkdir(parents=True, exist_ok=True)
                self.final_checkpoint(stage).write_bytes(b'x')
            elif stage == 'compress':
                self.option_file('distill').write_text('{}')
            else:
                self.results_dir().mkdir(parents=True, exist_ok=True)
                done = {'format': FORMAT, 'datasets': {'Set5': {}}, 'results': {'Set5': {'metrics': {'psnr': 30.0}}}}
                write_json(self.results_dir() / 'test_1.json', done)
        return run

    for stage in STAGES:
        monkeypatch.setattr(Pipeline, f'_run_{stage}', stub(stage))
    return calls


def _run(tmp_path, pipe, **kw):
    logs = []
    Pipeline(pipe, root=tmp_path, log=logs.append, **kw).run()
    return logs


def test_unchanged_stages_are_skipped(stubbed, tmp_path):
    _run(tmp_path, PIPE)
    assert stubbed == [(s, False) for s in STAGES]
    logs = _run(tmp_path, PIPE)
    assert len(stubbed) == 4 and all(f'{s}: already done, skipped' in ' '.join(logs) for s in STAGES)


def test_a_changed_stage_and_the_ones_after_it_run_again(stubbed, tmp_path):
    _run(tmp_path, PIPE)
    edited = copy.deepcopy(PIPE)
    edited['distill']['train']['ema_decay'] = 0.99  # stage 3 only: prune and compress stay valid
    logs = ' '.join(_run(tmp_path, edited))
    assert stubbed[4:] == [('distill', True), ('test', True)]
    assert 'prune: already done, skipped' in logs and 'compress: already done, skipped' in logs
    assert 'distill: its options changed since it ran: running it again' in logs
    edited['distill']['train']['total_iter'] = 50  # compress rescales the recipe's schedule: stage 2 onwards
    _run(tmp_path, edited)
    assert stubbed[6:] == [('compress', True), ('distill', True), ('test', True)]
    edited['compress']['ratio'] = 0.1  # the srcomp recipe's stage 1 decays to the student: all stages
    _run(tmp_path, edited)
    assert stubbed[9:] == [(s, True) for s in STAGES]


def test_force_reruns_everything(stubbed, tmp_path):
    _run(tmp_path, PIPE)
    logs = ' '.join(_run(tmp_path, PIPE, force=True))
    assert stubbed[4:] == [(s, True) for s in STAGES]
    assert 'prune: --force: running it again' in logs


def test_an_interrupted_stage_resumes_only_with_the_same_options(stubbed, tmp_path, monkeypatch):
    pipeline = Pipeline(PIPE, root=tmp_path, log=lambda m: None)
    pipeline.options_dir.mkdir(parents=True)
    pipeline._record('prune', 'started', pipeline.fingerprints()['prune'])  # started, never finished
    _run(tmp_path, PIPE)
    assert stubbed[0] == ('prune', False)  # same options: resume
    edited = copy.deepcopy(PIPE)
    edited['prune'] = {'train': {'total_iter': 7}}
    pipeline = Pipeline(edited, root=tmp_path, log=lambda m: None)
    pipeline.final_checkpoint('prune').unlink()  # interrupted again, now with other options
    pipeline._record('prune', 'started', 'an older fingerprint')
    _run(tmp_path, edited)
    assert stubbed[4] == ('prune', True)  # other options: start over (the old folder is archived)
