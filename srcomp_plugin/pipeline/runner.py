"""Run the method's stages in order, each through BasicSR's own pipelines.

Training and testing run in child processes (``python -m srcomp_plugin.train``/``.test``,
or ``torchrun`` when ``launcher.nproc_per_node`` > 1), exactly the commands a user would
type, so every stage can be rerun by hand from the option files written to
``experiments/<name>/options/``. Completion is read from BasicSR's own outputs:

* prune/distill are done when ``experiments/<name>_<stage>/models/net_g_latest.pth``
  exists (BasicSR writes it at the end of training); an experiment folder without it is
  an interrupted run and is resumed with ``--auto_resume``;
* compress is done when ``options/distill.yml`` exists;
* test is done when ``results/<name>_test`` holds a test log with metric lines.

Each stage's inputs (its options and the fingerprint of the stage before it) are hashed
into ``experiments/<name>/stages.json`` when it starts and when it ends. A finished stage
whose fingerprint no longer matches (the pipeline file was edited) is run again from the
start, and so is every stage after it; BasicSR archives the previous folder
(``<folder>_archived_<time>``), so nothing is lost. ``--force`` reruns every stage.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from . import stage_options as so
from .launcher import node_rank, train_command
from ..utils.atomic_json import write_json
from ..utils.test_results import ResultsError, find_results, read_results

STAGES = ('prune', 'compress', 'distill', 'test')


def _flags(settings):
    """``{'total_iter': 100}`` -> ``'--total-iter 100'``: keyword arguments as ``srcomp compress`` flags."""
    return ' '.join(f'--{key.replace("_", "-")} {value}' for key, value in settings.items())


class StageFailed(RuntimeError):
    """A stage's child process failed; the message says which command to rerun."""


def run_command(cmd, cwd, log_path=None):
    """Run ``cmd`` in ``cwd`` and return its exit code.

    Its output goes to the terminal, or (``log_path``) is appended to that file, whose last
    lines are printed if the command fails: BasicSR prints every option and the whole
    network at each start, which buries a short run's result.
    """
    if log_path is None:
        return subprocess.run(cmd, cwd=cwd).returncode
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, 'a', encoding='utf-8') as f:
        f.write(f'$ {" ".join(map(str, cmd))}\n')
        f.flush()
        code = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = log_path.read_text(encoding='utf-8', errors='replace').splitlines()[-20:]
        print('\n'.join(tail), file=sys.stderr)
    return code


