"""jaxfund.optimizers against torch.optim and optax, step for step.

Every configuration is one row of ``_optim_ref.ROWS``. Gradients are precomputed (they don't
depend on the params, so differences don't feed back) except in ``test_real_loss``.
"""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from absl.testing import parameterized

from _optim_ref import (BY_ID, LR, ROWS, STEPS, make_grads, make_params,
                        max_rel_err, precision, run_jax, run_torch, torch_schedule,
                        warmup_cosine)
from jaxfund import optimizers as O

# Float32: two runs of the same formula (ours or optax's, and torch's) round each parameter at
# least once per step (p + u), by at most U32 = 2**-24 of the largest magnitude the element reaches
# (the scale of `max_rel_err`). Different operation orders (XLA's fusion, FMA and vector width,
# which differ between Intel and AMD CPUs; torch's kernels) keep those roundings from cancelling,
# so after STEPS steps two correct runs differ by at most 2 * STEPS * U32 = 1.2e-5 (the rounding of
# the update itself is smaller: |u| <= lr * O(1) here). A formula error (a bias correction one step
# off, eps inside instead of outside the sqrt) moves the trajectory by 1e-4 or more.
# Float64: the same bound is 2 * STEPS * 2**-53 = 2.2e-14; 1e-12 leaves room for the x100 gradients.
U32 = 2.0**-24
TOL = {"float32": 2 * STEPS * U32, "float64": 1e-12}
DTYPES = ("float32", "float64")
PARAMS, GRADS = make_params(), make_grads()

TORCH_ROWS = [r.id for r in ROWS if r.torch is not None]
EXACT_ROWS = [r.id for r in ROWS if r.optax is not None and r.optax_exact]
INEXACT_ROWS = [r.id for r in ROWS if r.optax is not None and not r.optax_exact]


@functools.cache
def torch_traj(row_id: str, dtype: str) -> np.ndarray:
    row = BY_ID[row_id]
    with precision(dtype):
        sched = torch_schedule(row.kwargs["lr"]) if row.schedule else None
        return run_torch(row.torch, PARAMS, GRADS, dtype, schedule=sched)[0]


@functools.cache
def jaxfund_traj(row_id: str, dtype: str) -> np.ndarray:
    with precision(dtype):
        return run_jax(BY_ID[row_id].jaxfund(), PARAMS, GRADS, dtype)[0]


