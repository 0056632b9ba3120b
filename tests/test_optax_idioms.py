"""optax idioms with every optimizer: array and traced hyperparameters, ``inject_hyperparams``, a
``vmap``-ed learning-rate sweep, the gradient checks and refused learning rates.

Rows come from ``_optim_ref.ROWS`` (every optimizer configuration) or ``O.NAMES``.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from _optim_ref import (BY_ID, LR, ROWS, STEPS, make_grads, make_params, max_rel_err, precision,
                        run_jax, run_torch, torch_schedule)
from jaxfund import optimizers as O

U32, U64 = 2.0**-24, 2.0**-53
# Two correct runs whose programs differ round each parameter differently at most once per step
# (see TOL in test_optimizers.py): 2 * steps * U of the largest magnitude an element reaches.
ROUNDING = {"float32": 2 * STEPS * U32, "float64": 2 * STEPS * U64}
PARAMS, GRADS = make_params(), make_grads()
ROW_IDS = [r.id for r in ROWS]


def _flags(name: str) -> list[str]:
    """The bool arguments (nesterov, amsgrad, centered, maximize, ...): static for optax."""
    return [n for n, p in inspect.signature(O.get(name)).parameters.items()
            if isinstance(p.default, bool)]


def _numeric(name: str) -> set[str]:
    """The scalar numeric arguments, which ``inject_hyperparams`` injects (tuples stay static)."""
    return {n for n, p in inspect.signature(O.get(name)).parameters.items()
            if isinstance(p.default, float) and not isinstance(p.default, bool)}


def _injected(row_id: str) -> optax.GradientTransformation:
    row = BY_ID[row_id]
    return optax.inject_hyperparams(O.get(row.name), static_args=_flags(row.name))(**row.kwargs)


# ---------------------------------------------------------------------------------------------
# inject_hyperparams: every row, numeric hyperparameters injected.

# In float32 ``inject_hyperparams`` holds each hyperparameter as a float32 array, rounded before
# the direct optimizer's float64 Python arithmetic on it (1 - dampening, 1 - alpha, 1 - rho,
# momentum_decay * log(0.96)) would round: a slightly different hyperparameter, not the same run.
# Those rows are held to the bound the direct run meets against torch.
ROUNDED_IN_FLOAT32 = {"sgd_dampening", "nadam", "nadam_wd", "nadam_flat", "nadam_decoupled",
                      "rmsprop", "rmsprop_centered_momentum_wd", "rmsprop_maximize",
                      "rmsprop_schedule_momentum", "adadelta", "adadelta_options"}
# Adafactor's rms(p) and rms(u) and LAMB's trust-ratio norms are sums: injected, the program
# differs (a zero weight_decay keeps its piece, the lr is an array), XLA fuses it differently and
# may sum in another order (an ulp in a sum: Adafactor on CPU in both dtypes, LAMB on an H200).
# Every other optimizer is elementwise, and the injected run is the same arithmetic.
SUMS = {"adafactor", "lamb"}
REORDERED_SUMS = {row.id for row in ROWS if row.name in SUMS}


@functools.cache
def _run(row_id: str, dtype: str, injected: bool) -> np.ndarray:
    with precision(dtype):
        opt = _injected(row_id) if injected else BY_ID[row_id].jaxfund()
        return run_jax(opt, PARAMS, GRADS, dtype)[0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("row_id", ROW_IDS)
def test_inject_hyperparams_equals_direct(row_id, dtype):
    ours = _run(row_id, dtype, injected=True)
    if row_id in REORDERED_SUMS:
        err = max_rel_err(ours, _run(row_id, dtype, injected=False))
        assert err <= ROUNDING[dtype], f"{row_id}: {err:.3g}"
    elif dtype == "float32" and row_id in ROUNDED_IN_FLOAT32:
        row = BY_ID[row_id]
        sched = torch_schedule(row.kwargs["lr"]) if row.schedule else None
        ref = run_torch(row.torch, PARAMS, GRADS, dtype, schedule=sched)[0]
        # test_optimizers.TOL: the same bound as the direct run.
        assert max_rel_err(ours, ref) <= ROUNDING["float32"]
    else:
        np.testing.assert_array_equal(ours, _run(row_id, dtype, injected=False))


@pytest.mark.parametrize("name", O.NAMES)
def test_inject_hyperparams_injects_every_numeric_argument(name):
    tx = optax.inject_hyperparams(O.get(name), static_args=_flags(name))()
    state = tx.init({k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()})
    assert set(state.hyperparams) == _numeric(name) and "lr" in state.hyperparams


SWITCH = 5  # the step at which the injected lr is changed


@pytest.mark.parametrize("name", O.NAMES)
def test_injected_lr_can_be_read_and_changed(name):
    """Read ``state.hyperparams["lr"]``, set a new value: the next updates are the direct
    optimizer's with a schedule switching to that lr at the same step (Rprop reads its lr only
    at init, as torch, so the switch changes nothing there; it is the same run still)."""
    lr1, lr2 = 1e-2, 3e-3
    others = [n for n in inspect.signature(O.get(name)).parameters if n != "lr"]
    tx = optax.inject_hyperparams(O.get(name), static_args=others)(lr=lr1)
    direct = O.get(name)(lr=lambda c: jnp.where(c < SWITCH, lr1, lr2))
    p = q = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
    s, ds = tx.init(p), direct.init(q)
    step, direct_step = jax.jit(tx.update), jax.jit(direct.update)
    path, direct_path = [], []
    for t in range(2 * SWITCH):
        if t == SWITCH:
            assert np.float32(s.hyperparams["lr"]) == np.float32(lr1)
            s.hyperparams["lr"] = jnp.asarray(lr2, jnp.float32)
        g = {k: jnp.asarray(v[t], jnp.float32) for k, v in GRADS.items()}
        u, s = step(g, s, p)
        du, ds = direct_step(g, ds, q)
        p, q = optax.apply_updates(p, u), optax.apply_updates(q, du)
        if name in SUMS:
            path.append(ravel_pytree(p)[0])
            direct_path.append(ravel_pytree(q)[0])
        else:
            jax.tree.map(np.testing.assert_array_equal, u, du)
    if name in SUMS:  # summed in another order: ROUNDING's bound, for these 2 * SWITCH steps
        assert max_rel_err(np.array(path), np.array(direct_path)) <= 2 * (2 * SWITCH) * U32
    assert np.float32(s.hyperparams["lr"]) == np.float32(lr2)


# ---------------------------------------------------------------------------------------------
# Array and traced hyperparameters.


def _as_arrays(value, dtype):
    """Every float in a hyperparameter (tuple items included) as an array of ``dtype``."""
    if isinstance(value, tuple):
        return tuple(_as_arrays(v, dtype) for v in value)
    return jnp.asarray(value, dtype) if isinstance(value, float) else value


@pytest.mark.parametrize("row_id", [r.id for r in ROWS if not r.schedule])
def test_traced_hyperparameters_equal_python_floats(row_id):
    """Every numeric hyperparameter, defaults and tuple items included, as a float64 jit argument
    (so traced) gives the run of the Python floats: the array holds the same double and the
    scalars derived from it are the same float64 operations. The hyperparameters are run-time
    parameters of the XLA program instead of constants it can fold, so the two programs may
    round differently (seen: an ulp in RAdam's log/tanh of beta2 and in Adadelta); bound: one
    rounding of each param per step."""
    row = BY_ID[row_id]
    signature = inspect.signature(O.get(row.name)).parameters
    arguments = {**{n: p.default for n, p in signature.items()}, **row.kwargs}
    flags = {k: v for k, v in arguments.items() if isinstance(v, bool)}
    opt = functools.partial(O.get(row.name), **flags)
    with precision("float64"):
        hyper = {k: _as_arrays(v, jnp.float64) for k, v in arguments.items() if k not in flags}

        @jax.jit
        def run(hyper, p, gs):
            tx = opt(**hyper)

            def body(carry, g):
                p, s = carry
                u, s = tx.update(g, s, p)
                p = optax.apply_updates(p, u)
                return (p, s), jnp.concatenate([p[k].ravel() for k in sorted(p)])

            return jax.lax.scan(body, (p, tx.init(p)), gs)[1]

        p = {k: jnp.asarray(v) for k, v in PARAMS.items()}
        gs = {k: jnp.asarray(v) for k, v in GRADS.items()}
        traced = np.asarray(run(hyper, p, gs))
        direct = run_jax(row.jaxfund(), PARAMS, GRADS, "float64")[0]
    err = max_rel_err(traced, direct)
    assert err <= ROUNDING["float64"], f"{row_id}: {err:.3g}"


LRS = np.geomspace(1e-4, 1e-1, 8)
SWEEP_STEPS = 30


@pytest.mark.parametrize("name", O.NAMES)
def test_vmap_over_lr_equals_separate_runs(name):
    """A sweep of 8 learning rates in one program equals 8 runs. The batched program may evaluate
    a transcendental function of the lr (ASGD's power) or a sum (Adafactor) with another
    (vectorised) code path, an ulp apart: at most one rounding of each param per step."""

    def run(lr, p, gs):
        tx = O.get(name)(lr=lr)

        def body(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, (p, tx.init(p)), gs)[0][0]

    p = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
    gs = {k: jnp.asarray(v[:SWEEP_STEPS], jnp.float32) for k, v in GRADS.items()}
    lrs = jnp.asarray(LRS, jnp.float32)
    swept = jax.jit(jax.vmap(run, in_axes=(0, None, None)))(lrs, p, gs)
    single = jax.jit(run)
    for i, lr in enumerate(lrs):
        one = single(lr, p, gs)
        for k in sorted(p):
            a, b = np.asarray(swept[k][i], np.float64), np.asarray(one[k], np.float64)
            err = np.max(np.abs(a - b) / (1.0 + np.abs(b)))
            assert err <= 2 * SWEEP_STEPS * U32, f"{name} lr={float(lr):g} {k}: {err:.3g}"


# ---------------------------------------------------------------------------------------------
# Validation: concrete values are checked, traced ones are not; what stays static always is.

# (optimizer, kwargs with a concrete array out of range, argument named in the message)
ARRAY_VALUE_ERRORS = [
    ("sgd", {"lr": jnp.asarray(-0.1)}, "lr"),
    ("sgd", {"lr": jnp.asarray(jnp.inf)}, "lr"),
    ("sgd", {"momentum": jnp.asarray(-0.9)}, "momentum"),
    ("sgd", {"momentum": jnp.asarray(0.0), "nesterov": True}, "nesterov"),
    ("adam", {"betas": (jnp.asarray(1.0), 0.999)}, "betas[0]"),
    ("adam", {"betas": jnp.asarray([0.9, -0.5])}, "betas[1]"),
    ("adamw", {"weight_decay": jnp.asarray(-0.1)}, "weight_decay"),
    ("nadam", {"momentum_decay": jnp.asarray(-1.0)}, "momentum_decay"),
    ("rmsprop", {"alpha": jnp.asarray(1.5)}, "alpha"),
    ("adagrad", {"lr_decay": jnp.asarray(-1.0)}, "lr_decay"),
    ("adadelta", {"rho": jnp.asarray(jnp.nan)}, "rho"),
    ("rprop", {"step_sizes": (jnp.asarray(1.0), jnp.asarray(0.1))}, "step_sizes[1]"),
    ("asgd", {"t0": jnp.asarray(-1.0)}, "t0"),
    ("adafactor", {"d": jnp.asarray(0.5)}, "d"),
    ("lamb", {"eps": jnp.asarray(-1e-6)}, "eps"),
]


def _ids(rows):
    return [f"{r[0]}-{r[-1]}" for r in rows]


@pytest.mark.parametrize("name,kwargs,arg", ARRAY_VALUE_ERRORS, ids=_ids(ARRAY_VALUE_ERRORS))
def test_concrete_array_out_of_range_raises(name, kwargs, arg):
    with pytest.raises(ValueError, match=arg.replace("[", r"\[").replace("]", r"\]")):
        O.get(name)(**kwargs)


@pytest.mark.parametrize("name,kwargs,arg", ARRAY_VALUE_ERRORS, ids=_ids(ARRAY_VALUE_ERRORS))
def test_traced_value_is_not_checked(name, kwargs, arg):
    """Under jit the value is unknown: the optimizer is built, and runs, with it."""
    del arg
    p = {"w": jnp.ones(3)}
    flags = {k: v for k, v in kwargs.items() if isinstance(v, bool)}

    @jax.jit
    def first_update(hyper):
        tx = O.get(name)(**hyper, **flags)
        return tx.update({"w": jnp.full(3, 0.5)}, tx.init(p), p)[0]

    first_update({k: v for k, v in kwargs.items() if not isinstance(v, bool)})


# (optimizer, kwargs, error, text in the message): type and shape are static, so refused even
# under tracing.
ARRAY_STATIC_ERRORS = [
    ("adam", {"lr": jnp.full(3, 1e-3)}, ValueError, "lr must be a scalar"),
    ("sgd", {"momentum": jnp.asarray(True)}, TypeError, "momentum"),
    ("rmsprop", {"eps": jnp.ones((1, 1))}, ValueError, "eps must be a scalar"),
    ("adam", {"betas": jnp.asarray([0.9, 0.99, 0.999])}, ValueError, "betas must be a pair"),
]


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("name,kwargs,error,text", ARRAY_STATIC_ERRORS,
                         ids=_ids(ARRAY_STATIC_ERRORS))
def test_shape_and_dtype_of_hyperparameters_checked_always(name, kwargs, error, text, traced):
    build = (lambda hyper: O.get(name)(**hyper)) if not traced else jax.jit(
        lambda hyper: O.get(name)(**hyper).init({"w": jnp.ones(3)}))
    with pytest.raises(error, match=text):
        build(kwargs)


def test_integer_array_hyperparameter_is_a_float():
    tx = O.sgd(lr=jnp.asarray(1), momentum=jnp.asarray(0))
    p = {"w": jnp.ones(2)}
    u, _ = tx.update({"w": jnp.full(2, 0.5)}, tx.init(p), p)
    assert u["w"].dtype == jnp.float32 and float(u["w"][0]) == -0.5


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules that leave [0, inf).

BAD_LRS = [-1e-3, float("nan"), float("inf")]


@pytest.mark.parametrize("bad", BAD_LRS)
@pytest.mark.parametrize("name", [n for n in O.NAMES if n != "rprop"])
def test_bad_schedule_value_refused_eagerly(name, bad):
    """Eagerly the schedule's value is concrete: the update that reads it raises, naming the
    count."""
    p, g = {"w": jnp.ones(3)}, {"w": jnp.full(3, 0.5)}
    tx = O.get(name)(lr=lambda c: jnp.where(c < 1, 1e-2, bad))
    _, s = tx.update(g, tx.init(p), p)
    with pytest.raises(ValueError, match=r"lr must be finite and >= 0.*count 1\)"):
        tx.update(g, s, p)


@pytest.mark.parametrize("bad", BAD_LRS)
def test_rprop_bad_initial_lr_refused_at_init(bad):
    """Rprop reads its lr once, for the initial step sizes (as torch)."""
    tx = O.rprop(lr=lambda c: jnp.asarray(bad))
    with pytest.raises(ValueError, match=r"lr must be finite and >= 0.*count 0\)"):
        tx.init({"w": jnp.ones(3)})


@pytest.mark.parametrize("bad", BAD_LRS)
def test_bad_schedule_value_under_jit_is_used_as_is(bad):
    """Under jit the value is a tracer, not checked: SGD's update is -lr * g, whatever lr is (a
    negative lr steps up the gradient, a NaN or inf one gives NaN/inf params), as documented."""
    tx = O.sgd(lr=lambda c: jnp.asarray(bad, jnp.float32))
    p = {"w": jnp.ones(3)}
    u, _ = jax.jit(tx.update)({"w": jnp.full(3, 0.5)}, tx.init(p), p)
    np.testing.assert_array_equal(u["w"], np.float32(-bad) * np.float32(0.5))


# ---------------------------------------------------------------------------------------------
# Gradients that do not fit the params: a clear error at trace time, with or without params.

RIGHT = {"w": jnp.ones(3), "b": jnp.zeros(())}
GRAD_CASES = {
    "shape": ({"w": jnp.ones(1), "b": jnp.zeros(())}, ValueError,
              r"grads\['w'\] has shape \(1,\) but .*\['w'\] has shape \(3,\)"),
    "integer": ({"w": jnp.ones(3, jnp.int32), "b": jnp.zeros(())}, TypeError,
                r"grads\['w'\] must be a floating-point array, got dtype int32"),
    "structure": ({"w": jnp.ones(3)}, ValueError, "different tree structures"),
}
# Optimizers that update without params, with their defaults (the others decay weights, average
# them, or scale by their norm, and refuse to run without them).
WITHOUT_PARAMS = ["adam", "nadam", "radam", "rmsprop", "adagrad", "adamax", "adadelta", "rprop"]
GRAD_ROWS = ([(n, c, True) for n in O.NAMES for c in GRAD_CASES]
             + [(n, c, False) for n in WITHOUT_PARAMS for c in GRAD_CASES])


@pytest.mark.parametrize("name,case,with_params", GRAD_ROWS,
                         ids=[f"{n}-{c}-{'with' if w else 'without'}_params"
                              for n, c, w in GRAD_ROWS])
def test_grads_that_do_not_fit_raise_at_trace_time(name, case, with_params):
    grads, error, message = GRAD_CASES[case]
    tx = O.get(name)()
    state = tx.init(RIGHT)
    with pytest.raises(error, match=message):
        jax.jit(tx.update)(grads, state, RIGHT if with_params else None)


def test_sgd_without_momentum_or_params_checks_the_dtype():
    """Without params and without state there is no shape to compare: the dtype is checked."""
    tx = O.sgd()
    with pytest.raises(TypeError, match="floating-point"):
        tx.update({"w": jnp.ones(3, jnp.int32)}, tx.init(RIGHT))
    assert tx.update({"w": jnp.ones(3)}, tx.init(RIGHT))[0]["w"].shape == (3,)


@pytest.mark.parametrize("with_params", [True, False])
def test_masked_optimizer_checks_the_leaves_it_sees(with_params):
    """optax.masked hands the masked-out leaves over as MaskedNode in grads, params and the state
    alike, so the structures still agree."""
    tx = optax.masked(O.adam(LR), {"w": True, "b": False})
    state = tx.init(RIGHT)
    params = RIGHT if with_params else None
    updates, _ = tx.update({"w": jnp.ones(3), "b": jnp.ones(())}, state, params)
    assert updates["w"].shape == (3,)
    with pytest.raises(ValueError, match=r"grads\['w'\] has shape \(1,\)"):
        tx.update({"w": jnp.ones(1), "b": jnp.ones(())}, state, params)
