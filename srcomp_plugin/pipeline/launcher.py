"""The command that runs one training stage of a pipeline, from its ``launcher:`` section.

    launcher:
      type: torchrun          # or slurm: srun ... --launcher slurm, inside your allocation
      nproc_per_node: 4       # processes (GPUs) on this node
      nnodes: 2               # several nodes: run `srcomp pipeline` on each, see docs/training.md
      node_rank: 0            # this node's rank
      master_addr: node-a     # required with nnodes > 1 (default 127.0.0.1 on one node)
      master_port: 29500      # required with nnodes > 1 (default: a free port, so two pipelines
                              # on one host do not collide)

One process on one node runs ``python -m srcomp_plugin.train`` directly.
"""
import socket
import sys

from .stage_options import PipelineOptionError

TYPES = ('torchrun', 'slurm')


def free_port():
    """A TCP port that is free on this host now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _int(launcher, key, default, low):
    value = launcher.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise PipelineOptionError(f'launcher.{key} must be an integer >= {low}, got {value!r}')
    return value


def node_rank(pipe):
    """This node's rank (0 on a single node)."""
    return _int(pipe.get('launcher') or {}, 'node_rank', 0, 0)


def train_command(pipe, args):
    """``argv`` that trains with ``args`` (``-opt FILE [--auto_resume]``) as ``launcher:`` says."""
    launcher = pipe.get('launcher') or {}
    kind = launcher.get('type', 'torchrun')
    if kind not in TYPES:
        raise PipelineOptionError(f'launcher.type must be one of {list(TYPES)}, got {kind!r}')
    train = ['-m', 'srcomp_plugin.train', *args]
    if kind == 'slurm':  # srun starts one task per process of the allocation; BasicSR reads SLURM_* itself
        return ['srun', sys.executable, *train, '--launcher', 'slurm']
    nproc = _int(launcher, 'nproc_per_node', 1, 1)
    nnodes = _int(launcher, 'nnodes', 1, 1)
    rank = node_rank(pipe)
    if rank >= nnodes:
        raise PipelineOptionError(f'launcher.node_rank {rank} must be smaller than launcher.nnodes {nnodes}')
    if nproc == 1 and nnodes == 1:
        return [sys.executable, *train]
    if nnodes > 1 and not (launcher.get('master_addr') and launcher.get('master_port')):
        raise PipelineOptionError('launcher: with nnodes > 1, give master_addr (the host of node 0) and master_port '
                                  '(the same on every node)')
    port = _int(launcher, 'master_port', 0, 1) if launcher.get('master_port') else free_port()
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}', f'--nnodes={nnodes}',
            f'--node_rank={rank}', f'--master_addr={launcher.get("master_addr", "127.0.0.1")}',
            f'--master_port={port}', *train, '--launcher', 'pytorch']
