"""jaxfund's L-BFGS against torch.optim.LBFGS, step for step, and against optax.lbfgs.

One ``update`` is one ``torch.optim.LBFGS.step(closure)``: every row runs both for a few steps
from the same point in float64 and compares the parameters and the loss after each step, and
the counters torch keeps in its state (``n_iter``, ``func_evals``, the number of stored pairs).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.optim.lbfgs as torch_lbfgs

from _optim_ref import precision
from jaxfund import data, models, tasks
from jaxfund._lbfgs import _strong_wolfe
from jaxfund.optimizers import lbfgs

# The two runs agree to rounding: XLA and torch's BLAS sum dot products in different orders
# and autodiff rounds differently, a few ulps (~1e-16) per operation. L-BFGS feeds each
# iterate into the next, so these roundings grow along a trajectory; the rows are runs where
# that growth stays far below the bar (measured worst: see ``test_matches_torch``).
TOL = 1e-10


# ---------------------------------------------------------------------------------------------
# Problems: a float64 starting point (a pytree of numpy arrays), the objective in JAX, and the
# same objective in torch on the leaves in ``jax.tree.leaves`` order (so both flatten alike).


def _rosenbrock(x, xp):
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@functools.cache
def _logistic_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    logits = x @ np.array([1.5, -2.0, 0.5, 0.0, 1.0]) + 0.3
    y = (rng.random(200) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)
    return x, y


def _logistic_jax(p):
    # The data in the parameters' dtype, explicitly: JAX keeps the constant it made of a NumPy
    # array, so a float64 array first used without x64 stays float32 under enable_x64 (jax
    # 0.10-0.11), and the float64 run then mixes dtypes when a float32 test ran first.
    x, y = (jnp.asarray(a, p["w"].dtype) for a in _logistic_data())
    z = x @ p["w"] + p["b"]
    return jnp.mean(jnp.maximum(z, 0.0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))


def _logistic_torch(b, w):
    x, y = map(torch.as_tensor, _logistic_data())
    return torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)


MLP = models.MLP(20, (50,), 2)


@functools.cache
def _classification() -> tuple[np.ndarray, np.ndarray]:
    ds = data.load("classification")
    return ds.x_train.astype(np.float64), ds.y_train


def _mlp_jax(p):
    x, y = _classification()
    return tasks.loss("multiclass")(MLP.apply(p, jnp.asarray(x)), jnp.asarray(y))


def _mlp_torch(b0, w0, b1, w1):
    x, y = _classification()
    h = torch.relu(torch.as_tensor(x) @ w0 + b0)
    return torch.nn.functional.cross_entropy(h @ w1 + b1, torch.as_tensor(y, dtype=torch.long))


def _mlp_start():
    with jax.enable_x64(True):
        return jax.tree.map(np.asarray, MLP.init(jax.random.key(0), jnp.float64))


@dataclasses.dataclass(frozen=True)
class Problem:
    start: Callable[[], Any]
    jax_fn: Callable
    torch_fn: Callable


PROBLEMS = {
    "rosenbrock2": Problem(lambda: np.array([-1.5, 2.0]),
                           lambda x: _rosenbrock(x, jnp), lambda x: _rosenbrock(x, torch)),
    "rosenbrock10": Problem(lambda: np.tile([-1.2, 1.0], 5),
                            lambda x: _rosenbrock(x, jnp), lambda x: _rosenbrock(x, torch)),
    "logistic": Problem(lambda: {"b": np.array(0.1), "w": np.full(5, -0.2)},
                        _logistic_jax, _logistic_torch),
    "mlp": Problem(_mlp_start, _mlp_jax, _mlp_torch),
}


@dataclasses.dataclass(frozen=True)
class Run:
    params: np.ndarray  # (steps, n): flat parameters after each step
    loss: np.ndarray  # (steps,): the objective there
    counters: np.ndarray  # (steps, 3): n_iter, func_evals, stored pairs after each step


def run_torch(problem: Problem, kwargs: dict, steps: int) -> Run:
    leaves = [torch.tensor(v, requires_grad=True) for v in jax.tree.leaves(problem.start())]
    opt = torch.optim.LBFGS(leaves, **kwargs)

    def closure():
        opt.zero_grad()
        loss = problem.torch_fn(*leaves)
        loss.backward()
        return loss

    params, losses, counters = [], [], []
    for _ in range(steps):
        opt.step(closure)
        state = opt.state[leaves[0]]
        params.append(np.concatenate([t.detach().numpy().ravel() for t in leaves]))
        with torch.no_grad():
            losses.append(float(problem.torch_fn(*leaves)))
        counters.append((state["n_iter"], state["func_evals"], len(state["old_dirs"])))
    return Run(np.array(params), np.array(losses), np.array(counters))


def run_jax(problem: Problem, kwargs: dict, steps: int) -> Run:
    opt = lbfgs(**kwargs)
    f = problem.jax_fn

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(f)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
        params = optax.apply_updates(params, updates)
        return params, state, f(params)

    params = jax.tree.map(jnp.asarray, problem.start())
    state = opt.init(params)
    flat, losses, counters = [], [], []
    for _ in range(steps):
        params, state, loss = step(params, state)
        flat.append(np.asarray(jax.flatten_util.ravel_pytree(params)[0]))
        losses.append(float(loss))
        counters.append((int(state.n_iter), int(state.func_evals), int(state.history_len)))
    return Run(np.array(flat), np.array(losses), np.array(counters))


def max_rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """The largest over steps of ``max|a - b| / max|b|`` (rows of ``(steps, n)``, or scalars)."""
    a, b = np.atleast_2d(a.T).T, np.atleast_2d(b.T).T
    return float(np.max(np.max(np.abs(a - b), axis=1) / np.max(np.abs(b), axis=1)))


# ---------------------------------------------------------------------------------------------
# The table: problem, torch.optim.LBFGS arguments, number of steps (update / step calls).

SW = {"line_search_fn": "strong_wolfe"}


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    problem: str
    kwargs: dict
    steps: int = 5


ROWS = [
    Row("rosen2-fixed-lr0.5", "rosenbrock2", {"max_iter": 7, "lr": 0.5}),
    Row("rosen2-fixed-hist2-maxeval5", "rosenbrock2",
        {"max_iter": 4, "max_eval": 5, "history_size": 2}),
    Row("rosen2-wolfe-iter6", "rosenbrock2", {**SW, "max_iter": 6}),
    Row("rosen2-wolfe-hist2-maxeval5", "rosenbrock2",
        {**SW, "max_iter": 4, "max_eval": 5, "history_size": 2}, steps=3),
    Row("rosen2-wolfe-lr3", "rosenbrock2", {**SW, "lr": 3.0, "max_iter": 5}, steps=3),
    Row("rosen2-wolfe-lr30", "rosenbrock2", {**SW, "lr": 30.0, "max_iter": 5}),
    Row("rosen2-wolfe-lr1e-4-maxeval4", "rosenbrock2",
        {**SW, "lr": 1e-4, "max_iter": 3, "max_eval": 4}),
    Row("rosen10-fixed-lr0.1", "rosenbrock10", {"lr": 0.1, "max_iter": 10}),
    Row("rosen10-fixed-tolchange", "rosenbrock10", {"lr": 1e-3, "tolerance_change": 1e-3}),
    Row("rosen10-wolfe-iter5", "rosenbrock10", {**SW, "max_iter": 5}),
    Row("rosen10-wolfe-hist3-iter8", "rosenbrock10", {**SW, "history_size": 3, "max_iter": 8}),
    Row("rosen10-wolfe-lr30-hist4", "rosenbrock10",
        {**SW, "lr": 30.0, "max_iter": 8, "history_size": 4}),
    Row("logistic-fixed-iter3", "logistic", {"max_iter": 3}),
    Row("logistic-fixed-hist2-tolgrad", "logistic", {"history_size": 2, "tolerance_grad": 1e-4}),
    Row("logistic-fixed-tolchange", "logistic", {"tolerance_change": 1e-3}),
    Row("logistic-wolfe-hist2-iter3", "logistic", {**SW, "history_size": 2, "max_iter": 3}),
    Row("logistic-wolfe-lr30", "logistic", {**SW, "lr": 30.0, "max_iter": 5}),
    Row("mlp-fixed-iter8", "mlp", {"max_iter": 8}),
    Row("mlp-wolfe-iter8", "mlp", {**SW, "max_iter": 8}),
]
BY_ID = {r.id: r for r in ROWS}


@functools.cache
def runs(row_id: str) -> tuple[Run, Run]:
    row = BY_ID[row_id]
    problem = PROBLEMS[row.problem]
    with precision("float64"):
        return (run_jax(problem, row.kwargs, row.steps),
                run_torch(problem, row.kwargs, row.steps))


@pytest.mark.parametrize("row_id", [r.id for r in ROWS])
def test_matches_torch(row_id):
    ours, ref = runs(row_id)
    np.testing.assert_array_equal(ours.counters, ref.counters)
    assert max_rel_err(ours.params, ref.params) <= TOL
    assert max_rel_err(ours.loss, ref.loss) <= TOL


# ---------------------------------------------------------------------------------------------
# The strong Wolfe line search alone, against torch's ``_strong_wolfe``, from ``x0`` along the
# steepest descent: cases found to reach the zoom's rarer branches (the bracket narrower than
# ``tolerance_change``; the trial point moved 0.1 away from the upper / lower end after
# insufficient progress; the old low end becoming the high end; running out of evaluations).

def _wiggle(x, xp):
    return xp.sum(xp.sin(3.0 * x) + 0.1 * x**2)


WIGGLE = (lambda x: _wiggle(x, jnp), lambda x: _wiggle(x, torch))
ROSENBROCK = (lambda x: _rosenbrock(x, jnp), lambda x: _rosenbrock(x, torch))

# (jax and torch objective, x0, initial step t, max_ls, tolerance_change)
LINE_SEARCHES = {
    "zoom-bracket-below-tolerance": (ROSENBROCK, [-0.9, 0.63, 0.25], 0.05, 25, 100.0),
    "zoom-moved-from-lower-end": (WIGGLE, [0.63], 92.98, 25, 1e-3),
    "zoom-moved-from-upper-end": (WIGGLE, [0.52], 48.27, 25, 1e-9),
    "bracketing-out-of-evaluations": (WIGGLE, [-1.63, 0.53, 0.47], 0.0015, 3, 1e-9),
}


@pytest.mark.parametrize("case", list(LINE_SEARCHES))
def test_strong_wolfe_matches_torch(case):
    (jax_fn, torch_fn), x0, t, max_ls, tolerance_change = LINE_SEARCHES[case]

    def torch_eval(x, step, d):
        y = (x + step * d).requires_grad_(True)
        loss = torch_fn(y)
        loss.backward()
        return float(loss.detach()), y.grad

    with precision("float64"):
        x = torch.tensor(x0)
        f, g = torch_eval(x, 0.0, torch.zeros_like(x))
        f_ref, g_ref, t_ref, evals_ref = torch_lbfgs._strong_wolfe(
            torch_eval, x, t, -g, f, g, g.dot(-g), tolerance_change=tolerance_change,
            max_ls=max_ls)
        value_and_grad = jax.value_and_grad(jax_fn)
        xj = jnp.asarray(x0)
        fj, gj = value_and_grad(xj)
        f_new, g_new, t_new, evals = jax.jit(_strong_wolfe, static_argnums=(0, 7, 8))(
            value_and_grad, xj, jnp.asarray(t), -gj, fj, gj, jnp.dot(gj, -gj), max_ls,
            tolerance_change)
    assert int(evals) == evals_ref
    np.testing.assert_allclose([float(t_new), float(f_new)], [float(t_ref), f_ref], rtol=1e-12)
    # The gradient's terms are at most a few hundred here, so its rounding is below 1e-12 even
    # where they cancel.
    np.testing.assert_allclose(g_new, g_ref.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# jit, float32, schedules, optax.lbfgs, invalid arguments.


def _logistic_update(opt, params, state):
    value, grad = jax.value_and_grad(_logistic_jax)(params)
    return opt.update(grad, state, params, value=value, grad=grad, value_fn=_logistic_jax)


def test_jit_compiles_once_and_equals_eager():
    opt = lbfgs(max_iter=2)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def jitted(params, state):
        return _logistic_update(opt, params, state)

    # In float64: eager and compiled programs may sum the loss's mean over 200 examples (and the
    # 5-term products) in other orders (XLA:GPU fuses them differently), <= 200 * U64 = 1.1e-14
    # relative in the loss and gradient. Two L-BFGS iterations amplify that by the conditioning
    # of the curvature pair (y = g_new - g_old cancels about one digit here): rtol 1e-9 leaves a
    # factor 1e4 beyond it. (In float32 the same reordering gave 3.8e-6 on an H200.)
    with jax.enable_x64(True):
        params = {"b": jnp.float64(0.1), "w": jnp.full(5, -0.2, jnp.float64)}
        eager = fast = params
        eager_state = fast_state = opt.init(params)
        for _ in range(2):
            updates, eager_state = _logistic_update(opt, eager, eager_state)
            eager = optax.apply_updates(eager, updates)
            updates, fast_state = jitted(fast, fast_state)
            fast = optax.apply_updates(fast, updates)
        chex.assert_trees_all_close(fast, eager, rtol=1e-9)
        assert int(fast_state.n_iter) == int(eager_state.n_iter)
        assert fast["w"].dtype == jnp.float64


def test_float32_converges():
    opt = lbfgs(line_search_fn="strong_wolfe")
    params = {"b": jnp.float32(0.1), "w": jnp.full(5, -0.2, jnp.float32)}
    state = opt.init(params)
    step = jax.jit(functools.partial(_logistic_update, opt))
    for _ in range(3):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
    assert jax.tree.leaves(jax.tree.map(lambda a: a.dtype, (params, state.old_dirs))) == \
        [jnp.float32] * 3
    _, ref = runs("logistic-fixed-iter3")  # float64 torch, converged to the minimum
    # At the minimum the loss is flat: its float32 value is off by its own rounding (~1e-7
    # relative per term, 200 terms averaged) plus the square of the float32 parameter error.
    np.testing.assert_allclose(float(_logistic_jax(params)), ref.loss[-1], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.flatten_util.ravel_pytree(params)[0]),
                               ref.params[-1], atol=1e-3)


def test_constant_schedule_equals_float_lr():
    params = {"b": jnp.float32(0.1), "w": jnp.full(5, -0.2, jnp.float32)}
    by_float = lbfgs(lr=0.5, max_iter=2)
    by_schedule = lbfgs(lr=optax.constant_schedule(0.5), max_iter=2)
    a, _ = _logistic_update(by_float, params, by_float.init(params))
    b, _ = _logistic_update(by_schedule, params, by_schedule.init(params))
    chex.assert_trees_all_equal(a, b)


def test_differs_from_optax_lbfgs():
    """The docstring's numbers: one update (torch's step) vs twenty optax.lbfgs updates."""
    with precision("float64"):
        x0 = jnp.array([-1.5, 2.0])
        f = PROBLEMS["rosenbrock2"].jax_fn
        ours = run_jax(PROBLEMS["rosenbrock2"], SW, 1).params[0]
        ref = run_torch(PROBLEMS["rosenbrock2"], SW, 1).params[0]
        solver, value_and_grad = optax.lbfgs(), optax.value_and_grad_from_state(f)

        @jax.jit
        def optax_step(x, state):
            value, grad = value_and_grad(x, state=state)
            updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=f)
            return optax.apply_updates(x, updates), state

        x, state = x0, solver.init(x0)
        for _ in range(20):
            x, state = optax_step(x, state)
    assert max_rel_err(ours, ref) <= TOL
    np.testing.assert_allclose(ours, [-0.0851, -0.0288], atol=1e-4)
    np.testing.assert_allclose(np.asarray(x), [0.346, 0.0988], atol=1e-3)
    assert round(float(np.max(np.abs(np.asarray(x) - ours))), 2) == 0.43


INVALID = [
    ({"lr": -1.0}, ValueError, "lr"),
    ({"lr": "1"}, TypeError, "lr"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"max_iter": 2.5}, TypeError, "max_iter"),
    ({"max_eval": 0}, ValueError, "max_eval"),
    ({"max_eval": 1.5}, TypeError, "max_eval"),
    ({"tolerance_grad": -1e-7}, ValueError, "tolerance_grad"),
    ({"tolerance_grad": "small"}, TypeError, "tolerance_grad"),
    ({"tolerance_change": -1e-9}, ValueError, "tolerance_change"),
    ({"tolerance_change": None}, TypeError, "tolerance_change"),
    ({"history_size": 0}, ValueError, "history_size"),
    ({"history_size": True}, TypeError, "history_size"),
    ({"line_search_fn": "wolfe"}, ValueError, "line_search_fn"),
    ({"line_search_fn": 1}, TypeError, "line_search_fn"),
]


@pytest.mark.parametrize("kwargs, error, name", INVALID, ids=[str(k) for k, _, _ in INVALID])
def test_invalid_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        lbfgs(**kwargs)


def test_update_without_the_objective_raises():
    opt = lbfgs()
    params = jnp.zeros(2)
    with pytest.raises(ValueError, match="value_fn"):
        opt.update(params, opt.init(params), params, value=jnp.float32(0.0))
