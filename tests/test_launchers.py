"""BasicSR's documented distributed launch (``python -m torch.distributed.launch ... --launcher
pytorch``, as in its ``scripts/dist_train.sh``) works: current torch passes ``--local-rank=N``,
which BasicSR's own parser does not know; and no rank aborts at exit for a process group left alive."""
import socket
import subprocess
import sys

import pytest

from helpers import run_module, subprocess_env, tiny_train_opt, use_obproxsg, use_teacher, write_opt


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
        'import srcomp_plugin.basicsr_patches\n'
        'srcomp_plugin.basicsr_patches.install()\n'
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


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _two_nodes(opt_path, cwd, *extra):
    """``torchrun --nnodes=2`` twice on this host (one process per node, gloo), as two machines would."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=1', '--nnodes=2',
                               f'--node_rank={rank}', '--master_addr=127.0.0.1', f'--master_port={port}', '-m',
                               'srcomp_plugin.train', '-opt', str(opt_path), '--launcher', 'pytorch', *extra],
                              cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
             for rank in (0, 1)]
    outs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], '\n'.join(out[-3000:] for out in outs)
    return outs[0]


@pytest.mark.slow
def test_two_nodes_train_stage_one_and_stage_three_and_resume(sr_dataset, random_teacher, tmp_path):
    """Multi-node as documented: the same command on every node, a shared experiments folder."""
    prune = use_obproxsg(tiny_train_opt(sr_dataset, 'nodes_prune', total_iter=2))
    out = _two_nodes(write_opt(tmp_path / 'prune.yml', prune), tmp_path)
    assert 'World size (gpu number): 2' in out
    assert (tmp_path / 'experiments' / 'nodes_prune' / 'models' / 'net_g_latest.pth').is_file()

    distill = use_teacher(tiny_train_opt(sr_dataset, 'nodes_distill', total_iter=2), random_teacher)
    distill['logger']['save_checkpoint_freq'] = 1
    _two_nodes(write_opt(tmp_path / 'distill.yml', distill), tmp_path)
    distill['train']['total_iter'] = 4  # a longer run, resumed on both nodes from the shared training state
    out = _two_nodes(write_opt(tmp_path / 'distill.yml', distill), tmp_path, '--auto_resume')
    assert 'Resuming training from epoch' in out and 'iter: 2' in out
    models = tmp_path / 'experiments' / 'nodes_distill' / 'models'
    assert (models / 'net_g_4.pth').is_file() and not list((tmp_path / 'experiments').glob('*_archived_*'))