@functools.cache
def optax_traj(row_id: str, dtype: str) -> np.ndarray:
    with precision(dtype):
        return run_jax(BY_ID[row_id].optax(), PARAMS, GRADS, dtype)[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row_id", TORCH_ROWS)
def test_matches_torch(row_id, dtype):
    err = max_rel_err(jaxfund_traj(row_id, dtype), torch_traj(row_id, dtype))
    assert err <= TOL[dtype], f"{row_id} {dtype}: max error {err:.3g} > {TOL[dtype]:g}"


VARIANT_STEPS = 22  # step 20 is the all-zero gradient


class UpdateVariantsTest(parameterized.TestCase):
    """One ``update`` + ``apply_updates`` step at a time, jitted, eager and device-placed: the
    first steps (the zero-gradient step included) equal torch's in float32."""

    @chex.variants(with_jit=True, without_jit=True, with_device=True)
    @parameterized.named_parameters((row_id, row_id) for row_id in TORCH_ROWS)
    def test_steps_match_torch(self, row_id):
        tx = BY_ID[row_id].jaxfund()

        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        step = self.variant(step)
        p = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
        s = tx.init(p)
        traj = []
        for t in range(VARIANT_STEPS):
            p, s = step(p, s, {k: jnp.asarray(v[t], jnp.float32) for k, v in GRADS.items()})
            traj.append(np.concatenate([np.asarray(p[k], np.float64).ravel() for k in sorted(p)]))
        ref = torch_traj(row_id, "float32")[:VARIANT_STEPS]
        err = max_rel_err(np.stack(traj), ref)
        assert err <= TOL["float32"], f"{row_id}: max error {err:.3g} > {TOL['float32']:g}"


@pytest.mark.parametrize("row_id", EXACT_ROWS)
def test_matches_optax_where_expressible(row_id):
    dtypes = DTYPES if BY_ID[row_id].torch is None else ("float64",)
    for dtype in dtypes:
        err = max_rel_err(jaxfund_traj(row_id, dtype), optax_traj(row_id, dtype))
        assert err <= TOL[dtype], f"{row_id} {dtype}: {err:.3g} from optax"


@pytest.mark.parametrize("row_id", INEXACT_ROWS)
def test_optax_closest_config_really_differs(row_id):
    """Where the docstring says optax cannot express torch, its closest config is off."""
    err = max_rel_err(optax_traj(row_id, "float64"), torch_traj(row_id, "float64"))
    assert err > 100 * TOL["float64"], f"{row_id}: optax is within {err:.3g} of torch"


# Rows where optax's closest configuration computes a different formula, by more than 4 * TOL in
# float64 (measured below, where rounding is ~1e-16). In float32 optax's run is then at least
# 4 * TOL - TOL (its own and torch's rounding, TOL / 2 each) = 3 * TOL from torch's on any CPU,
# while ours stays within TOL: the verdict does not depend on the CPU's rounding. Where the two
# formulas agree (or differ by less than the float32 rounding), the float32 errors are both
# rounding and ranking them is noise; the claim is then made in float64 (tests above) or on the
# step scalars themselves (below).
FORMULA_GAP_ROWS = ["sgd_dampening", "adam_amsgrad", "adamw_amsgrad", "nadam", "nadam_wd",
                    "radam_eps_decoupled", "rmsprop_schedule_momentum", "adafactor_options"]


@pytest.mark.parametrize("row_id", FORMULA_GAP_ROWS)
def test_closer_to_torch_than_optax_in_float32(row_id):
    gap = max_rel_err(optax_traj(row_id, "float64"), torch_traj(row_id, "float64"))
    assert gap > 4 * TOL["float32"], f"{row_id}: optax's formula is only {gap:.3g} from torch's"
    ref = torch_traj(row_id, "float32")
    ours = max_rel_err(jaxfund_traj(row_id, "float32"), ref)
    theirs = max_rel_err(optax_traj(row_id, "float32"), ref)
    assert ours <= TOL["float32"] < theirs, f"{row_id}: jaxfund {ours:.3g}, optax {theirs:.3g}"


def test_asgd_averaged_params_match_torch():
    row = BY_ID["asgd_options"]
    for dtype in DTYPES:
        with precision(dtype):
            _, (torch_opt, tensors) = run_torch(row.torch, PARAMS, GRADS, dtype)
            opt_state = run_jax(row.jaxfund(), PARAMS, GRADS, dtype)[1]
            ax = optax.tree_utils.tree_get(opt_state, "ax")
        for k, t in tensors.items():
            ref = torch_opt.state[t]["ax"].double().numpy()
            np.testing.assert_allclose(np.asarray(ax[k], np.float64), ref,
                                       rtol=TOL[dtype], atol=TOL[dtype])


# ---------------------------------------------------------------------------------------------
# Bias corrections and RAdam's rho in float32.


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99, 0.999, 0.9999])
def test_step_scalars_accurate_in_float32(beta):
    t = np.arange(1, 5001, dtype=np.float64)
    one_minus = np.asarray(jax.jit(O._one_minus_pow, static_argnums=0)(beta,
                                                                      jnp.asarray(t, jnp.float32)))
    ref = -np.expm1(t * math.log(beta))
    # The argument t * log(beta) carries two roundings (log(beta) to float32, the product): 2 U32,
    # not amplified since |x e^x / expm1(x)| <= 1 for x < 0; XLA's expm1 adds at most 2 ulps
    # (4 U32). 6 U32 = 3.6e-7.
    np.testing.assert_allclose(one_minus, ref, rtol=4e-7)
    rho = np.asarray(jax.jit(O._radam_rho, static_argnums=0)(beta, jnp.asarray(t, jnp.float32)))
    rho_inf = 2 / (1 - beta) - 1
    rho_ref = rho_inf - 2 * t * beta**t / (1 - beta**t)
    np.testing.assert_allclose(rho, rho_ref, rtol=1e-6)


