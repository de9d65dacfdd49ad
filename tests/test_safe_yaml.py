"""Option files never run code: a Python YAML tag is refused, by name, at every entry point.

``!!python/object/apply:os.mkdir`` stands in for ``os.system``: with BasicSR's own loader it
creates the marker directory while the options are parsed (the first test shows it does).
"""
from collections import OrderedDict

import pytest
import yaml

from helpers import run_module, tiny_train_opt, write_opt
from srcomp_plugin.utils.safe_yaml import OptionFileError, load_options


def _with_payload(path, marker):
    """Append a key whose value is a Python-object tag to the option file at ``path``."""
    with open(path, 'a', encoding='utf-8') as f:
        f.write(f"payload: !!python/object/apply:os.mkdir ['{marker}']\n")
    return path


def test_plain_yaml_reads_as_before_in_order(tmp_path):
    text = 'name: x\nb: 1e-4\nc: ~\nd: [1, 2.5]\ne: {z: 1, a: 2}\nf: .inf\n'
    (tmp_path / 'a.yml').write_text(text)
    loaded = load_options(tmp_path / 'a.yml')
    assert loaded == yaml.load(text, Loader=yaml.Loader)  # what BasicSR's loader gives for plain YAML
    assert isinstance(loaded, OrderedDict) and list(loaded['e']) == ['z', 'a']


def test_the_payload_runs_with_basicsr_loader(tmp_path):
    path = _with_payload(tmp_path / 'a.yml', tmp_path / 'marker')
    with open(path, encoding='utf-8') as f:
        yaml.load(f, Loader=yaml.Loader)  # BasicSR's ordered_yaml() returns this class (or its C twin)
    assert (tmp_path / 'marker').is_dir()


def test_python_tag_is_refused_with_file_and_line(tmp_path):
    path = _with_payload(tmp_path / 'a.yml', tmp_path / 'marker')
    with pytest.raises(OptionFileError, match=r'a\.yml, line 1: the tag .*python/object/apply'):
        load_options(path)
    assert not (tmp_path / 'marker').exists()


@pytest.mark.parametrize('module', ['srcomp_plugin.train', 'srcomp_plugin.test'])
def test_train_and_test_refuse_a_python_tag(module, sr_dataset, tmp_path):
    path = _with_payload(write_opt(tmp_path / 'opt.yml', tiny_train_opt(sr_dataset, 'tagged')), tmp_path / 'marker')
    proc = run_module(module, ['-opt', path], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'opt.yml, line' in proc.stderr and 'would build a Python object' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'marker').exists() and not (tmp_path / 'experiments' / 'tagged').exists()


def test_pipeline_refuses_a_python_tag(tmp_path):
    path = tmp_path / 'pipe.yml'
    path.write_text('name: p\nscale: 2\n')
    _with_payload(path, tmp_path / 'marker')
    proc = run_module('srcomp_plugin.cli', ['pipeline', '-opt', path], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and 'would build a Python object' in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'marker').exists()
