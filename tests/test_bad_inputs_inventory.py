"""``benchmarks/bad_inputs.py``, the whole inventory of bad inputs, keeps working: a few of its
cases (a smuggled YAML tag, files an earlier run left at ``--out``, an unwritable export
target) run through it and end as they should."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_inventory_cases_end_as_they_should(tmp_path):
    cases = ['yaml_python_tag', 'compress_out_exists', 'export_output_under_file']
    proc = subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'bad_inputs.py'), '--only', *cases,
                           '--keep', str(tmp_path / 'ws'), '--json', str(tmp_path / 'out.json')],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '3 bad inputs tried: 3 end as they should, 0 do not' in proc.stdout
    assert not (tmp_path / 'ws' / 'cases' / 'yaml_python_tag' / 'PWNED').exists()
    assert (tmp_path / 'ws' / 'cases' / 'compress_out_exists' / 'distill.yml').read_text() == '# my own option file\n'