@pytest.mark.parametrize("beta", [0.999, 0.9999])
def test_optax_float32_bias_correction_is_inaccurate(beta):
    """What the accurate step scalars buy: optax's float32 ``1 - f32(beta)**t`` (Adam's second
    moment, beta2 = 0.999 by default) is off by far more than our 6 U32 bound, because
    ``f32(beta)`` is not ``beta`` and the subtraction cancels. A property of the formula in
    float32, the same on every CPU."""
    t = np.arange(1, 5001)
    inv = np.asarray(jax.jit(optax.tree_utils.tree_bias_correction, static_argnums=1)(
        jnp.ones(t.shape, jnp.float32), beta, jnp.asarray(t, jnp.int32)), np.float64)
    err = np.max(np.abs(inv * -np.expm1(t * math.log(beta)) - 1.0))
    assert err > 100 * U32, f"optax's bias correction is within {err:.3g} of exact"


# ---------------------------------------------------------------------------------------------
# Gradients from a real loss: differences feed back through the params.

_C = {k: np.linspace(0.5, 2.0, int(np.prod(s))).reshape(s) for k, s in
      {"a": (7, 5), "b": (3,), "c": (2, 3, 4), "d": ()}.items()}


# Strongly convex (curvature >= 0.25), so differences contract instead of growing chaotically.
def _loss_jax(p):
    return sum(jnp.sum(0.5 * _C[k] * p[k] ** 2 + 0.25 * jnp.sin(p[k])) for k in p)


def _loss_torch(p):
    return sum(torch.sum(0.5 * torch.as_tensor(_C[k]).to(p[k].dtype) * p[k] ** 2
                         + 0.25 * torch.sin(p[k])) for k in p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row_id", ["sgd_nesterov_wd", "adamw", "nadam", "radam",
                                    "rmsprop_centered_momentum_wd", "adagrad", "adafactor"])
def test_real_loss(row_id, dtype):
    row, steps = BY_ID[row_id], 50
    with precision(dtype):
        keys = sorted(PARAMS)
        tp = {k: torch.tensor(PARAMS[k], dtype=getattr(torch, dtype), requires_grad=True)
              for k in keys}
        topt = row.torch([tp[k] for k in keys])
        opt = row.jaxfund()

        @jax.jit
        def step(p, s):
            u, s = opt.update(jax.grad(_loss_jax)(p), s, p)
            return optax.apply_updates(p, u), s

        p = {k: jnp.asarray(v, dtype) for k, v in PARAMS.items()}
        s = opt.init(p)
        for _ in range(steps):
            topt.zero_grad()
            _loss_torch(tp).backward()
            topt.step()
            p, s = step(p, s)
        for k in keys:
            ref = tp[k].detach().double().numpy()
            np.testing.assert_allclose(np.asarray(p[k], np.float64), ref,
                                       rtol=TOL[dtype], atol=TOL[dtype])


# ---------------------------------------------------------------------------------------------
# Composition with optax.


@pytest.mark.parametrize("dtype", DTYPES)
def test_chain_with_clip_by_global_norm(dtype):
    norms = np.sqrt(sum(np.sum(g.reshape(STEPS, -1) ** 2, axis=1) for g in GRADS.values()))
    factor = np.where(norms < 1.0, 1.0, 1.0 / np.where(norms == 0, 1, norms))
    clipped = {k: g * factor.reshape((STEPS,) + (1,) * (g.ndim - 1)) for k, g in GRADS.items()}
    with precision(dtype):
        ref = run_torch(lambda p: torch.optim.Adam(p, lr=LR), PARAMS, clipped, dtype)[0]
        opt = optax.chain(optax.clip_by_global_norm(1.0), O.adam(LR))
        ours = run_jax(opt, PARAMS, GRADS, dtype)[0]
    assert max_rel_err(ours, ref) <= TOL[dtype]


def _is_kernel(p):
    return jax.tree.map(lambda x: x.ndim >= 2, p)


