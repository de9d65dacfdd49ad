"""Stage 1 of the method: sparsity fine-tuning of a pretrained SR network with OBProx-SG.

``SparseSRModel`` is BasicSR's ``SRModel`` with three differences, each in its own hook:

* ``setup_optimizers``/``get_optimizer`` build :class:`~srcomp_plugin.optim.OBProxSG` from
  ``train.optim_g`` (BasicSR's ``get_optimizer`` knows only Adam), with the L1 term on the
  parameters chosen by ``train.sparsity.regularize`` and ``epoch_size: auto`` resolved to
  the train loader's iterations per epoch;
* ``optimize_parameters`` adds the global density of the measured weights and the phase
  to the log at every ``logger.print_freq`` (so BasicSR's MessageLogger writes them to
  the log and tensorboard as ``density`` and ``orthant_phase``: 0 Prox-SG, 1 orthant); with
  ``logger.use_tb_logger`` it also writes the per-block and per-layer-type densities that
  stage 2 reads (``density_block/<block>``, ``density_layer/<type>``) to the same
  ``tb_logger/<name>`` folder (not to the console line, which they would swamp);
* ``save`` also writes ``models/sparsity_{iter}.json`` (the density report of
  :mod:`srcomp_plugin.measure.sparsity`, plus the optimizer phase) next to BasicSR's
  ``net_g_{iter}.pth``; under DDP it checks that every rank holds identical weights;
* with ``train.sparsity.structured``, ``optimize_parameters`` also chooses the student
  sub-network that ``srcomp compress --init pruned`` will slice out and decays everything
  outside it to exactly zero (:mod:`srcomp_plugin.compress.structured_decay`), so the
  slice is lossless. The choice is kept in the optimizer's state dict (so in BasicSR's
  training state, and ``--auto_resume`` restores it), the log gets ``structured_progress``
  and ``structured_dropped_l1``, and the report gets a ``structured`` entry.
  Together with ``structured``, ``optim_g`` may also be ``Adam`` (no L1 term then): plain SGD
  steps of OBProx-SG's size barely move the kept weights in a few hundred iterations, so the
  network cannot make up for what is decayed, while Adam can (measured in
  ``benchmarks/QUALITY.md``). This is the stage 1 of the ``srcomp`` recipe.

Options (``train``)::

    optim_g:
      type: OBProxSG
      lr: !!float 5e-3
      lambda_: !!float 1e-4      # or "lambda"
      epoch_size: auto           # or an int: optimizer steps per phase epoch
      auto_epoch_unit: iterations  # 'samples' reproduces the release's defect (below)
      Np: 60
      'No': inf                  # quoted: YAML 1.1 reads a bare No as false (BasicSR then fails)
      eps: !!float 1e-4
    sparsity:
      regularize: all            # or a list of name globs; the rest get lambda 0 (plain SGD)
      measure: ~                 # name globs; default EDSR body.*.weight, SwinIR layers.*weight
      structured:                # optional (EDSR family only); absent: no structured decay
        ratio: 0.2               # as srcomp compress --ratio; or params: N (as --params)
        depth_keep: 0.5          # as srcomp compress --depth-keep
        start: 0.2               # fraction of total_iter: the sub-network is chosen here
        end: 0.7                 # fraction of total_iter: the rest is exactly 0 from here on

``auto_epoch_unit: samples`` makes ``epoch_size: auto`` the number of training samples per
epoch (dataset length x enlarge ratio) while the optimizer still counts steps, exactly as
the release did: each phase epoch then lasts batch_size x world_size data epochs, and
with the release's settings the orthant phase never starts. Use it only to reproduce the
release. Under ``torchrun`` every rank applies the same element-wise step to the same
all-reduced gradients; ``save`` gathers a fingerprint of every rank's weights (zero count,
sums) into the report (``ranks``, ``ranks_in_sync``) and warns if they differ.

Density is measured on the trained weights (``net_g``), never on the EMA copy, which is
not sparse; both ``params`` and ``params_ema`` are saved as usual.
"""
import json
import math
import os
from os import path as osp

import torch
import torch.distributed as dist
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY

from ..compress.structured_decay import StructuredDecay, parse_structured
from ..measure.sparsity import default_measure_patterns, density_report, global_density, select_params
from ..errors import OptionError
from ..optim import OBProxSG
from .checkpoint_safety import CheckpointSafetyMixin
from ..optim.obproxsg import ORTHANT

SPARSITY_KEYS = ('regularize', 'measure', 'structured')
STRUCTURED_STATE_KEY = 'srcomp_structured'  # in the optimizer's state dict, i.e. in BasicSR's training state
AUTO_EPOCH_UNITS = ('iterations', 'samples')


