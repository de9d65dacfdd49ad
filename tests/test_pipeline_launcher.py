"""``launcher:`` in pipeline files: the command each training stage runs."""
import sys

import pytest

from srcomp_plugin.pipeline.launcher import train_command
from srcomp_plugin.pipeline.stage_options import PipelineOptionError

ARGS = ['-opt', 'prune.yml']


def test_one_process_runs_the_entry_point_directly():
    assert train_command({}, ARGS) == [sys.executable, '-m', 'srcomp_plugin.train', *ARGS]


def test_torchrun_on_one_node_gets_a_free_port_of_its_own():
    cmd = train_command({'launcher': {'nproc_per_node': 2}}, ARGS)
    assert cmd[:3] == [sys.executable, '-m', 'torch.distributed.run']
    assert {'--nproc_per_node=2', '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1'} <= set(cmd)
    assert cmd[-3:] == ['prune.yml', '--launcher', 'pytorch']
    port = next(int(a.split('=')[1]) for a in cmd if a.startswith('--master_port='))
    assert 1024 < port < 65536


def test_several_nodes_need_the_rendezvous_and_pass_it_on():
    launcher = {'nproc_per_node': 1, 'nnodes': 2, 'node_rank': 1, 'master_addr': 'node-a', 'master_port': 29555}
    cmd = train_command({'launcher': launcher}, ARGS)
    assert {'--nnodes=2', '--node_rank=1', '--master_addr=node-a', '--master_port=29555'} <= set(cmd)
    with pytest.raises(PipelineOptionError, match='with nnodes > 1, give master_addr'):
        train_command({'launcher': {'nnodes': 2, 'node_rank': 1}}, ARGS)
    with pytest.raises(PipelineOptionError, match='node_rank 2 must be smaller than launcher.nnodes 2'):
        train_command({'launcher': dict(launcher, node_rank=2)}, ARGS)
    with pytest.raises(PipelineOptionError, match='nproc_per_node must be an integer >= 1'):
        train_command({'launcher': {'nproc_per_node': '4'}}, ARGS)


def test_slurm_runs_srun_with_basicsrs_slurm_launcher():
    assert train_command({'launcher': {'type': 'slurm'}}, ARGS) == [
        'srun', sys.executable, '-m', 'srcomp_plugin.train', *ARGS, '--launcher', 'slurm']
    with pytest.raises(PipelineOptionError, match="launcher.type must be one of \\['torchrun', 'slurm'\\]"):
        train_command({'launcher': {'type': 'mpirun'}}, ARGS)