@pytest.mark.parametrize("how", ["multi_transform", "masked_decay"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_decay_on_kernels_only(how, dtype):
    """AdamW decaying only ndim >= 2 leaves == torch AdamW param groups (wd 0 for the rest)."""

    def groups(t):
        return [{"params": [t["a"], t["c"]]}, {"params": [t["b"], t["d"]], "weight_decay": 0.0}]

    if how == "multi_transform":
        opt = optax.multi_transform(
            {True: O.adamw(LR, weight_decay=0.1), False: O.adamw(LR, weight_decay=0.0)},
            _is_kernel)
    else:
        opt = optax.chain(O.adam(LR), optax.masked(O.add_decoupled_weight_decay(LR, 0.1),
                                                   _is_kernel))
    with precision(dtype):
        ref = run_torch(lambda g: torch.optim.AdamW(g, lr=LR, weight_decay=0.1), PARAMS, GRADS,
                        dtype, groups=groups)[0]
        ours = run_jax(opt, PARAMS, GRADS, dtype)[0]
    assert max_rel_err(ours, ref) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_multisteps_equals_one_step_on_mean_gradient(dtype):
    k = 4
    mean = {n: g.reshape(STEPS // k, k, *g.shape[1:]).mean(axis=1) for n, g in GRADS.items()}
    with precision(dtype):
        ref = run_torch(lambda p: torch.optim.Adam(p, lr=LR, amsgrad=True), PARAMS, mean,
                        dtype)[0]
        # optax accumulates in float32 unless told otherwise (even for float64 params).
        multi = optax.MultiSteps(O.adam(LR, amsgrad=True), k, accumulator_dtype=dtype)
        ours = run_jax(multi, PARAMS, GRADS, dtype)[0]
    assert max_rel_err(ours[k - 1::k], ref) <= TOL[dtype]


def test_schedule_evaluated_at_zero_based_count():
    seen = []
    opt = O.sgd(lambda c: jnp.where(c == 0, 1.0, 0.5))
    p = {"w": jnp.ones(2)}
    s = opt.init(p)
    for _ in range(2):
        u, s = opt.update({"w": jnp.ones(2)}, s, p)
        seen.append(float(u["w"][0]))
    assert seen == [-1.0, -0.5]
    assert warmup_cosine()(0) == 0.0  # the schedule rows start at lr 0 (LambdaLR(0) too)


# ---------------------------------------------------------------------------------------------
# jit with donated state; dtype policy.


def _small_params(dtype):
    return {k: jnp.asarray(v, dtype) for k, v in PARAMS.items()}


@pytest.mark.parametrize("name", O.NAMES)
def test_jit_with_donated_state(name):
    opt = O.get(name)()

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    donated = jax.jit(step, donate_argnums=(0, 1))
    plain = jax.jit(step)
    p1, p2 = _small_params(jnp.float32), _small_params(jnp.float32)
    s1, s2 = opt.init(p1), opt.init(p2)
    for t in range(3):
        g = {k: jnp.asarray(v[t], jnp.float32) for k, v in GRADS.items()}
        p1, s1 = donated(p1, s1, g)
        p2, s2 = plain(p2, s2, g)
    chex.assert_trees_all_equal(p1, p2)
    chex.assert_trees_all_equal(s1, s2)


LOW_PRECISION = [(n, jnp.bfloat16) for n in O.NAMES] + [("adam", jnp.float16),
                                                        ("adafactor", jnp.float16)]


@pytest.mark.parametrize("name,low", LOW_PRECISION)
def test_low_precision_params_keep_float32_state(name, low):
    opt = O.get(name)()
    p = _small_params(low)
    g = {k: jnp.asarray(v[0], low) for k, v in GRADS.items()}
    state = opt.init(p)
    updates, state = jax.jit(opt.update)(g, state, p)
    for u in jax.tree.leaves(updates):
        assert u.dtype == low
    for leaf in jax.tree.leaves(state):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype in (jnp.float32, jnp.result_type(float)), leaf.dtype
    # The float32 state equals a float32 run on the same (upcast) inputs.
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), p)
    g32 = jax.tree.map(lambda x: x.astype(jnp.float32), g)
    u32, s32 = jax.jit(opt.update)(g32, opt.init(p32), p32)
    chex.assert_trees_all_close(state, s32, rtol=1e-2, atol=1e-6)
    chex.assert_trees_all_close(jax.tree.map(lambda x: x.astype(jnp.float32), updates), u32,
                                rtol=1e-2, atol=1e-6)


def test_float64_state_stays_float64():
    with jax.enable_x64(True):
        p = _small_params(jnp.float64)
        for name in ("adam", "nadam", "adafactor"):
            state = O.get(name)().init(p)
            for leaf in jax.tree.leaves(state):
                if jnp.issubdtype(leaf.dtype, jnp.floating):
                    assert leaf.dtype == jnp.float64


# ---------------------------------------------------------------------------------------------
# Construction errors and name lookup.

# (function, kwargs, error, argument named in the message): ValueError for a wrong value,
# TypeError for a wrong type. The building blocks check their arguments too.
INVALID = [
    ("sgd", {"lr": -1.0}, ValueError, "lr"),
    ("sgd", {"momentum": -0.1}, ValueError, "momentum"),
    ("sgd", {"dampening": -0.1}, ValueError, "dampening"),
    ("sgd", {"weight_decay": -1e-4}, ValueError, "weight_decay"),
    ("sgd", {"nesterov": True}, ValueError, "nesterov"),
    ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError, "nesterov"),
    ("adam", {"lr": -1e-3}, ValueError, "lr"),
    ("adam", {"eps": -1e-8}, ValueError, "eps"),
    ("adam", {"betas": (1.0, 0.999)}, ValueError, "betas[0]"),
    ("adam", {"betas": (0.9, -0.1)}, ValueError, "betas[1]"),
    ("adam", {"betas": (0.9, 0.99, 0.999)}, ValueError, "betas"),
    ("adam", {"weight_decay": -1.0}, ValueError, "weight_decay"),
    ("adamw", {"weight_decay": -1.0}, ValueError, "weight_decay"),
    ("nadam", {"momentum_decay": -1.0}, ValueError, "momentum_decay"),
    ("radam", {"betas": (0.9, 1.0)}, ValueError, "betas[1]"),
    ("rmsprop", {"alpha": 1.5}, ValueError, "alpha"),
    ("rmsprop", {"alpha": -0.1}, ValueError, "alpha"),
    ("rmsprop", {"eps": -1.0}, ValueError, "eps"),
    ("rmsprop", {"momentum": -0.9}, ValueError, "momentum"),
    ("adagrad", {"lr_decay": -1.0}, ValueError, "lr_decay"),
    ("adagrad", {"initial_accumulator_value": -0.1}, ValueError, "initial_accumulator_value"),
    ("adagrad", {"eps": -1.0}, ValueError, "eps"),
    ("adamax", {"betas": (-0.1, 0.9)}, ValueError, "betas[0]"),
    ("adadelta", {"rho": 1.1}, ValueError, "rho"),
    ("adadelta", {"lr": -1.0}, ValueError, "lr"),
    ("rprop", {"etas": (1.1, 1.2)}, ValueError, "etas[0]"),
    ("rprop", {"etas": (0.5, 0.9)}, ValueError, "etas[1]"),
    ("rprop", {"step_sizes": (1.0, 0.1)}, ValueError, "step_sizes[1]"),
    ("rprop", {"step_sizes": (-1.0, 1.0)}, ValueError, "step_sizes[0]"),
    ("asgd", {"lambd": -1.0}, ValueError, "lambd"),
    ("asgd", {"alpha": -1.0}, ValueError, "alpha"),
    ("asgd", {"t0": -1.0}, ValueError, "t0"),
    ("asgd", {"weight_decay": -1.0}, ValueError, "weight_decay"),
    ("adafactor", {"beta2_decay": 0.5}, ValueError, "beta2_decay"),
    ("adafactor", {"eps": (-1.0, 1e-3)}, ValueError, "eps[0]"),
    ("adafactor", {"eps": (None, -1e-3)}, ValueError, "eps[1]"),
    ("adafactor", {"d": 0.5}, ValueError, "d"),
    ("lion", {"betas": (0.9, 1.5)}, ValueError, "betas[1]"),
    ("lion", {"weight_decay": -1.0}, ValueError, "weight_decay"),
    ("lamb", {"eps": -1.0}, ValueError, "eps"),
    ("sgd", {"lr": None}, TypeError, "lr"),
    ("sgd", {"momentum": True}, TypeError, "momentum"),
    ("adam", {"betas": 0.9}, TypeError, "betas"),
    ("adam", {"betas": (0.9, "0.999")}, TypeError, "betas[1]"),
    ("adam", {"eps": None}, TypeError, "eps"),
    ("adamw", {"weight_decay": "0.01"}, TypeError, "weight_decay"),
    ("rmsprop", {"alpha": "0.99"}, TypeError, "alpha"),
    ("adagrad", {"lr_decay": None}, TypeError, "lr_decay"),
    ("rprop", {"etas": 0.5}, TypeError, "etas"),
    ("asgd", {"t0": "1e6"}, TypeError, "t0"),
    ("adafactor", {"lr": "fast"}, TypeError, "lr"),
    ("adafactor", {"eps": (None, None)}, TypeError, "eps[1]"),
    ("lion", {"lr": True}, TypeError, "lr"),
    ("add_weight_decay", {"weight_decay": -1.0}, ValueError, "weight_decay"),
    ("add_weight_decay", {"weight_decay": None}, TypeError, "weight_decay"),
    ("scale_by_lr", {"lr": -0.1}, ValueError, "lr"),
    ("scale_by_lr", {"lr": "0.1"}, TypeError, "lr"),
    ("add_decoupled_weight_decay", {"lr": 0.1, "weight_decay": -1.0}, ValueError, "weight_decay"),
    ("add_decoupled_weight_decay", {"lr": -0.1, "weight_decay": 0.1}, ValueError, "lr"),
    ("scale_by_momentum", {"momentum": -0.9}, ValueError, "momentum"),
    ("scale_by_momentum", {"nesterov": True}, ValueError, "nesterov"),
    ("scale_by_adam", {"betas": (0.9, 1.0)}, ValueError, "betas[1]"),
    ("scale_by_adam", {"eps": "1e-8"}, TypeError, "eps"),
    ("scale_by_nadam", {"momentum_decay": -1.0}, ValueError, "momentum_decay"),
    ("scale_by_radam", {"eps": -1.0}, ValueError, "eps"),
    ("scale_by_rmsprop", {"alpha": 2.0}, ValueError, "alpha"),
    ("scale_by_adagrad", {"initial_accumulator_value": -1.0}, ValueError,
     "initial_accumulator_value"),
    ("scale_by_adamax", {"betas": [0.9]}, ValueError, "betas"),
    ("scale_by_adadelta", {"rho": None}, TypeError, "rho"),
    ("scale_by_lion", {"betas": (1.0, 0.99)}, ValueError, "betas[0]"),
]


@pytest.mark.parametrize("name,kwargs,error,arg", INVALID,
                         ids=[f"{n}-{a}-{e.__name__}" for n, _, e, a in INVALID])
def test_invalid_hyperparameters_raise(name, kwargs, error, arg):
    with pytest.raises(error, match=arg.replace("[", r"\[").replace("]", r"\]")):
        getattr(O, name)(**kwargs)


@pytest.mark.parametrize("name", O.NAMES)
def test_lr_is_checked_once(name, monkeypatch):
    """The optimizers check ``lr`` themselves and build from unchecked private pieces."""
    calls = []
    check_lr = O._checks.check_lr
    monkeypatch.setattr(O._checks, "check_lr",
                        lambda *a, **k: calls.append(a) or check_lr(*a, **k))
    O.get(name)(lr=0.1)
    assert len(calls) == 1, calls


# The optimizer and the same chain built by hand from the public pieces. They must agree
# exactly, step for step (the same code runs in both).
WD, MOMENTUM = 0.1, 0.9
HANDMADE = [
    ("sgd", lambda: O.sgd(LR, MOMENTUM, weight_decay=WD, nesterov=True),
     lambda: optax.chain(O.add_weight_decay(WD), O.scale_by_momentum(MOMENTUM, nesterov=True),
                         O.scale_by_lr(LR))),
    ("adam", lambda: O.adam(LR, weight_decay=WD),
     lambda: optax.chain(O.add_weight_decay(WD), O.scale_by_adam(), O.scale_by_lr(LR))),
    ("adam_maximize", lambda: O.adam(LR, amsgrad=True, maximize=True),
     lambda: optax.chain(O.maximize(), O.scale_by_adam(amsgrad=True), O.scale_by_lr(LR))),
    ("adamw", lambda: O.adamw(LR, weight_decay=WD),
     lambda: optax.chain(O.scale_by_adam(), O.scale_by_lr(LR),
                         O.add_decoupled_weight_decay(LR, WD))),
    ("nadam", lambda: O.nadam(LR, weight_decay=WD),
     lambda: optax.chain(O.add_weight_decay(WD), O.scale_by_nadam(), O.scale_by_lr(LR))),
    ("radam", lambda: O.radam(LR, weight_decay=WD, decoupled_weight_decay=True),
     lambda: optax.chain(O.scale_by_radam(), O.scale_by_lr(LR),
                         O.add_decoupled_weight_decay(LR, WD))),
    ("rmsprop", lambda: O.rmsprop(LR, weight_decay=WD, momentum=MOMENTUM, centered=True),
     lambda: optax.chain(O.add_weight_decay(WD),
                         O.scale_by_rmsprop(momentum=MOMENTUM, centered=True),
                         O.scale_by_lr(LR))),
    ("adagrad", lambda: O.adagrad(LR, weight_decay=WD, initial_accumulator_value=0.1),
     lambda: optax.chain(O.add_weight_decay(WD), O.scale_by_adagrad(0.1), O.scale_by_lr(LR))),
    ("adamax", lambda: O.adamax(LR, weight_decay=WD),
     lambda: optax.chain(O.add_weight_decay(WD), O.scale_by_adamax(), O.scale_by_lr(LR))),
    ("adadelta", lambda: O.adadelta(LR, weight_decay=WD),
     lambda: optax.chain(O.add_weight_decay(WD), O.scale_by_adadelta(), O.scale_by_lr(LR))),
    ("lion", lambda: O.lion(LR, weight_decay=WD),
     lambda: optax.chain(O.scale_by_lion(), O.scale_by_lr(LR),
                         O.add_decoupled_weight_decay(LR, WD))),
]


@pytest.mark.parametrize("name,optimizer,handmade", HANDMADE, ids=[h[0] for h in HANDMADE])
def test_handmade_chain_equals_optimizer(name, optimizer, handmade):
    ours = run_jax(optimizer(), PARAMS, GRADS, "float32")[0]
    theirs = run_jax(handmade(), PARAMS, GRADS, "float32")[0]
    np.testing.assert_array_equal(ours, theirs)


def test_direction_defaults_are_the_optimizer_defaults():
    import inspect
    pairs = {"scale_by_momentum": "sgd", "scale_by_adam": "adam", "scale_by_nadam": "nadam",
             "scale_by_radam": "radam", "scale_by_rmsprop": "rmsprop",
             "scale_by_adagrad": "adagrad", "scale_by_adamax": "adamax",
             "scale_by_adadelta": "adadelta", "scale_by_lion": "lion"}
    assert set(pairs) == {n for n in O.__all__ if n.startswith("scale_by_")} - {"scale_by_lr"}
    for direction, optimizer in pairs.items():
        theirs = inspect.signature(getattr(O, optimizer)).parameters
        for arg, prm in inspect.signature(getattr(O, direction)).parameters.items():
            assert prm.default == theirs[arg].default, f"{direction}.{arg}"


def test_stateless_pieces_carry_no_count():
    p = {"w": jnp.ones(2)}
    assert O.maximize().init(p) == optax.EmptyState()
    assert O.add_weight_decay(0.1).init(p) == optax.EmptyState()
    assert O.scale_by_lr(optax.linear_schedule(1.0, 0.0, 10)).init(p).count == 0


def test_get_accepts_torch_names():
    for spelling, fn in [("adamw", O.adamw), ("AdamW", O.adamw), ("SGD", O.sgd),
                         ("RMSprop", O.rmsprop), ("NAdam", O.nadam), ("RAdam", O.radam),
                         ("Adagrad", O.adagrad), ("ASGD", O.asgd), ("Rprop", O.rprop),
                         ("Adafactor", O.adafactor), ("Lion", O.lion), ("LAMB", O.lamb)]:
        assert O.get(spelling) is fn
    with pytest.raises(ValueError, match="adamw"):
        O.get("adamx")
    assert set(O.NAMES) <= set(O.__all__)
    assert all(callable(O.get(n)) for n in O.NAMES)


def test_defaults_are_torch_defaults():
    import inspect
    pairs = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
             "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam,
             "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
             "adamax": torch.optim.Adamax, "adadelta": torch.optim.Adadelta,
             "rprop": torch.optim.Rprop, "asgd": torch.optim.ASGD,
             "adafactor": torch.optim.Adafactor}
    for name, cls in pairs.items():
        ours = inspect.signature(O.get(name)).parameters
        theirs = inspect.signature(cls).parameters
        for arg, prm in ours.items():
            assert arg in theirs, f"{name}: torch has no argument {arg}"
            assert prm.default == theirs[arg].default, f"{name}.{arg}"
