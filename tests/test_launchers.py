"""BasicSR's documented distributed launch (``python -m torch.distributed.launch ... --launcher
pytorch``, as in its ``scripts/dist_train.sh``) works: current torch passes ``--local-rank=N``,
which BasicSR's own parser does not know."""
import socket

import pytest

from conftest import run_module, tiny_train_opt, write_opt


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
