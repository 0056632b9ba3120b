"""jaxfund.schedules against torch.optim.lr_scheduler (torch 2.13, float64 Python floats).

Each row of ``ROWS`` builds our schedule and the torch scheduler; the value at count ``t`` must
equal ``get_last_lr()[0]`` after ``t`` steps, for ``t = 0..N``, in float32 and float64.

Tolerance, from the arithmetic: ``|ours - torch| <= rtol |torch| + atol`` with ``rtol`` a few
ulps of our dtype's arithmetic (1e-6 in float32, 1e-12 in float64) and ``atol`` the dtype's
smallest normal number (relative accuracy ends there) plus torch's own
rounding, which our closed forms do not repeat: torch subtracts lr-sized float64 numbers
(``1 + cos x``, ``(end - start) * pct + start``), an absolute error of a few ``eps64 * lr``
(``4 eps64 * lr``), and CosineAnnealingLR's recursion rounds ``+ eta_min`` near the minimum and
then multiplies that rounding by up to ``(1 + cos(pi/T)) / (1 - cos(pi/T)) ~ 4 T**2 / pi**2``,
summed over the steps near the minimum (``sum 1/k**2 < pi**2/6`` on each side): at most
``eps64 * eta_min * T**2``. ``multiplicative_lr`` multiplies ``t`` rounded factors:
``rtol = t eps`` of our dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from jaxfund import optimizers, schedules

N = 1200
EPS64 = np.finfo(np.float64).eps
RTOL = {"float32": 1e-6, "float64": 1e-12}
LS = torch.optim.lr_scheduler


def _inv(t):
    return 1.0 / (1.0 + 0.01 * t)


def _mult(t):
    return 1.0 - 1.0 / (t + 200.0)


def _scale(x):
    return 1.0 / (1.0 + 0.5 * x)


def _scale_it(x):
    return 1.0 / (1.0 + 0.002 * x)


# id -> (ours, torch (optimizer -> scheduler), lr, eta_min * T_max**2 of a cosine, steps)
# ``ours`` takes lr; ``torch`` takes the optimizer (built with lr).
ROWS = {
    "lambda": (lambda lr: schedules.lambda_lr(lr, _inv),
               lambda o: LS.LambdaLR(o, _inv), 0.1, 0, N),
    "multiplicative": (lambda lr: schedules.multiplicative_lr(lr, _mult),
                       lambda o: LS.MultiplicativeLR(o, _mult), 0.1, 0, N),
    "step": (lambda lr: schedules.step_lr(lr, 30),
             lambda o: LS.StepLR(o, 30), 0.1, 0, N),
    "step_gamma": (lambda lr: schedules.step_lr(lr, 7, gamma=0.9),
                   lambda o: LS.StepLR(o, 7, gamma=0.9), 0.5, 0, N),
    "multi_step": (lambda lr: schedules.multi_step_lr(lr, [30, 80, 80, 500]),
                   lambda o: LS.MultiStepLR(o, [30, 80, 80, 500]), 0.1, 0, N),
    "multi_step_unsorted_zero": (lambda lr: schedules.multi_step_lr(lr, [900, 0, 3], 0.5),
                                 lambda o: LS.MultiStepLR(o, [900, 0, 3], 0.5), 0.1, 0, N),
    "constant": (lambda lr: schedules.constant_lr(lr),
                 lambda o: LS.ConstantLR(o), 0.1, 0, N),
    "constant_long": (lambda lr: schedules.constant_lr(lr, 0.7, 600),
                      lambda o: LS.ConstantLR(o, 0.7, 600), 0.1, 0, N),
    "constant_zero_iters": (lambda lr: schedules.constant_lr(lr, 0.5, 0),
                            lambda o: LS.ConstantLR(o, 0.5, 0), 0.1, 0, N),
    "linear": (lambda lr: schedules.linear_lr(lr),
               lambda o: LS.LinearLR(o), 0.1, 0, N),
    "linear_to_zero": (lambda lr: schedules.linear_lr(lr, 1.0, 0.0, 1000),
                       lambda o: LS.LinearLR(o, 1.0, 0.0, 1000), 0.1, 0, N),
    "linear_up": (lambda lr: schedules.linear_lr(lr, 0.01, 0.9, 777),
                  lambda o: LS.LinearLR(o, 0.01, 0.9, 777), 0.1, 0, N),
    "linear_zero_iters": (lambda lr: schedules.linear_lr(lr, 0.25, 1.0, 0),
                          lambda o: LS.LinearLR(o, 0.25, 1.0, 0), 0.1, 0, N),
    "exponential": (lambda lr: schedules.exponential_lr(lr, 0.99),
                    lambda o: LS.ExponentialLR(o, 0.99), 0.1, 0, N),
    "exponential_fast": (lambda lr: schedules.exponential_lr(lr, 0.93),
                         lambda o: LS.ExponentialLR(o, 0.93), 1.0, 0, N),
    "exponential_zero": (lambda lr: schedules.exponential_lr(lr, 0.0),
                         lambda o: LS.ExponentialLR(o, 0.0), 0.1, 0, N),
    "polynomial": (lambda lr: schedules.polynomial_lr(lr),
                   lambda o: LS.PolynomialLR(o), 0.1, 0, N),
    "polynomial_long": (lambda lr: schedules.polynomial_lr(lr, 1000, 2.0),
                        lambda o: LS.PolynomialLR(o, 1000, 2.0), 0.1, 0, N),
    "polynomial_sqrt": (lambda lr: schedules.polynomial_lr(lr, 999, 0.5),
                        lambda o: LS.PolynomialLR(o, 999, 0.5), 0.1, 0, N),
    "polynomial_power0": (lambda lr: schedules.polynomial_lr(lr, 10, 0.0),
                          lambda o: LS.PolynomialLR(o, 10, 0.0), 0.1, 0, N),
    "polynomial_zero_iters": (lambda lr: schedules.polynomial_lr(lr, 0),
                              lambda o: LS.PolynomialLR(o, 0), 0.1, 0, N),
    "cosine": (lambda lr: schedules.cosine_annealing_lr(lr, 100),
               lambda o: LS.CosineAnnealingLR(o, 100), 0.1, 0, N),
    "cosine_short": (lambda lr: schedules.cosine_annealing_lr(lr, 7, 0.01),
                     lambda o: LS.CosineAnnealingLR(o, 7, 0.01), 0.1, 0.01 * 7**2, N),
    "cosine_long_eta": (lambda lr: schedules.cosine_annealing_lr(lr, 1000, 0.01),
                        lambda o: LS.CosineAnnealingLR(o, 1000, 0.01), 0.1, 0.01 * 1000**2, 2500),
    "cosine_333": (lambda lr: schedules.cosine_annealing_lr(lr, 333, 0.05),
                   lambda o: LS.CosineAnnealingLR(o, 333, 0.05), 0.1, 0.05 * 333**2, N),
    "cosine_one": (lambda lr: schedules.cosine_annealing_lr(lr, 1),
                   lambda o: LS.CosineAnnealingLR(o, 1), 0.1, 0, N),
    "cosine_rising": (lambda lr: schedules.cosine_annealing_lr(lr, 50, 0.3),
                      lambda o: LS.CosineAnnealingLR(o, 50, 0.3), 0.1, 0.3 * 50**2, N),
    "warm_restarts": (lambda lr: schedules.cosine_annealing_warm_restarts(lr, 10),
                      lambda o: LS.CosineAnnealingWarmRestarts(o, 10), 0.1, 0, N),
    "warm_restarts_mult": (lambda lr: schedules.cosine_annealing_warm_restarts(lr, 10, 2, 1e-3),
                           lambda o: LS.CosineAnnealingWarmRestarts(o, 10, 2, 1e-3), 0.1, 0, N),
    "warm_restarts_mult3": (lambda lr: schedules.cosine_annealing_warm_restarts(lr, 1, 3),
                            lambda o: LS.CosineAnnealingWarmRestarts(o, 1, 3), 0.1, 0, N),
    "cyclic": (lambda lr: schedules.cyclic_lr(lr, 0.1, 100),
               lambda o: LS.CyclicLR(o, 0.001, 0.1, 100, cycle_momentum=False), 0.001, 0, N),
    "cyclic_asym": (lambda lr: schedules.cyclic_lr(lr, 0.1, 30, 70, "triangular2"),
                    lambda o: LS.CyclicLR(o, 0.001, 0.1, 30, 70, "triangular2",
                                          cycle_momentum=False), 0.001, 0, N),
    "cyclic_exp_range": (lambda lr: schedules.cyclic_lr(lr, 0.1, 50, mode="exp_range",
                                                        gamma=0.997),
                         lambda o: LS.CyclicLR(o, 0.001, 0.1, 50, mode="exp_range", gamma=0.997,
                                               cycle_momentum=False), 0.001, 0, N),
    "cyclic_scale_fn": (lambda lr: schedules.cyclic_lr(lr, 0.1, 40, 20, scale_fn=_scale),
                        lambda o: LS.CyclicLR(o, 0.001, 0.1, 40, 20, scale_fn=_scale,
                                              cycle_momentum=False), 0.001, 0, N),
    "cyclic_scale_fn_iter": (
        lambda lr: schedules.cyclic_lr(lr, 0.1, 40, scale_fn=_scale_it, scale_mode="iterations"),
        lambda o: LS.CyclicLR(o, 0.001, 0.1, 40, scale_fn=_scale_it, scale_mode="iterations",
                              cycle_momentum=False), 0.001, 0, N),
    "one_cycle": (lambda lr: schedules.one_cycle_lr(lr, N),
                  lambda o: LS.OneCycleLR(o, 0.1, N, cycle_momentum=False), 0.1, 0, N),
    "one_cycle_linear": (lambda lr: schedules.one_cycle_lr(lr, epochs=10, steps_per_epoch=105,
                                                           anneal_strategy="linear"),
                         lambda o: LS.OneCycleLR(o, 0.1, epochs=10, steps_per_epoch=105,
                                                 anneal_strategy="linear",
                                                 cycle_momentum=False), 0.1, 0, 1050),
    "one_cycle_three": (lambda lr: schedules.one_cycle_lr(lr, 1001, pct_start=0.25,
                                                          three_phase=True, div_factor=10.0,
                                                          final_div_factor=100.0),
                        lambda o: LS.OneCycleLR(o, 0.1, 1001, pct_start=0.25, three_phase=True,
                                                div_factor=10.0, final_div_factor=100.0,
                                                cycle_momentum=False), 0.1, 0, 1001),
    "one_cycle_three_linear": (
        lambda lr: schedules.one_cycle_lr(lr, 1000, pct_start=0.1, anneal_strategy="linear",
                                          three_phase=True),
        lambda o: LS.OneCycleLR(o, 0.1, 1000, pct_start=0.1, anneal_strategy="linear",
                                three_phase=True, cycle_momentum=False), 0.1, 0, 1000),
    "sequential": (
        lambda lr: schedules.sequential_lr(lr, [schedules.linear_lr(lr, 0.1, 1.0, 50),
                                                schedules.cosine_annealing_lr(lr, 500)], [50]),
        lambda o: LS.SequentialLR(o, [LS.LinearLR(o, 0.1, 1.0, 50),
                                      LS.CosineAnnealingLR(o, 500)], [50]), 0.1, 0, N),
    "sequential_three": (
        lambda lr: schedules.sequential_lr(
            lr, [schedules.multiplicative_lr(lr, _mult), schedules.exponential_lr(lr, 0.99),
                 schedules.cyclic_lr(lr, 0.3, 25)], [100, 400]),
        lambda o: LS.SequentialLR(o, [LS.MultiplicativeLR(o, _mult), LS.ExponentialLR(o, 0.99),
                                      LS.CyclicLR(o, 0.1, 0.3, 25, cycle_momentum=False)],
                                  [100, 400]), 0.1, 0, N),
    "sequential_swa": (
        lambda lr: schedules.sequential_lr(lr, [schedules.swa_lr(lr, 0.02, 5),
                                                schedules.step_lr(lr, 100, 0.5),
                                                schedules.cosine_annealing_warm_restarts(lr, 30)],
                                           [10, 600]),
        lambda o: LS.SequentialLR(o, [torch.optim.swa_utils.SWALR(o, 0.02, 5),
                                      LS.StepLR(o, 100, 0.5),
                                      LS.CosineAnnealingWarmRestarts(o, 30)], [10, 600]),
        0.1, 0, N),
    "chained": (
        lambda lr: schedules.chained_scheduler(lr, [schedules.constant_lr(lr, 0.1, 20),
                                                    schedules.exponential_lr(lr, 0.995)]),
        lambda o: LS.ChainedScheduler([LS.ConstantLR(o, 0.1, 20), LS.ExponentialLR(o, 0.995)]),
        0.1, 0, N),
    "chained_overwrite": (
        lambda lr: schedules.chained_scheduler(lr, [schedules.exponential_lr(lr, 0.9),
                                                    schedules.lambda_lr(lr, _inv),
                                                    schedules.step_lr(lr, 3, 0.5),
                                                    schedules.linear_lr(lr, 0.5, 1.0, 40)]),
        lambda o: LS.ChainedScheduler([LS.ExponentialLR(o, 0.9), LS.LambdaLR(o, _inv),
                                       LS.StepLR(o, 3, 0.5), LS.LinearLR(o, 0.5, 1.0, 40)]),
        0.1, 0, N),
    "chained_all_ratio": (
        lambda lr: schedules.chained_scheduler(lr, [
            schedules.linear_lr(lr, 0.2, 1.0, 30), schedules.multi_step_lr(lr, [100, 700]),
            schedules.polynomial_lr(lr, 1100, 1.5), schedules.multiplicative_lr(lr, _mult)]),
        lambda o: LS.ChainedScheduler([LS.LinearLR(o, 0.2, 1.0, 30), LS.MultiStepLR(o, [100, 700]),
                                       LS.PolynomialLR(o, 1100, 1.5),
                                       LS.MultiplicativeLR(o, _mult)]), 0.1, 0, N),
    "chained_cyclic": (
        lambda lr: schedules.chained_scheduler(lr, [
            schedules.cyclic_lr(lr, 0.5, 20), schedules.cosine_annealing_warm_restarts(lr, 15),
            schedules.exponential_lr(lr, 0.999)]),
        lambda o: LS.ChainedScheduler([
            LS.CyclicLR(o, 0.1, 0.5, 20, cycle_momentum=False),
            LS.CosineAnnealingWarmRestarts(o, 15), LS.ExponentialLR(o, 0.999)]), 0.1, 0, N),
    "swa_cos": (lambda lr: schedules.swa_lr(lr, 0.01),
                lambda o: torch.optim.swa_utils.SWALR(o, 0.01), 0.1, 0, N),
    "swa_linear": (lambda lr: schedules.swa_lr(lr, 0.05, 700, "linear"),
                   lambda o: torch.optim.swa_utils.SWALR(o, 0.05, 700, "linear"), 0.1, 0, N),
    "swa_long_cos": (lambda lr: schedules.swa_lr(lr, 0.5, 1000),
                     lambda o: torch.optim.swa_utils.SWALR(o, 0.5, 1000), 0.1, 0, N),
    "swa_zero_epochs": (lambda lr: schedules.swa_lr(lr, 0.01, 0),
                        lambda o: torch.optim.swa_utils.SWALR(o, 0.01, 0), 0.1, 0, N),
}

# multiplicative_lr multiplies up to ``t`` rounded factors of our dtype.
PRODUCTS = {"multiplicative", "sequential_three", "chained_all_ratio"}


def _torch_sgd(lr: float, params=None):
    params = params if params is not None else [torch.nn.Parameter(torch.zeros(1))]
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


@functools.lru_cache(maxsize=None)
def torch_lrs(row: str) -> np.ndarray:
    _, make_torch, lr, _, steps = ROWS[row]
    opt = _torch_sgd(lr)
    sched = make_torch(opt)
    out = [sched.get_last_lr()[0]]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return np.asarray(out, np.float64)


def ours(row: str, dtype: str) -> np.ndarray:
    make, _, lr, _, steps = ROWS[row]
    with jax.enable_x64(dtype == "float64"):
        schedule = make(lr)
        values = jax.jit(jax.vmap(schedule))(jnp.arange(steps + 1, dtype=jnp.int32))
        assert values.dtype == jnp.dtype(dtype)
        return np.asarray(values, np.float64)


def tolerance(row: str, dtype: str, expected: np.ndarray) -> np.ndarray:
    _, _, lr, eta_t2, steps = ROWS[row]
    rtol = RTOL[dtype]
    if row in PRODUCTS:
        rtol = max(rtol, 2 * steps * float(np.finfo(dtype).eps))
    # Below the dtype's smallest normal number (0.1**40 in float32) only absolute accuracy holds.
    tiny = float(np.finfo(dtype).tiny)
    torch_rounding = EPS64 * (4 * max(lr, np.abs(expected).max()) + eta_t2)
    return rtol * np.abs(expected) + torch_rounding + tiny


def worst_relative(a: np.ndarray, b: np.ndarray) -> float:
    nonzero = b != 0
    return float(np.max(np.abs(a - b)[nonzero] / np.abs(b[nonzero]), initial=0.0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("row", list(ROWS))
def test_matches_torch(row, dtype):
    expected = torch_lrs(row)
    got = ours(row, dtype)
    assert got.shape == expected.shape and len(expected) > 1000
    error = np.abs(got - expected)
    bad = np.flatnonzero(error > tolerance(row, dtype, expected))
    assert not bad.size, (
        f"{row} {dtype}: first bad count {bad[0]}: ours {got[bad[0]]!r}, torch "
        f"{expected[bad[0]]!r}; worst relative error {worst_relative(got, expected):.3g}")


@pytest.mark.parametrize("row", list(ROWS))
def test_jit_scalar_int32_count(row):
    make, _, lr, _, steps = ROWS[row]
    schedule = jax.jit(make(lr))
    counts = [0, 1, 2, 7, 999, steps]
    got = [float(schedule(jnp.int32(c))) for c in counts]
    np.testing.assert_allclose(got, ours(row, "float32")[counts], rtol=1e-6, atol=1e-38)


# One row per scheduler: the optimizer's trajectory with ``lr=schedule`` equals torch's
# ``opt.step(); sched.step()`` loop.
TRAJECTORY_ROWS = ["lambda", "multiplicative", "step_gamma", "multi_step", "constant", "linear",
                   "exponential", "polynomial", "cosine_short", "warm_restarts_mult",
                   "cyclic_asym", "one_cycle", "sequential", "chained_overwrite", "swa_cos"]
OPTIMIZERS = {
    "sgd": (lambda lr: optimizers.sgd(lr, momentum=0.9),
            lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)),
    "adam": (lambda lr: optimizers.adam(lr), lambda p, lr: torch.optim.Adam(p, lr=lr)),
}
TARGET = np.linspace(-1.0, 2.0, 5)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("row", TRAJECTORY_ROWS)
def test_optimizer_trajectory_matches_torch(row, opt_name):
    make, make_torch, lr, _, _ = ROWS[row]
    ours_opt, torch_opt = OPTIMIZERS[opt_name]
    steps = 60
    param = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    opt = torch_opt([param], lr)
    sched = make_torch(opt)
    expected = []
    for _ in range(steps):
        opt.zero_grad()
        ((param - torch.as_tensor(TARGET)) ** 2).sum().backward()
        opt.step()
        sched.step()
        expected.append(param.detach().numpy().copy())
    with jax.enable_x64(True):
        tx = ours_opt(make(lr))

        @jax.jit
        def step(p, state):
            updates, state = tx.update(2 * (p - TARGET), state, p)
            return optax.apply_updates(p, updates), state

        p = jnp.zeros(5)
        state = tx.init(p)
        got = []
        for _ in range(steps):
            p, state = step(p, state)
            got.append(np.asarray(p))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", optimizers.NAMES)
def test_every_optimizer_takes_a_schedule_under_jit(name):
    tx = optimizers.get(name)(lr=schedules.sequential_lr(
        1e-2, [schedules.linear_lr(1e-2, 0.1), schedules.cosine_annealing_lr(1e-2, 50)], [5]))
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    state = tx.init(params)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for _ in range(8):
        updates, state = step(jax.tree.map(jnp.ones_like, params), state, params)
        params = optax.apply_updates(params, updates)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_per_epoch_matches_torch_stepped_per_epoch():
    per_update = schedules.per_epoch(schedules.cosine_annealing_lr(0.1, 7, 0.01), 13)
    opt = _torch_sgd(0.1)
    sched = LS.CosineAnnealingLR(opt, 7, 0.01)
    expected = []
    for _ in range(40):
        expected += [sched.get_last_lr()[0]] * 13
        opt.step()
        sched.step()
    got = jax.jit(jax.vmap(per_update))(jnp.arange(len(expected), dtype=jnp.int32))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# ReduceLROnPlateau: (kwargs, metric sequence) -> torch's lr after each step(metric).
def _metrics(kind: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(300)
    trend = {"falling": 1.0 / (1.0 + 0.02 * t), "rising": np.log1p(0.02 * t),
             "flat": np.full(300, 0.5)}[kind]
    return (trend + 0.01 * rng.standard_normal(300)).astype(np.float32).astype(np.float64)


PLATEAU_ROWS = {
    "default": ({}, "falling"),
    "patience_cooldown": ({"patience": 3, "cooldown": 4, "factor": 0.5}, "falling"),
    "max_abs": ({"mode": "max", "threshold_mode": "abs", "threshold": 0.005, "patience": 2},
                "rising"),
    "max_rel": ({"mode": "max", "patience": 0, "factor": 0.9}, "flat"),
    "min_lr_floor": ({"patience": 1, "min_lr": 1e-3}, "flat"),
    "eps_stops": ({"patience": 0, "factor": 0.5, "eps": 1e-4}, "flat"),
    "abs_min": ({"threshold_mode": "abs", "threshold": 0.01, "patience": 2, "cooldown": 1},
                "falling"),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("row", list(PLATEAU_ROWS))
def test_reduce_lr_on_plateau_matches_torch(row, dtype):
    kwargs, kind = PLATEAU_ROWS[row]
    metrics = _metrics(kind)
    lr = 0.1
    opt = _torch_sgd(lr)
    sched = LS.ReduceLROnPlateau(opt, **kwargs)
    expected = []
    for m in metrics:
        sched.step(m)
        expected.append(sched.get_last_lr()[0])
    with jax.enable_x64(dtype == "float64"):
        tx = schedules.reduce_lr_on_plateau(lr, **kwargs)
        step = jax.jit(lambda s, m: tx.update(jnp.ones(2), s, value=m))
        state = tx.init(jnp.zeros(2))
        got, scales = [], []
        for m in metrics:
            updates, state = step(state, jnp.asarray(m, dtype))
            scales.append(float(updates[0]))
            got.append(float(state.lr))
    reductions = len(set(expected)) - 1
    assert reductions > 0
    # the lr is a running product of ``reductions`` rounded multiplications by ``factor``
    rtol = max(RTOL[dtype], 2 * reductions * float(np.finfo(dtype).eps))
    np.testing.assert_allclose(got, expected, rtol=rtol)
    np.testing.assert_allclose(scales, np.asarray([lr, *expected[:-1]]) / lr, rtol=rtol)


def test_reduce_lr_on_plateau_scales_an_optimizer_like_torch():
    lr = 0.1
    param = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    opt = torch.optim.SGD([param], lr=lr, momentum=0.9)
    sched = LS.ReduceLROnPlateau(opt, patience=2, factor=0.5)
    expected = []
    for _ in range(80):
        opt.zero_grad()
        loss = ((param - torch.as_tensor(TARGET)) ** 2).sum() + 1.0
        loss.backward()
        opt.step()
        sched.step(round(float(loss.detach()), 1))
        expected.append(param.detach().numpy().copy())
    with jax.enable_x64(True):
        tx = optax.chain(optimizers.sgd(lr, momentum=0.9),
                         schedules.reduce_lr_on_plateau(lr, patience=2, factor=0.5))

        @jax.jit
        def step(p, state):
            loss = jnp.round(jnp.sum((p - TARGET) ** 2) + 1.0, 1)
            updates, state = tx.update(2 * (p - TARGET), state, p, value=loss)
            return optax.apply_updates(p, updates), state

        p = jnp.zeros(5)
        state = tx.init(p)
        got = []
        for _ in range(80):
            p, state = step(p, state)
            got.append(np.asarray(p))
    assert float(state[1].lr) < lr
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


# optax's nearest schedule: (ours, optax, counts compared, max relative difference measured
# with 1200 steps in float64: equal ones to 1e-13, the others at least/at most as stated).
OPTAX_ROWS = {
    "exponential_decay": (schedules.exponential_lr(0.1, 0.99),
                          optax.exponential_decay(0.1, 1, 0.99), slice(None), 0.0, 1e-13),
    "exponential_decay_staircase": (schedules.step_lr(0.1, 30, 0.5),
                                    optax.exponential_decay(0.1, 30, 0.5, staircase=True),
                                    slice(None), 0.0, 1e-13),
    "piecewise_constant": (schedules.multi_step_lr(0.1, [30, 80, 500]),
                           optax.piecewise_constant_schedule(0.1, {30: 0.1, 80: 0.1, 500: 0.1}),
                           slice(None), 0.0, 1e-13),
    "linear_schedule": (schedules.linear_lr(0.1, 0.25, 0.75, 600),
                        optax.linear_schedule(0.025, 0.075, 600), slice(None), 0.0, 1e-13),
    "polynomial_schedule": (schedules.polynomial_lr(0.1, 1000, 2.0),
                            optax.polynomial_schedule(0.1, 0.0, 2.0, 1000), slice(None), 0.0,
                            1e-13),
    "cosine_decay_until_T_max": (schedules.cosine_annealing_lr(0.1, 100, 0.01),
                                 optax.cosine_decay_schedule(0.1, 100, 0.1), slice(0, 101), 0.0,
                                 1e-13),
    # after T_max optax stays at eta_min, torch rises back to lr: 9x at 2 T_max
    "cosine_decay_after_T_max": (schedules.cosine_annealing_lr(0.1, 100, 0.01),
                                 optax.cosine_decay_schedule(0.1, 100, 0.1), slice(101, None),
                                 0.89, 0.91),
    # optax's peak and end come one step later than torch's
    "cosine_onecycle_to_peak": (schedules.one_cycle_lr(0.1, 1200),
                                optax.cosine_onecycle_schedule(1200, 0.1), slice(0, 360), 4e-3,
                                5e-3),
    "cosine_onecycle_to_1100": (schedules.one_cycle_lr(0.1, 1200),
                                optax.cosine_onecycle_schedule(1200, 0.1), slice(0, 1100), 1.9e-2,
                                2.1e-2),
    "cosine_onecycle_end": (schedules.one_cycle_lr(0.1, 1200),
                            optax.cosine_onecycle_schedule(1200, 0.1), slice(None), 1.3, 1.5),
}


@pytest.mark.parametrize("row", list(OPTAX_ROWS))
def test_nearest_optax_schedule_difference(row):
    ours_s, optax_s, counts, low, high = OPTAX_ROWS[row]
    with jax.enable_x64(True):
        t = jnp.arange(1201)
        a = np.asarray(jax.vmap(ours_s)(t))[counts]
        b = np.asarray(jax.vmap(optax_s)(t))[counts]
    difference = worst_relative(b, a)
    assert low <= difference <= high, difference


def test_optax_exponential_decay_float32_drifts():
    t = jnp.arange(1201)
    exact = 0.1 * 0.99 ** np.arange(1201.0)
    assert worst_relative(np.asarray(jax.vmap(optax.exponential_decay(0.1, 1, 0.99))(t),
                                     np.float64), exact) > 1e-5
    assert worst_relative(np.asarray(jax.vmap(schedules.exponential_lr(0.1, 0.99))(t),
                                     np.float64), exact) < 4e-7


def test_get_accepts_function_and_torch_names():
    pairs = {"LambdaLR": "lambda_lr", "MultiplicativeLR": "multiplicative_lr",
             "StepLR": "step_lr", "MultiStepLR": "multi_step_lr", "ConstantLR": "constant_lr",
             "LinearLR": "linear_lr", "ExponentialLR": "exponential_lr",
             "PolynomialLR": "polynomial_lr", "CosineAnnealingLR": "cosine_annealing_lr",
             "CosineAnnealingWarmRestarts": "cosine_annealing_warm_restarts",
             "CyclicLR": "cyclic_lr", "OneCycleLR": "one_cycle_lr",
             "SequentialLR": "sequential_lr", "ChainedScheduler": "chained_scheduler",
             "ReduceLROnPlateau": "reduce_lr_on_plateau", "SWALR": "swa_lr"}
    for torch_name, name in pairs.items():
        assert schedules.get(torch_name) is getattr(schedules, name)
        assert schedules.get(name) is getattr(schedules, name)
    with pytest.raises(ValueError, match="valid names"):
        schedules.get("NoSuchLR")


_COS = schedules.cosine_annealing_lr(0.1, 10)
INVALID = [
    (schedules.step_lr, (0.1, 0), {}, ValueError, "step_size"),
    (schedules.step_lr, (0.1, 2.5), {}, TypeError, "step_size"),
    (schedules.step_lr, (-0.1, 2), {}, ValueError, "lr"),
    (schedules.step_lr, ("0.1", 2), {}, TypeError, "lr"),
    (schedules.exponential_lr, (0.1, -0.5), {}, ValueError, "gamma"),
    (schedules.multi_step_lr, (0.1, 30), {}, TypeError, "milestones"),
    (schedules.multi_step_lr, (0.1, [30, -1]), {}, ValueError, r"milestones\[1\]"),
    (schedules.constant_lr, (0.1,), {"factor": 0.0}, ValueError, "factor"),
    (schedules.linear_lr, (0.1,), {"end_factor": 1.5}, ValueError, "end_factor"),
    (schedules.polynomial_lr, (0.1,), {"power": -1.0}, ValueError, "power"),
    (schedules.lambda_lr, (0.1, 0.5), {}, TypeError, "lr_lambda"),
    (schedules.cosine_annealing_lr, (0.1, 0), {}, ValueError, "T_max"),
    (schedules.cosine_annealing_lr, (0.1, 10), {"eta_min": -1e-3}, ValueError, "eta_min"),
    (schedules.cosine_annealing_warm_restarts, (0.1, 10), {"T_mult": 0}, ValueError, "T_mult"),
    (schedules.cyclic_lr, (0.1, 1.0), {"mode": "sawtooth"}, ValueError, "mode"),
    (schedules.cyclic_lr, (0.1, 1.0), {"scale_mode": 1}, TypeError, "scale_mode"),
    (schedules.cyclic_lr, (0.1, 1.0), {"step_size_down": 0}, ValueError, "step_size_down"),
    (schedules.one_cycle_lr, (0.1,), {}, ValueError, "total_steps"),
    (schedules.one_cycle_lr, (0.1, 100), {"pct_start": 1.5}, ValueError, "pct_start"),
    (schedules.one_cycle_lr, (0.1, 10), {"pct_start": 0.1}, ValueError, "phase 1"),
    (schedules.one_cycle_lr, (0.1, 100), {"anneal_strategy": "exp"}, ValueError,
     "anneal_strategy"),
    (schedules.swa_lr, (0.1, 0.01), {"anneal_epochs": -1}, ValueError, "anneal_epochs"),
    (schedules.sequential_lr, (0.1, [_COS, _COS], []), {}, ValueError, "milestones"),
    (schedules.sequential_lr, (0.1, [_COS, _COS, _COS], [5, 5]), {}, ValueError, "increasing"),
    (schedules.sequential_lr, (0.1, [], []), {}, ValueError, "at least one"),
    (schedules.sequential_lr, (0.2, [_COS], []), {}, ValueError, "same lr"),
    (schedules.sequential_lr, (0.1, [_COS, lambda t: 0.1], [5]), {}, TypeError,
     r"schedulers\[1\]"),
    (schedules.sequential_lr, (0.1, [_COS, schedules.swa_lr(0.1, 0.01)], [5]), {}, ValueError,
     "SWALR"),
    (schedules.sequential_lr, (0.1, [schedules.one_cycle_lr(0.1, 10)], []), {}, ValueError,
     "OneCycleLR"),
    (schedules.chained_scheduler, (0.1, [schedules.step_lr(0.1, 2), _COS]), {}, ValueError,
     "affine"),
    (schedules.per_epoch, (_COS, 0), {}, ValueError, "steps_per_epoch"),
    (schedules.reduce_lr_on_plateau, (0.0,), {}, ValueError, "lr"),
    (schedules.reduce_lr_on_plateau, (0.1,), {"factor": 1.0}, ValueError, "factor"),
    (schedules.reduce_lr_on_plateau, (0.1,), {"mode": "mean"}, ValueError, "mode"),
    (schedules.reduce_lr_on_plateau, (0.1,), {"patience": 1.5}, TypeError, "patience"),
]


@pytest.mark.parametrize("fn, args, kwargs, error, match", INVALID,
                         ids=[f"{case[0].__name__}-{case[4]}" for case in INVALID])
def test_invalid_arguments(fn, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)


def test_one_cycle_is_nan_past_total_steps_where_torch_raises():
    assert np.isnan(float(schedules.one_cycle_lr(0.1, 100)(jnp.int32(101))))
    assert np.isfinite(float(schedules.one_cycle_lr(0.1, 100)(jnp.int32(100))))


def test_float_count_is_refused():
    with pytest.raises(TypeError, match="count"):
        _COS(1.5)
