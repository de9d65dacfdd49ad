"""BasicSR's documented distributed launch (``python -m torch.distributed.launch ... --launcher
pytorch``, as in its ``scripts/dist_train.sh``) works: current torch passes ``--local-rank=N``,
which BasicSR's own parser does not know; and no rank aborts at exit for a process group left alive."""
import socket

import pytest

from helpers import run_module, tiny_train_opt, write_opt


@pytest.mark.slow
def test_torch_distributed_launch_trains_two_processes(sr_dataset, tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    path = write_opt(tmp_path / 'opt.yml', tiny_train_opt(sr_dataset, 'launched', total_iter=2))
    proc = run_module('torch.distributed.launch', ['--nproc_per_node=2', f'--master_port={port}', '-m',
                                                   'srcomp_plugin.train', '-opt', path, '--launcher', 'pytorch'],
                      cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'unrecognized arguments' not in out
    assert 'World size (gpu number): 2' in out
    assert (tmp_path / 'experiments' / 'launched' / 'models' / 'net_g_latest.pth').is_file()


def test_process_group_is_destroyed_before_interpreter_exit(tmp_path):
    """BasicSR never destroys its process group; a gloo rank that exits with it alive can abort
    (SIGABRT) in interpreter finalization after a finished run. ``init_dist`` must leave an
    ``atexit`` hook that destroys it: a hook registered earlier runs later and sees it gone."""
    script = tmp_path / 'ranks.py'
    script.write_text(
        'import atexit\n'
        'import torch.distributed as dist\n'
        'import srcomp_plugin  # noqa: F401\n'
        'from basicsr.utils.options import init_dist\n'
        "atexit.register(lambda: print(f'[group alive at exit: {dist.is_initialized()}]', flush=True))\n"
        "init_dist('pytorch')\n"
        'dist.barrier()\n')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = run_module('torch.distributed.run', ['--nproc_per_node=2', f'--master_port={port}', str(script)],
                      cwd=tmp_path)
    assert proc.stdout.count('[group alive at exit: False]') == 2, proc.stdout + proc.stderr[-3000:]