@MODEL_REGISTRY.register()
class SparseSRModel(CheckpointSafetyMixin, SRModel):
    """SRModel trained with OBProx-SG for L1 sparsity, with density logs and reports."""

    # ------------------------------------------------------------------------- options
    def init_training_settings(self):
        sparsity_opt = dict(self.opt['train'].get('sparsity') or {})
        unknown = set(sparsity_opt) - set(SPARSITY_KEYS)
        if unknown:
            raise OptionError(f'train.sparsity: unknown key(s) {sorted(unknown)}; allowed: {list(SPARSITY_KEYS)}.')
        names = [n for n, _ in self.get_bare_model(self.net_g).named_parameters()]
        measure = sparsity_opt.get('measure') or default_measure_patterns(self.opt['network_g'])
        self.measure_patterns = [measure] if isinstance(measure, str) else list(measure)
        self.measure_names = select_params(names, self.measure_patterns)
        if not self.measure_names:
            raise OptionError(f'train.sparsity.measure {self.measure_patterns} matches no parameter of '
                              f'network_g ({self.opt["network_g"]["type"]}); names look like {names[:4]}.')
        self.regularize = sparsity_opt.get('regularize', 'all')
        self.structured = None
        if sparsity_opt.get('structured') is not None:
            plan = parse_structured(sparsity_opt['structured'], self.opt['network_g'], self.opt['train']['total_iter'])
            self.structured = StructuredDecay(plan)
        self.trained_iter = 0
        super().init_training_settings()
        self._last_phase = None
        self._tb_writer = None
        if self.structured is not None:
            self._keep_structured_in_optimizer_state()

    def _resolve_epoch_size(self, optim_opt):
        """``epoch_size: auto`` -> iterations per epoch of the train loader (BasicSR's formula)."""
        unit = optim_opt.pop('auto_epoch_unit', 'iterations')
        if unit not in AUTO_EPOCH_UNITS:
            raise OptionError(f'train.optim_g.auto_epoch_unit must be one of {AUTO_EPOCH_UNITS}, got {unit!r}.')
        if optim_opt.get('epoch_size', 'auto') != 'auto':
            return
        dataset_opt = self.opt.get('datasets', {}).get('train')
        if dataset_opt is None:
            raise OptionError('train.optim_g.epoch_size: auto needs datasets.train; give an integer instead.')
        from basicsr.data import build_dataset

        samples = len(build_dataset(dataset_opt)) * dataset_opt.get('dataset_enlarge_ratio', 1)
        if unit == 'samples':
            optim_opt['epoch_size'] = samples
            how = f'{samples} training samples, counted as optimizer steps (the release\'s behaviour)'
        else:
            optim_opt['epoch_size'] = math.ceil(samples / (dataset_opt['batch_size_per_gpu'] * self.opt['world_size']))
            how = (f"{samples} samples / (batch {dataset_opt['batch_size_per_gpu']} x world size "
                   f"{self.opt['world_size']}) iterations per epoch")
        get_root_logger().info(f"OBProx-SG epoch_size auto = {optim_opt['epoch_size']} ({how}).")

    def setup_optimizers(self):
        optim_opt = dict(self.opt['train']['optim_g'])
        optim_type = optim_opt.pop('type')
        self.uses_obproxsg = optim_type == 'OBProxSG'
        if not self.uses_obproxsg:
            if optim_type != 'Adam' or self.structured is None:
                raise OptionError(f'SparseSRModel trains with OBProx-SG: set train.optim_g.type to OBProxSG (Adam is '
                                  f'accepted only together with train.sparsity.structured; got {optim_type!r}).')
            self.optimizer_g = self.get_optimizer(optim_type, [p for p in self.net_g.parameters() if p.requires_grad],
                                                  **optim_opt)
            self.optimizers.append(self.optimizer_g)
            get_root_logger().info('Stage 1 with Adam and structured decay: no L1 term; density measured on '
                                   f'{len(self.measure_names)} tensors ({", ".join(self.measure_patterns)}).')
            return
        self._resolve_epoch_size(optim_opt)
        logger = get_root_logger()
        named = []
        for name, param in self.get_bare_model(self.net_g).named_parameters():
            if param.requires_grad:
                named.append((name, param))
            else:
                logger.warning(f'Params {name} will not be optimized.')
        reg_names = set(select_params([n for n, _ in named], self.regularize))
        if not reg_names:
            raise OptionError(f'train.sparsity.regularize {self.regularize!r} matches no trainable parameter.')
        groups = [{'params': [p for n, p in named if n in reg_names], 'name': 'l1'}]
        free = [p for n, p in named if n not in reg_names]
        if free:
            groups.append({'params': free, 'name': 'no_l1', 'lambda_': 0.0})
        self.optimizer_g = self.get_optimizer(optim_type, groups, **optim_opt)
        self.optimizers.append(self.optimizer_g)
        logger.info(f'OBProx-SG: L1 on {len(reg_names)} of {len(named)} trainable tensors '
                    f'({sum(p.numel() for n, p in named if n in reg_names):,} weights); density measured on '
                    f'{len(self.measure_names)} tensors ({", ".join(self.measure_patterns)}); '
                    f'{self.optimizer_g.settings()}.')

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type == 'OBProxSG':
            return OBProxSG(params, lr, **kwargs)
        return super().get_optimizer(optim_type, params, lr, **kwargs)

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        self.trained_iter = resume_state['iter']
        logger = get_root_logger()
        if self.uses_obproxsg:
            logger.info(f'OBProx-SG resumed at optimizer step {self.optimizer_g.num_steps}: '
                        f'{self.optimizer_g.settings()}.')
        if self.structured is None:
            return
        if self.structured.selection is not None:
            logger.info(f'structured decay resumed with the sub-network chosen at iteration '
                        f'{self.structured.plan.start_iter}: {self.structured.selection}.')
        elif resume_state['iter'] > self.structured.plan.start_iter:
            logger.warning(f'structured decay: the resumed state (iteration {resume_state["iter"]}) has no '
                           f'selection although train.sparsity.structured.start is iteration '
                           f'{self.structured.plan.start_iter}; it is chosen now, on the resumed weights.')

    # --------------------------------------------------------------- structured decay
    def _keep_structured_in_optimizer_state(self):
        """Save the structured selection with the optimizer's state, so ``--auto_resume`` restores it.

        BasicSR's training state holds the optimizers' state dicts, and resuming loads them
        before training continues: the selection rides along there instead of in a side file.
        """
        def save(optimizer, state):
            state[STRUCTURED_STATE_KEY] = self.structured.state_dict()

        def load(optimizer, state):
            saved = state.pop(STRUCTURED_STATE_KEY, None)
            if saved is not None:
                self.structured.load_state_dict(saved, self._param_shapes())

        self.optimizer_g.register_state_dict_post_hook(save)
        self.optimizer_g.register_load_state_dict_pre_hook(load)

    def _named_params(self):
        return list(self.get_bare_model(self.net_g).named_parameters())

    def _param_shapes(self):
        return {name: p.shape for name, p in self._named_params()}

    def _select_structured(self, current_iter):
        decay = self.structured
        decay.select(self._named_params())
        total = sum(p.numel() for _, p in self._named_params())
        get_root_logger().info(
            f'structured decay: {decay.shape.student_type} sub-network chosen on the weights after iteration '
            f'{current_iter - 1}: stream channels {decay.selection["stream"]}, blocks {decay.selection["blocks"]}; '
            f'{decay.num_dropped():,} of {total:,} weights fall linearly to 0 by iteration {decay.plan.end_iter}.')

    # ------------------------------------------------------------------------ training
    def _measured_tensors(self):
        params = dict(self.get_bare_model(self.net_g).named_parameters())
        return [params[n] for n in self.measure_names]

    def optimize_parameters(self, current_iter):
        if self.structured is not None and self.structured.due(current_iter):
            self._select_structured(current_iter)
        super().optimize_parameters(current_iter)
        self.trained_iter = current_iter
        if self.structured is not None:
            self.structured.apply(self._named_params(), current_iter)
        phase = self._track_phase(current_iter) if self.uses_obproxsg else None
        if current_iter % self.opt['logger']['print_freq'] == 0:
            density = global_density(self._measured_tensors())
            self.log_dict['density'] = density
            if phase is not None:
                self.log_dict['orthant_phase'] = 1.0 if phase == ORTHANT else 0.0
            get_root_logger().info(f'sparsity: iter {current_iter}, phase {phase}, density {density:.6f}')
            if self.structured is not None:
                self._log_structured(current_iter)
            self._write_density_scalars(current_iter)

    def _write_density_scalars(self, current_iter):
        """Per-block and per-layer-type densities as tensorboard scalars, where BasicSR keeps a tb_logger."""
        logger_opt = self.opt['logger']
        if not logger_opt.get('use_tb_logger') or 'debug' in self.opt['name'] or self.opt.get('rank', 0) != 0:
            return
        if self._tb_writer is None:  # BasicSR's tb_logger folder; tensorboard reads every event file in it
            from torch.utils.tensorboard import SummaryWriter

            self._tb_writer = SummaryWriter(log_dir=osp.join(self.opt['root_path'], 'tb_logger', self.opt['name']))
        params = dict(self._named_params())
        report = density_report({n: params[n].detach() for n in self.measure_names}, self.measure_names,
                                self.opt['network_g'].get('type'))
        for prefix, densities in (('density_block', report['blocks']), ('density_layer', report['layer_types'])):
            for key, value in densities.items():
                self._tb_writer.add_scalar(f'{prefix}/{key}', value, current_iter)
        self._tb_writer.flush()

    def _track_phase(self, current_iter):
        """OBProx-SG's phase of this iteration's step, with a log line when it changes."""
        optimizer = self.optimizer_g
        phase = optimizer.phase_of(optimizer.num_steps - 1)
        if phase != self._last_phase:
            step = optimizer.num_steps - 1
            get_root_logger().info(f'OBProx-SG: {phase} steps from iter {current_iter} '
                                   f'(optimizer step {step}, phase epoch {step // optimizer.epoch_size}).')
            self._last_phase = phase
        return phase

    def _log_structured(self, current_iter):
        """``structured_progress`` (0 before start, 1 from end on) and the dropped part's share of L1 mass."""
        decay = self.structured
        self.log_dict['structured_progress'] = 1.0 - decay.keep_fraction(current_iter)
        if decay.masks is not None:
            self.log_dict['structured_dropped_l1'] = decay.dropped_l1(self._named_params())

    # --------------------------------------------------------------------- checkpoints
    def _rank_fingerprints(self):
        """Step counter, zero count and float64 sums of every parameter, gathered from all ranks."""
        with torch.no_grad():
            params = [p.detach().double() for p in self.get_bare_model(self.net_g).parameters()]
            mine = {'num_steps': self.trained_iter,
                    'num_zero': int(sum(int((p == 0).sum()) for p in params)),
                    'sum': float(sum(float(p.sum()) for p in params)),
                    'abs_sum': float(sum(float(p.abs().sum()) for p in params))}
        if not (self.opt['dist'] and dist.is_available() and dist.is_initialized()):
            return [dict(mine, rank=0)]
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, mine)
        return [dict(g, rank=i) for i, g in enumerate(gathered)]

    def sparsity_report(self, current_iter):
        """The density report of the trained weights plus the optimizer's phase."""
        state = {n: p for n, p in self.get_bare_model(self.net_g).named_parameters()}
        report = {'iter': 'latest' if current_iter == -1 else current_iter,
                  'network': 'net_g (params; the trained weights, not EMA)'}
        optimizer = self.optimizer_g
        report['optimizer'] = {'type': type(optimizer).__name__, 'phase': None,
                               'lr': [g['lr'] for g in optimizer.param_groups]}
        if self.uses_obproxsg:
            last_phase = optimizer.phase_of(optimizer.num_steps - 1) if optimizer.num_steps else None
            report['optimizer'].update(optimizer.settings(), phase=last_phase, next_phase=optimizer.phase,
                                       lambda_=[g['lambda_'] for g in optimizer.param_groups])
        report.update(density_report(state, self.measure_patterns, self.opt['network_g']['type']))
        if self.structured is not None:
            report['structured'] = self.structured.report(self._named_params(), self.trained_iter)
        return report

    def save(self, epoch, current_iter):
        super().save(epoch, current_iter)
        ranks = self._rank_fingerprints()  # collective under DDP: every rank calls save
        rank, _ = get_dist_info()
        if rank != 0:
            return
        logger = get_root_logger()
        report = self.sparsity_report(current_iter)
        report['ranks'] = ranks
        report['ranks_in_sync'] = all({k: v for k, v in r.items() if k != 'rank'} ==
                                      {k: v for k, v in ranks[0].items() if k != 'rank'} for r in ranks)
        if not report['ranks_in_sync']:
            logger.warning(f'OBProx-SG: ranks hold different weights: {ranks}')
        label = 'latest' if current_iter == -1 else current_iter
        path = osp.join(self.opt['path']['models'], f'sparsity_{label}.json')
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(report, f, indent=1)
        logger.info(f"Sparsity report {path}: global density {report['global_density']:.6f} "
                    f"({report['num_zero']:,} zeros of {report['num_measured']:,}), phase "
                    f"{report['optimizer']['phase']}, ranks in sync: {report['ranks_in_sync']}.")