class Pipeline:
    """The four stages of one pipeline option dict, rooted at ``root`` (the cwd by default)."""

    def __init__(self, pipe, root='.', log=print, force=False, output_dir=None):
        so.check_pipeline_options(pipe)
        self.output_dir = Path(output_dir) if output_dir else None  # None: children print to the terminal
        self.pipe = pipe
        self.force = force
        self._fresh = False
        self.name = pipe['name']
        self.root = Path(root).resolve()
        self.home = self.root / 'experiments' / self.name
        self.options_dir = self.home / 'options'
        self.log = log

    # ------------------------------------------------------------------ locations
    def experiment(self, stage):
        return self.root / 'experiments' / f'{self.name}_{stage}'

    def final_checkpoint(self, stage):
        return self.experiment(stage) / 'models' / 'net_g_latest.pth'

    def option_file(self, stage):
        return self.options_dir / f'{stage}.yml'

    def results_dir(self):
        return self.root / 'results' / f'{self.name}_test'

    def is_done(self, stage):
        if stage in ('prune', 'distill'):
            return self.final_checkpoint(stage).is_file()
        if stage == 'compress':
            return self.option_file('distill').is_file()
        try:  # the newest test run, complete: every test set has its results
            results = read_results(find_results(self.results_dir())[0])
        except ResultsError:
            return False
        return set(results['results']) >= set(results['datasets'])

    # ------------------------------------------------------------------ fingerprints
    def _inputs(self, stage):
        """What a stage's result depends on besides the stages before it."""
        pipe = self.pipe
        common = {k: pipe.get(k) for k in ('scale', 'num_gpu', 'manual_seed', 'dist_params')}
        if stage == 'prune':
            return so.prune_options(pipe)
        if stage == 'compress':
            total_iter = ((pipe.get('distill') or {}).get('train') or {}).get('total_iter')
            return {'compress': pipe.get('compress'), 'recipe': so.recipe_of(pipe), 'total_iter': total_iter}
        if stage == 'distill':
            return dict(common, distill=pipe.get('distill'))
        return dict(common, test=pipe.get('test'), datasets=pipe['datasets'])

    def fingerprints(self):
        """``{stage: fingerprint}``, each chained to the stage before it."""
        prints, previous = {}, ''
        for stage in STAGES:
            text = json.dumps(self._inputs(stage), sort_keys=True, default=str)
            previous = prints[stage] = hashlib.sha256(f'{previous}|{stage}|{text}'.encode()).hexdigest()[:16]
        return prints

    def _records(self):
        path = self.home / 'stages.json'
        return json.loads(path.read_text()) if path.is_file() else {}

    def _record(self, stage, event, fingerprint):
        if node_rank(self.pipe) > 0:  # node 0 keeps the records of the shared experiments folder
            return
        records = self._records()
        records.setdefault(stage, {})[event] = fingerprint
        write_json(self.home / 'stages.json', records)

    # ------------------------------------------------------------------ running
    def run(self, stages=STAGES):
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise so.PipelineOptionError(f'--stages: unknown stage(s) {unknown}; choose from {list(STAGES)}')
        self.options_dir.mkdir(parents=True, exist_ok=True)
        if node_rank(self.pipe) == 0:
            so.save_yaml(self.home / 'pipeline.yml', self.pipe)
        records, prints = self._records(), self.fingerprints()
        for stage in STAGES:
            if stage not in stages:
                continue
            record, fingerprint = records.get(stage, {}), prints[stage]
            # a stage finished before fingerprints were recorded is trusted as it is
            changed = self.force or record.get('done', fingerprint) != fingerprint
            if self.is_done(stage) and not changed:
                self.log(f'[srcomp pipeline] {stage}: already done, skipped')
                continue
            if self.is_done(stage):
                why = '--force' if self.force else 'its options changed since it ran'
                self.log(f'[srcomp pipeline] {stage}: {why}: running it again (BasicSR archives the previous run)')
            self._fresh = self.force or self.is_done(stage) or record.get('started', fingerprint) != fingerprint
            if node_rank(self.pipe) > 0 and stage in ('compress', 'test'):
                self.log(f'[srcomp pipeline] {stage}: node 0 runs it (this is node {node_rank(self.pipe)})')
                continue
            self.log(f'[srcomp pipeline] {stage}: starting')
            self._record(stage, 'started', fingerprint)
            getattr(self, f'_run_{stage}')()
            self._record(stage, 'done', fingerprint)
            self.log(f'[srcomp pipeline] {stage}: done')
        return self

    def _train(self, stage, opt):
        rank = node_rank(self.pipe)  # other nodes write their own copy: node 0's child may be reading its file
        path = self.option_file(stage) if rank == 0 else self.options_dir / f'{stage}.node{rank}.yml'
        so.save_yaml(path, opt)
        args = ['-opt', str(path)]
        if self.experiment(stage).is_dir() and not self._fresh:
            self.log(f'[srcomp pipeline] {stage}: unfinished experiment found, resuming (--auto_resume)')
            args.append('--auto_resume')
        self._call(stage, train_command(self.pipe, args))

    def _call(self, stage, cmd):
        log_path = self.output_dir / f'{self.name}_{stage}.log' if self.output_dir else None
        code = run_command(cmd, self.root, log_path)
        if code != 0:
            where = f' (output: {log_path})' if log_path else ''
            raise StageFailed(f'stage {stage} failed (exit {code}){where}; rerun `srcomp pipeline` to resume, '
                              f'or run by hand: {" ".join(cmd)}')

    def _run_prune(self):
        self._train('prune', so.prune_options(self.pipe))

    def _run_compress(self):
        from ..compress.compressor import compress_collecting_warnings
        from ..compress.report import format_report
        from ..compress.writer import write_outputs
        from ..errors import CompressError

        if not self.final_checkpoint('prune').is_file():
            raise StageFailed(f'compress needs the pruned model {self.final_checkpoint("prune")}: run stage prune')
        cfg = dict(self.pipe.get('compress') or {})
        generated = self.options_dir / 'distill_generated.yml'  # its own file: rewritten when the stage reruns
        total_iter = ((self.pipe.get('distill') or {}).get('train') or {}).get('total_iter')
        always = {'depth_keep': float(cfg.get('depth_keep') or 0.5), 'recipe': so.recipe_of(self.pipe)}
        given = {'init': cfg.get('init'), 'total_iter': total_iter,  # the recipe's schedule then ends with the run
                 'ratio': cfg.get('ratio'), 'params': cfg.get('params')}
        given = {key: value for key, value in given.items() if value is not None}
        try:
            result, said = compress_collecting_warnings(self.option_file('prune'), self.final_checkpoint('prune'),
                                                        generated, **always, **given)
        except CompressError as err:  # said as `srcomp compress` says it; the stage names the command to rerun
            print(f'srcomp compress: {err}', file=sys.stderr)
            raise StageFailed(f'stage compress failed (exit 2): srcomp compress -opt {self.option_file("prune")} '
                              f'--checkpoint {self.final_checkpoint("prune")} --out {generated} '
                              f'{_flags(always)} --force {_flags(given)}'.rstrip()) from err
        write_outputs(result)
        for message in said:
            print(f'srcomp compress: warning: {message}', file=sys.stderr)
        print(format_report(result.report))
        opt = so.distill_options(self.pipe, so.load_yaml(generated))
        tmp = self.option_file('distill').with_suffix('.yml.tmp')
        so.save_yaml(tmp, opt)
        os.replace(tmp, self.option_file('distill'))

    def _run_distill(self):
        if not self.option_file('distill').is_file():
            raise StageFailed(f'distill needs {self.option_file("distill")}: run stage compress')
        self._train('distill', so.load_yaml(self.option_file('distill')))

    def _run_test(self):
        if not self.final_checkpoint('distill').is_file():
            raise StageFailed(f'test needs the distilled student {self.final_checkpoint("distill")}: run distill')
        student = so.load_yaml(self.option_file('distill'))['network_g']
        opt = so.test_options(self.pipe, student, self.final_checkpoint('distill'))
        path = self.option_file('test')
        so.save_yaml(path, opt)
        self._call('test', [sys.executable, '-m', 'srcomp_plugin.test', '-opt', str(path)])
