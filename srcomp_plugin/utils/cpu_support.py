"""CPU fallbacks for the three places where BasicSR 1.4.2 assumes CUDA.

BasicSR's training loop is used unchanged; only these functions are replaced. The first
two defer to BasicSR's original whenever CUDA is available, so GPU runs keep BasicSR's own
behaviour (nccl, one device per rank):

* ``basicsr.utils.options.init_dist`` calls ``torch.cuda.set_device`` and defaults to
  nccl. Without CUDA we initialise the gloo backend instead (torchrun and slurm).
* ``BaseModel.model_to_device`` wraps networks in ``DistributedDataParallel`` with
  ``device_ids=[torch.cuda.current_device()]``. On CPU, DDP must get no device ids.
* BasicSR never calls ``destroy_process_group``. A gloo process that exits with its group
  alive can abort in interpreter finalization (SIGABRT, "terminate called without an active
  exception") after a run that finished, so torchrun reports it failed. ``init_dist``
  registers an ``atexit`` hook that destroys the group while Python is still alive, on
  both paths (on GPUs it also silences torch's "process group has NOT been destroyed").
* ``basicsr.train.load_resume_state`` maps the resume state with
  ``torch.cuda.current_device()``. On CPU we load it onto the CPU. On both we load it with
  ``weights_only=True`` and only the numpy types exact resume stores allowed (BasicSR's call
  relies on torch < 2.6 unpickling anything), see :mod:`srcomp_plugin.utils.resume_state`.

The patches are installed by ``import srcomp_plugin``; nothing in site-packages changes.
"""
import atexit
import os
import subprocess

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .resume_state import check_resume, load_state, newest_readable_state

_installed = False


def _init_dist_cpu(launcher, **kwargs):
    """Initialise a gloo process group for torchrun (``pytorch``) or slurm launchers."""
    if launcher == 'pytorch':
        dist.init_process_group(backend='gloo', **kwargs)
    elif launcher == 'slurm':
        port = kwargs.pop('port', None)
        os.environ.setdefault('MASTER_PORT', str(port or 29500))
        if 'MASTER_ADDR' not in os.environ:
            node_list = os.environ['SLURM_NODELIST']
            os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
        dist.init_process_group(backend='gloo')
    else:
        raise ValueError(f'Invalid launcher type: {launcher!r}; use "pytorch" (torchrun) or "slurm".')


def _destroy_process_group():
    """Destroy the default process group if the run left it alive (registered with ``atexit``)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def load_resume_state(opt):
    """BasicSR's ``load_resume_state``, mapped to the current CUDA device (as BasicSR) or the CPU.

    Same file choice as BasicSR (``--auto_resume``: the highest ``N.state`` under
    ``experiments/<name>/training_states``; otherwise ``path.resume_state``), except that an
    unreadable newest state falls back to the previous one; loaded without running code, and the
    teacher's checkpoint kept (:mod:`srcomp_plugin.utils.resume_state`).
    """
    if torch.cuda.is_available():
        device_id = torch.cuda.current_device()
        map_location = lambda storage, loc: storage.cuda(device_id)  # noqa: E731  (BasicSR's mapping)
    else:
        map_location = 'cpu'
    if opt['auto_resume']:
        state_dir = os.path.join('experiments', opt['name'], 'training_states')
        if not os.path.isdir(state_dir):
            return None
        state_path, resume_state = newest_readable_state(state_dir, map_location)
        if state_path is None:
            return None
        opt['path']['resume_state'] = state_path
    else:
        state_path = opt['path'].get('resume_state')
        if state_path is None:
            return None
        resume_state = load_state(state_path, map_location)
    check_resume(opt, resume_state['iter'])
    return resume_state


def install():
    """Install the CPU fallbacks into BasicSR's modules (idempotent)."""
    global _installed
    if _installed:
        return
    import basicsr.train as bsr_train
    import basicsr.utils.options as bsr_options
    from basicsr.models.base_model import BaseModel

    cuda_init_dist = bsr_options.init_dist

    def init_dist(launcher, backend='nccl', **kwargs):
        atexit.register(_destroy_process_group)
        if torch.cuda.is_available():
            return cuda_init_dist(launcher, backend, **kwargs)
        return _init_dist_cpu(launcher, **kwargs)

    cuda_model_to_device = BaseModel.model_to_device

    def model_to_device(self, net):
        if self.opt['dist'] and self.device.type == 'cpu':
            find_unused = self.opt.get('find_unused_parameters', False)
            return DistributedDataParallel(net.to(self.device), find_unused_parameters=find_unused)
        return cuda_model_to_device(self, net)

    bsr_options.init_dist = init_dist
    BaseModel.model_to_device = model_to_device
    bsr_train.load_resume_state = load_resume_state
    _installed = True
