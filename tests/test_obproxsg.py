"""OBProx-SG against a plainly written NumPy reference, on a lasso problem with a known
sparse solution, and through a state_dict round trip (the phase must survive a resume)."""
import io
import math

import numpy as np
import pytest
import torch

from srcomp_plugin.optim import OBProxSG


# ----------------------------------------------------------------------------------------
# Reference: docs/method.md's two steps, written element by element in NumPy (float64).
def ref_prox_step(x, g, lr, lam):
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        t = x[i] - lr * g[i]
        out[i] = np.sign(t) * max(abs(t) - lr * lam, 0.0)
    return out


def ref_orthant_step(x, g, lr, lam, eps):
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        zeta = np.sign(x[i])
        if zeta == 0:
            continue  # zeros stay zero
        t = x[i] - lr * (g[i] + lam * zeta)
        out[i] = t if t * zeta > eps else 0.0
    return out


def ref_phase(step, epoch_size, n_prox, n_orthant):
    epoch = step // epoch_size
    if n_orthant != math.inf:
        epoch %= n_prox + n_orthant
    return 'prox' if epoch < n_prox else 'orthant'


def test_matches_numpy_reference_in_both_phases():
    rng = np.random.default_rng(1)
    shapes = {'conv': (4, 3, 3, 3), 'linear': (5, 7), 'bias': (4,)}
    init = {k: rng.normal(0, 0.3, s) for k, s in shapes.items()}
    params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in init.items()}
    lr, lam, eps, epoch_size, n_prox = 0.05, 0.3, 0.01, 3, 2
    # L1 on conv and linear; the bias group has lambda 0 (outside the L1 term: plain SGD).
    opt = OBProxSG([{'params': [params['conv'], params['linear']]}, {'params': [params['bias']], 'lambda_': 0.0}],
                   lr=lr, lambda_=lam, epoch_size=epoch_size, Np=n_prox, eps=eps)
    ref = {k: v.copy() for k, v in init.items()}
    seen = {'prox_zeroed': 0, 'orthant_zeroed': 0, 'orthant_kept': 0}
    for step in range(12):
        grads = {k: rng.normal(0, 1, s) for k, s in shapes.items()}
        phase = ref_phase(step, epoch_size, n_prox, math.inf)
        assert opt.phase == ('prox-sg' if phase == 'prox' else 'orthant')
        for k in shapes:
            params[k].grad = torch.tensor(grads[k], dtype=torch.float32)
        opt.step()
        for k in ('conv', 'linear'):
            if phase == 'prox':
                new = ref_prox_step(ref[k], grads[k], lr, lam)
                seen['prox_zeroed'] += int(((new == 0) & (ref[k] != 0)).sum())
            else:
                new = ref_orthant_step(ref[k], grads[k], lr, lam, eps)
                seen['orthant_zeroed'] += int(((new == 0) & (ref[k] != 0)).sum())
                seen['orthant_kept'] += int((new != 0).sum())
            ref[k] = new
        ref['bias'] = ref['bias'] - lr * grads['bias']
        for k in shapes:
            np.testing.assert_allclose(params[k].detach().numpy(), ref[k], rtol=0, atol=1e-6,
                                       err_msg=f'{k} after step {step} ({phase})')
            # exact zeros where the reference has zeros (sparsity is exact, not approximate)
            assert np.array_equal(params[k].detach().numpy() == 0, ref[k] == 0), f'{k} zero pattern, step {step}'
    assert opt.num_steps == 12
    # the random data really exercised every branch of both steps
    assert seen['prox_zeroed'] > 0 and seen['orthant_zeroed'] > 0 and seen['orthant_kept'] > 0


def test_phase_schedule_counts_steps_and_cycles_with_finite_no():
    p = torch.zeros(3, requires_grad=True)
    cyc = OBProxSG([p], lr=0.1, lambda_=0.1, epoch_size=2, Np=1, No=2)
    names = {'prox': 'prox-sg', 'orthant': 'orthant'}
    assert [cyc.phase_of(s) for s in range(12)] == [names[ref_phase(s, 2, 1, 2)] for s in range(12)]
    assert [cyc.phase_of(s) for s in (0, 1, 2, 5, 6)] == ['prox-sg', 'prox-sg', 'orthant', 'orthant', 'prox-sg']
    forever = OBProxSG([p], lr=0.1, **{'lambda': 0.1}, epoch_size='4', Np=1, No='inf')
    assert forever.param_groups[0]['lambda_'] == 0.1
    assert forever.phase_of(3) == 'prox-sg' and forever.phase_of(4) == forever.phase_of(10 ** 9) == 'orthant'
    # one step() = one count, whatever the batch size
    for _ in range(5):
        p.grad = torch.ones(3)
        forever.step()
    assert forever.num_steps == 5 and forever.epoch == 1 and forever.phase == 'orthant'


