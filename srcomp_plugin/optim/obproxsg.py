"""OBProx-SG: the optimizer of stage 1 (sparsity fine-tuning).

Chen et al., "Orthant Based Proximal Stochastic Gradient Method for l1-Regularized
Optimization" (ECML-PKDD 2020), as used by the paper (arXiv 2401.00523). It
minimises ``f(x) + lambda * ||x||_1`` with two kinds of step:

* **Prox-SG step** (soft threshold): ``t = x - lr * g``;
  ``x <- sign(t) * max(|t| - lr * lambda, 0)``. Weights whose magnitude the threshold
  swallows become exactly zero; this is what finds the sparsity pattern.
* **Orthant step**: ``zeta = sign(x)`` (0 where ``x == 0``); ``g' = g + lambda * zeta``
  where ``zeta != 0`` and 0 elsewhere; ``t = x - lr * g'``; ``x <- t`` where
  ``t * zeta > eps``, else 0. Zeros stay zero and a weight that would cross (or come
  within ``eps`` of) its orthant's boundary becomes exactly zero, so sparsity only grows.

Steps are grouped into "epochs" of ``epoch_size`` optimizer steps. The first ``Np`` epochs
are Prox-SG steps, the next ``No`` epochs orthant steps; with a finite ``No`` the cycle
repeats (Np prox, No orthant, ...), with ``No = inf`` (the default, as in the release) the
orthant phase never ends. **The counter counts calls to** :meth:`step` **(optimizer steps),
never samples**; the release's script passed a sample count as ``epochSize``, so its
orthant phase never started (``SparseSRModel`` can reproduce that on request).

The step counter is part of :meth:`state_dict`, so a resumed run (BasicSR saves and
reloads optimizer state dicts) continues in the right phase; the phase itself is derived
from the counter, never stored separately, so the two cannot disagree.

``lr``, ``lambda_`` and ``eps`` are per-parameter-group settings. A group with
``lambda_ = 0`` is outside the L1 term: it takes plain SGD steps in both phases (its
"orthant" is the whole space, so no projection applies). This is how ``SparseSRModel``
regularises only a chosen subset of the parameters.

Every operation is element-wise on the parameter and its (already all-reduced, under DDP)
gradient, so every rank applies the identical step and the ranks stay in sync.
"""
import math
import warnings

import torch
from torch.optim import Optimizer

from ..errors import OptionError

PROX = 'prox-sg'
ORTHANT = 'orthant'


def _parse_count(value, name, allow_inf=False):
    """An integer >= 0 (or inf for ``No``) from an option value such as ``60``, ``'inf'``, ``.inf``."""
    if allow_inf and (value is None or (isinstance(value, str) and value.strip().lower() in ('inf', '.inf'))):
        return math.inf
    if allow_inf and isinstance(value, float) and math.isinf(value) and value > 0:
        return math.inf
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f'OBProxSG: {name} must be a non-negative integer{" or inf" if allow_inf else ""}, '
                          f'got {value!r}.') from None
    if number < 0 or number != int(number):
        raise OptionError(f'OBProxSG: {name} must be a non-negative integer{" or inf" if allow_inf else ""}, '
                          f'got {value!r}.')
    return int(number)


def _parse_float(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f'OBProxSG: {name} must be a number, got {value!r} '
                          f'(in YAML write e.g. "!!float 1e-4" or "1.0e-4").') from None
    if number < 0:
        raise OptionError(f'OBProxSG: {name} must be >= 0, got {number}.')
    return number


