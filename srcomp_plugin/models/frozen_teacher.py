"""The distillation teacher: ``network_t`` loaded from ``path.pretrain_network_t``, frozen.

``DistillSRModel`` (the live teacher) and ``srcomp teacher-cache`` (which stores the teacher's
outputs once) build it with this one function, so the cache holds what the live teacher
would compute. Frozen means: eval mode, ``requires_grad_(False)``, never wrapped in DDP,
never saved; it is not ``net_g``, so SRModel's optimizer, EMA and ``save`` never see it.
SwinIR teachers run the fused window attention and EDSR teachers the fused channels_last
convolutions of :mod:`srcomp_plugin.accel` (same weights, same outputs to float rounding).
"""
import os.path as osp
from copy import deepcopy

from basicsr.archs import build_network

from ..accel import use_cpu_fast_paths
from ..errors import InputFileError, OptionError
from ..utils.checkpoint_io import load_weights


def build_teacher(opt, device, logger=None):
    """The frozen teacher of the option dict ``opt`` on ``device``.

    Reads ``network_t``, ``path.pretrain_network_t`` (required), ``path.param_key_t`` (default
    ``params``, falling back to ``params`` as BasicSR does; ``~`` for a bare state dict) and
    ``path.strict_load_t`` (default true).
    """
    if not opt.get('network_t'):
        raise OptionError('DistillSRModel needs network_t: the teacher architecture (e.g. type: EDSR, '
                          'num_feat: 64, num_block: 16, upscale: <scale>)')
    path_opt = opt.get('path') or {}
    load_path = path_opt.get('pretrain_network_t')
    if not load_path:
        raise OptionError('DistillSRModel needs path.pretrain_network_t: the pretrained teacher checkpoint '
                          '(a BasicSR .pth with "params" or "params_ema")')
    load_path = osp.expanduser(str(load_path))
    if not osp.isfile(load_path):
        hint = ''
        if path_opt.get('resume_state'):  # BasicSR's check_resume, run without srcomp's entry points
            hint = (' (on resume, BasicSR points every pretrain_network_* at models/; list network_t in '
                    'path.ignore_resume_networks, or call srcomp_plugin.basicsr_patches.install() first)')
        raise InputFileError(f'path.pretrain_network_t: teacher checkpoint {load_path} does not exist{hint}')
    net_t = build_network(deepcopy(opt['network_t'])).to(device)
    load_weights(net_t, load_path, path_opt.get('param_key_t', 'params'), path_opt.get('strict_load_t', True), 't',
                 logger)
    net_t.eval()
    net_t.requires_grad_(False)
    use_cpu_fast_paths(net_t)
    if logger is not None:
        n_params = sum(p.numel() for p in net_t.parameters())
        logger.info(f'Teacher network_t: {type(net_t).__name__} with {n_params:,d} parameters (frozen) from '
                    f'{load_path}.')
    return net_t