@pytest.mark.parametrize('kwargs, message', [
    ({'epoch_size': 'auto', 'Np': 1}, 'resolved'),
    ({'epoch_size': 0, 'Np': 1}, 'epoch_size'),
    ({'epoch_size': 2, 'Np': -1}, 'Np'),
    ({'epoch_size': 2, 'Np': 1, 'No': 'forever'}, 'No'),
    ({'epoch_size': 2}, 'Np'),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OBProxSG([torch.zeros(2, requires_grad=True)], lr=0.1, lambda_=0.1, **kwargs)


def test_recovers_known_sparse_lasso_solution():
    """min 1/(2m)||Ax - b||^2 + lam ||x||_1 with b = A x_true, x_true 6-sparse of 32."""
    rng = np.random.default_rng(0)
    m, n, lam, batch = 256, 32, 0.05, 32
    a = rng.standard_normal((m, n))
    x_true = np.zeros(n)
    support = np.sort(rng.choice(n, 6, replace=False))
    x_true[support] = rng.choice([-1, 1], 6) * rng.uniform(0.5, 2, 6)
    b = a @ x_true
    # the exact lasso minimiser, by full-batch ISTA run to convergence (plain NumPy)
    step = m / np.linalg.norm(a, 2) ** 2
    x_star = np.zeros(n)
    for _ in range(20000):
        t = x_star - step * a.T @ (a @ x_star - b) / m
        x_star = np.sign(t) * np.maximum(np.abs(t) - step * lam, 0)
    assert np.array_equal(np.flatnonzero(x_star), support)

    torch.manual_seed(0)
    a_t, b_t = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    x = torch.zeros(n, requires_grad=True)
    opt = OBProxSG([x], lr=0.02, lambda_=lam, epoch_size=m // batch, Np=30, eps=0.0)
    for _ in range(150):  # epochs of stochastic mini-batches
        perm = torch.randperm(m)
        for i in range(0, m, batch):
            rows = perm[i:i + batch]
            opt.zero_grad()
            (0.5 * ((a_t[rows] @ x - b_t[rows]) ** 2).mean()).backward()
            opt.step()
    assert opt.phase == 'orthant'
    found = x.detach().double().numpy()
    assert np.array_equal(np.flatnonzero(found), support)  # off-support entries are exactly 0
    np.testing.assert_allclose(found, x_star, atol=2e-3)
    np.testing.assert_allclose(found[support], x_true[support], atol=0.1)  # lasso shrinks by O(lam)


def _run(opt, params, grads):
    for g in grads:
        for p, gp in zip(params, g):
            p.grad = gp.clone()
        opt.step()


def test_state_dict_round_trip_keeps_phase_and_trajectory():
    torch.manual_seed(0)
    params = [torch.randn(6, 4, requires_grad=True), torch.randn(6, requires_grad=True)]
    grads = [[torch.randn(6, 4), torch.randn(6)] for _ in range(10)]
    settings = dict(lr=0.05, lambda_=0.5, epoch_size=2, Np=3, eps=1e-3)
    first = OBProxSG([{'params': params[:1]}, {'params': params[1:], 'lambda_': 0.0}], **settings)
    _run(first, params, grads[:7])
    assert first.phase == 'orthant'
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # what BasicSR's training_states/*.state holds

    copies = [p.detach().clone().requires_grad_() for p in params]
    resumed = OBProxSG([{'params': copies[:1]}, {'params': copies[1:], 'lambda_': 0.0}], **settings)
    assert resumed.phase == 'prox-sg'  # a fresh optimizer starts over: the release's resume defect
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    assert resumed.num_steps == 7 and resumed.phase == 'orthant'
    assert resumed.param_groups[1]['lambda_'] == 0.0

    _run(first, params, grads[7:])
    _run(resumed, copies, grads[7:])
    for p, c in zip(params, copies):
        assert torch.equal(p, c)


def test_loading_a_foreign_state_is_refused():
    p = torch.zeros(2, requires_grad=True)
    adam_state = torch.optim.Adam([p]).state_dict()
    opt = OBProxSG([p], lr=0.1, lambda_=0.1, epoch_size=1, Np=1)
    with pytest.raises(KeyError, match='obproxsg'):
        opt.load_state_dict(adam_state)