class OBProxSG(Optimizer):
    """Orthant-based proximal SGD for ``f(x) + lambda * ||x||_1``.

    Args:
        params: parameters or parameter groups (groups may set ``lr``, ``lambda_``, ``eps``).
        lr (float): step size.
        lambda_ (float): L1 weight (``lambda`` is accepted as a keyword alias, since the
            option files of the release and of BasicSR users spell it that way).
        epoch_size (int): optimizer steps per phase epoch (steps, not samples).
        Np (int): number of Prox-SG epochs per cycle.
        No (int | 'inf'): number of orthant epochs per cycle; ``inf`` (default) never
            returns to Prox-SG.
        eps (float): orthant projection margin (release: 1e-4; 0 is the paper's form).
    """

    def __init__(self, params, lr, lambda_=None, epoch_size=None, Np=None, No=math.inf, eps=0.0, **kwargs):
        if 'lambda' in kwargs:
            if lambda_ is not None:
                raise OptionError('OBProxSG: give either lambda_ or lambda, not both.')
            lambda_ = kwargs.pop('lambda')
        if kwargs:
            raise OptionError(f'OBProxSG: unknown option(s) {sorted(kwargs)}; expected lr, lambda_ (or lambda), '
                              'epoch_size, Np, No, eps.')
        if lambda_ is None:
            raise OptionError('OBProxSG: lambda_ (the L1 weight) is required.')
        if epoch_size is None or Np is None:
            raise OptionError('OBProxSG: epoch_size and Np are required.')
        if isinstance(epoch_size, str) and epoch_size.strip().lower() == 'auto':
            raise OptionError(f'OBProxSG: epoch_size={epoch_size!r} must be resolved to a number of optimizer steps '
                              'before the optimizer is built (SparseSRModel resolves "auto" from the train loader).')
        self.epoch_size = _parse_count(epoch_size, 'epoch_size')
        if self.epoch_size < 1:
            raise OptionError('OBProxSG: epoch_size must be >= 1 optimizer step.')
        self.Np = _parse_count(Np, 'Np')
        self.No = _parse_count(No, 'No', allow_inf=True)
        if self.No == 0 and self.Np == 0:
            raise OptionError('OBProxSG: Np and No cannot both be 0.')
        self.num_steps = 0
        defaults = dict(lr=_parse_float(lr, 'lr'), lambda_=_parse_float(lambda_, 'lambda_'),
                        eps=_parse_float(eps, 'eps'))
        super().__init__(params, defaults)
        for group in self.param_groups:
            for key in ('lr', 'lambda_', 'eps'):
                group[key] = _parse_float(group[key], f'param group {key}')

    # ----------------------------------------------------------------- phase bookkeeping
    def phase_of(self, step_index):
        """Phase (``'prox-sg'`` or ``'orthant'``) of the 0-based optimizer step ``step_index``."""
        epoch = step_index // self.epoch_size
        if not math.isinf(self.No):
            epoch %= self.Np + self.No
        return PROX if epoch < self.Np else ORTHANT

    @property
    def phase(self):
        """Phase the next call to :meth:`step` will use."""
        return self.phase_of(self.num_steps)

    @property
    def epoch(self):
        """Phase epochs completed so far (``num_steps // epoch_size``)."""
        return self.num_steps // self.epoch_size

    def settings(self):
        """The global (not per-group) settings and the counter, JSON-friendly."""
        return {'num_steps': self.num_steps, 'epoch': self.epoch, 'phase': self.phase,
                'epoch_size': self.epoch_size, 'Np': self.Np,
                'No': 'inf' if math.isinf(self.No) else self.No}

    # ----------------------------------------------------------------------- the steps
    @staticmethod
    def _prox_step(p, grad, lr, lambda_):
        p.add_(grad, alpha=-lr)
        shrunk = (p.abs() - lr * lambda_).clamp_(min=0)
        p.copy_(torch.sign(p) * shrunk)

    @staticmethod
    def _orthant_step(p, grad, lr, lambda_, eps):
        zeta = torch.sign(p)
        # Entries with zeta == 0 get a direction here too, but trial * zeta = 0 is never > eps
        # (eps >= 0), so they are zeroed below exactly as with a masked direction; this form
        # skips the two zeros_like/where temporaries (benchmarks/RESULTS.md, stage 1).
        trial = p - lr * (grad + lambda_ * zeta)
        keep = trial * zeta > eps
        p.copy_(trial.masked_fill_(~keep, 0.))

    @torch.no_grad()
    def step(self, closure=None):
        """One OBProx-SG step of the current phase on every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        orthant = self.phase == ORTHANT
        for group in self.param_groups:
            lr, lambda_, eps = group['lr'], group['lambda_'], group['eps']
            for p in group['params']:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError('OBProxSG does not support sparse gradients.')
                if orthant and lambda_ > 0:
                    self._orthant_step(p, p.grad, lr, lambda_, eps)
                else:  # Prox-SG; with lambda_ = 0 this is plain SGD
                    self._prox_step(p, p.grad, lr, lambda_)
        self.num_steps += 1
        return loss

    # ------------------------------------------------------------------ (de)serialising
    def state_dict(self):
        """Torch's optimizer state plus ``'obproxsg'``: the step counter and global settings."""
        state = super().state_dict()
        state['obproxsg'] = {'num_steps': self.num_steps, 'epoch_size': self.epoch_size, 'Np': self.Np,
                             'No': self.No}
        return state

    def load_state_dict(self, state_dict):
        """Restore the groups and the step counter, so the phase continues where it was.

        The phase is recomputed from the restored counter and *this* optimizer's
        ``epoch_size``/``Np``/``No``; a warning says so if they differ from the saved ones.
        """
        if 'obproxsg' not in state_dict:
            raise KeyError('OBProxSG.load_state_dict: the state has no "obproxsg" entry (step counter); it was '
                           'not saved by OBProxSG, so the phase cannot be restored. Start without resuming, or '
                           'resume from a state saved by an OBProxSG run.')
        counters = state_dict['obproxsg']
        torch_state = {k: v for k, v in state_dict.items() if k != 'obproxsg'}
        super().load_state_dict(torch_state)
        self.num_steps = int(counters['num_steps'])
        saved = (counters.get('epoch_size'), counters.get('Np'), counters.get('No'))
        if saved != (self.epoch_size, self.Np, self.No):
            warnings.warn(f'OBProxSG: resumed state was saved with (epoch_size, Np, No) = {saved}, now '
                          f'{(self.epoch_size, self.Np, self.No)}; the phase follows the current settings '
                          f'(step {self.num_steps} is in phase {self.phase!r}).')
