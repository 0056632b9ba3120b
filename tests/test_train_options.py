"""Options of :mod:`jaxfund.train`: batch pytrees (dict batches, auxiliary metrics), the
non-finite guard, data-parallel divisibility, mixed precision (``compute_dtype``), gradient
accumulation (``microbatches``) and donation.

References are float64 NumPy computations written here (the MLP's forward and backward pass, an
SGD trajectory of a linear model) or exact dyadic arithmetic; tolerances are rounding-error
bounds derived from the arithmetic (Higham, *Accuracy and Stability of Numerical Algorithms*):
``n`` roundings of unit roundoff ``u`` cost at most ``gamma(n) = n u / (1 - n u)`` relative to
the sum of the absolute values of the terms involved (``u = 2**-24`` in float32, ``2**-8`` in
bfloat16, ``2**-11`` in float16). Every ``exp`` and ``log`` is allotted 4 roundings (XLA:CPU's
are accurate to a few ulps). A bound holds for any summation order, so for any x86 CPU.
"""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxfund import data, losses, models, optimizers, train

U32 = 2.0**-24
UNIT_ROUNDOFF = {"float32": U32, "bfloat16": 2.0**-8, "float16": 2.0**-11}


def gamma(n, u=U32):
    """Bound on the relative error of ``n`` roundings of unit roundoff ``u``."""
    assert n * u < 1
    return n * u / (1 - n * u)


@pytest.fixture(scope="module")
def iris():
    return data.load("iris")


# --- A relu MLP with mean cross-entropy: float64 reference of one SGD step -------------------

MLP = models.MLP(4, (16,), 3)
LR = 0.125  # a power of two: lr * g is exact in float32


def _mlp_params():
    return MLP.init(jax.random.key(0))


def _mlp_sgd_reference(params, x, y, lr, microbatches=1):
    """One SGD step of ``MLP`` with mean cross-entropy on ``(x, y)`` in float64, and bounds on
    the error of any float32 evaluation of it (whole batch, or ``microbatches`` equal parts).

    Error analysis (first order; ``K, H, C`` = input, hidden, class widths, ``B`` = batch):

    - magnitudes ``F = |x||W1| + |b1|`` (>= |z|, |h|) and ``O = F|W2| + |b2|`` (>= |logits|);
      the float32 logits are off by at most ``eps_o = gamma(K + H + 2) max O`` (two dot
      products and two bias additions).
    - softmax is shift-invariant, so ``log p`` moves by at most ``2 eps_o``; with ``C + 6``
      roundings of its own, ``p`` has relative error ``rho = 2 eps_o + gamma(C + 6)``.
    - ``delta = (p - onehot) / B`` (``1/B`` exact: B a power of two) is off by
      ``(rho + u) P`` with ``P = (p + onehot) / B``; backpropagating through ``W2`` (C terms)
      and summing over the batch (``n_sum`` roundings: ``B`` for the whole batch, ``B/k`` per
      part, ``k`` for the sum of parts and one for ``/ k``) gives, for each gradient entry,
      ``|error| <= tau M`` with ``tau = rho + gamma(K + C + n_sum + 2)`` and ``M`` the
      gradient computed on absolute values (``|x|^T (P |W2|^T)`` etc., relu mask dropped).
    - the update ``p - lr g`` adds one rounding of ``|p'|`` (``lr g`` is exact).
    - the loss ``l_j = lse_j - o_jy``: ``2 eps_o`` from the logits plus ``gamma(C + 8)`` of
      ``1 + |log s| + |o_y - max| + l_j`` (exp, sum, log, two subtractions), then the mean.

    Preconditions that make the bound valid are asserted: no pre-activation is within its
    error of 0 (the relu mask is the same) and no prediction is within ``2 eps_o`` of a tie
    (the accuracy is exact).
    """
    (w1, b1), (w2, b2) = [(np.float64(layer["w"]), np.float64(layer["b"])) for layer in params]
    x = np.float64(x)
    (B, K), H, C = x.shape, w1.shape[1], w2.shape[1]
    z = x @ w1 + b1
    h = np.maximum(z, 0.0)
    o = h @ w2 + b2
    row_max = o.max(axis=1, keepdims=True)
    log_s = np.log(np.exp(o - row_max).sum(axis=1, keepdims=True))
    lse = row_max + log_s
    onehot = np.eye(C)[y]
    p = np.exp(o - lse)
    picked = o[np.arange(B), y]
    losses_ = lse[:, 0] - picked
    delta = (p - onehot) / B
    dh = (delta @ w2.T) * (z > 0)
    grads = [{"w": x.T @ dh, "b": dh.sum(0)}, {"w": h.T @ delta, "b": delta.sum(0)}]
    new_params = [{name: np.float64(layer[name]) - lr * g[name] for name in g}
                  for layer, g in zip(params, grads)]

    F = np.abs(x) @ np.abs(w1) + np.abs(b1)
    O = F @ np.abs(w2) + np.abs(b2)
    eps_o = gamma(K + H + 2) * O.max()
    assert np.all(np.abs(z) > gamma(K + 1) * F), "a pre-activation is within rounding of 0"
    top2 = np.sort(o, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 2 * eps_o), "a prediction is within rounding of a tie"
    n_sum = B // microbatches + microbatches + 2
    rho = 2 * eps_o + gamma(C + 6)
    tau = rho + gamma(K + C + n_sum + 2)
    P = (p + onehot) / B
    D = P @ np.abs(w2).T
    magnitudes = [{"w": np.abs(x).T @ D, "b": D.sum(0)}, {"w": F.T @ P, "b": P.sum(0)}]
    params_bound = [{name: lr * tau * m[name] + gamma(1) * np.abs(new[name]) for name in m}
                    for m, new in zip(magnitudes, new_params)]
    loss = losses_.mean()
    loss_bound = (2 * eps_o
                  + gamma(C + 8) * np.max(1 + np.abs(log_s[:, 0]) + np.abs(picked - row_max[:, 0])
                                          + losses_)
                  + gamma(n_sum + 1) * loss)
    return {"params": new_params, "params_bound": params_bound, "grads": grads,
            "loss": loss, "loss_bound": loss_bound,
            "accuracy": np.mean(o.argmax(axis=1) == y),
            "mean_logit": o.mean(),
            "mean_logit_bound": eps_o + gamma(B * C + 1) * np.abs(o).mean()}


def _dict_apply(params, batch):
    return MLP.apply(params, batch["image"])


def _dict_loss(outputs, batch):
    return losses.cross_entropy(outputs, batch["label"]), {"mean_logit": jnp.mean(outputs)}


STEP_BATCH = 32
# (batch kind, microbatches): a dict batch is fed whole to the model and the loss.
STEP_CASES = [("pair", 1), ("dict", 1), ("pair", 2), ("pair", 4), ("pair", 8), ("dict", 4)]


@pytest.fixture(scope="module")
def mlp_steps(iris):
    """``run(kind, microbatches)``: one SGD step from ``_mlp_params()`` on the first 32 iris
    examples, as NumPy (computed once per case)."""
    x, y = iris.x_train[:STEP_BATCH], iris.y_train[:STEP_BATCH]
    cache = {}

    def run(kind, microbatches):
        if (kind, microbatches) not in cache:
            tx = optimizers.sgd(lr=LR)
            if kind == "pair":
                step = train.make_train_step(MLP.apply, losses.cross_entropy, tx,
                                             microbatches=microbatches)
                batch = (x, y)
            else:
                step = train.make_train_step(_dict_apply, _dict_loss, tx,
                                             microbatches=microbatches)
                batch = {"image": x, "label": y}
            state, metrics = step(train.TrainState.create(_mlp_params(), tx), batch)
            cache[kind, microbatches] = jax.device_get((state, metrics))
        return cache[kind, microbatches]

    run.x, run.y = x, y
    return run


def _assert_within(actual, expected, bound):
    """Every leaf of ``actual`` within ``bound`` of ``expected`` (all pytrees)."""
    for a, e, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected),
                       jax.tree.leaves(bound)):
        err = np.abs(np.float64(a) - e)
        assert np.all(err <= b), f"max error {err.max():.3g}, bound at that entry " \
                                 f"{np.ravel(b)[np.argmax(err - b)]:.3g}"


@pytest.mark.parametrize("kind,microbatches", STEP_CASES)
def test_train_step_matches_float64_reference(mlp_steps, kind, microbatches):
    state, metrics = mlp_steps(kind, microbatches)
    ref = _mlp_sgd_reference(_mlp_params(), mlp_steps.x, mlp_steps.y, LR, microbatches)
    # The tolerance is far below the step itself, so a wrong update cannot hide in it.
    step_size = [LR * np.abs(g["w"]).max() for g in ref["grads"]]
    assert all(np.max(b["w"]) < 1e-3 * s for b, s in zip(ref["params_bound"], step_size))
    _assert_within(state.params, ref["params"], ref["params_bound"])
    assert int(state.step) == 1
    assert metrics["loss"].dtype == np.float32
    assert abs(float(metrics["loss"]) - ref["loss"]) <= ref["loss_bound"]
    if kind == "pair":
        assert sorted(metrics) == ["accuracy", "loss"]
        # k/32 and the mean of k equal parts' accuracies are exact in float32.
        assert float(metrics["accuracy"]) == ref["accuracy"]
    else:
        assert sorted(metrics) == ["loss", "mean_logit"]
        assert abs(float(metrics["mean_logit"]) - ref["mean_logit"]) <= ref["mean_logit_bound"]


@pytest.mark.parametrize("microbatches", [2, 4, 8])
def test_microbatched_step_equals_whole_batch_step(mlp_steps, microbatches):
    """ONE update with the mean of the parts' gradients: the whole batch's step up to the
    rounding of both (a sum of k partial means vs one mean), bounded as in the reference."""
    whole, whole_metrics = mlp_steps("pair", 1)
    parts, parts_metrics = mlp_steps("pair", microbatches)
    ref_whole = _mlp_sgd_reference(_mlp_params(), mlp_steps.x, mlp_steps.y, LR, 1)
    ref_parts = _mlp_sgd_reference(_mlp_params(), mlp_steps.x, mlp_steps.y, LR, microbatches)
    bound = jax.tree.map(np.add, ref_whole["params_bound"], ref_parts["params_bound"])
    _assert_within(parts.params, jax.tree.map(np.float64, whole.params), bound)
    assert int(parts.step) == int(whole.step) == 1
    assert abs(float(parts_metrics["loss"]) - float(whole_metrics["loss"])) <= (
        ref_whole["loss_bound"] + ref_parts["loss_bound"])
    assert float(parts_metrics["accuracy"]) == float(whole_metrics["accuracy"])


def test_dict_batch_step_equals_pair_step(mlp_steps):
    pair, pair_metrics = mlp_steps("pair", 1)
    as_dict, dict_metrics = mlp_steps("dict", 1)
    ref = _mlp_sgd_reference(_mlp_params(), mlp_steps.x, mlp_steps.y, LR, 1)
    _assert_within(as_dict.params, jax.tree.map(np.float64, pair.params),
                   jax.tree.map(lambda b: 2 * b, ref["params_bound"]))
    assert abs(float(dict_metrics["loss"]) - float(pair_metrics["loss"])) <= 2 * ref["loss_bound"]


# --- Invalid batches and arguments ------------------------------------------------------------

def _step_call(batch, loss_fn=_dict_loss, **kwargs):
    tx = optimizers.sgd(lr=LR)
    step = train.make_train_step(_dict_apply, loss_fn, tx, **kwargs)
    return lambda: step(train.TrainState.create(_mlp_params(), tx), batch)


def _eval_call(batch, loss_fn=_dict_loss):
    return lambda: train.make_eval_step(_dict_apply, loss_fn)(_mlp_params(), batch)


def _fit_call(train_data, eval_data=None, **kwargs):
    tx = optimizers.sgd(lr=LR)
    kwargs = {"epochs": 1, "batch_size": 32, **kwargs}
    return lambda: train.fit(train.TrainState.create(_mlp_params(), tx), train_data,
                             apply_fn=_dict_apply, loss_fn=_dict_loss, tx=tx,
                             eval_data=eval_data, **kwargs)


def _batch(ds, n=32, **changes):
    """The first ``n`` training examples as ``{"image", "label"}``, with leaves replaced or
    added by ``changes`` (name -> value)."""
    return {"image": ds.x_train[:n], "label": ds.y_train[:n], **changes}


def _per_example_loss(outputs, batch):
    return losses.cross_entropy(outputs, batch["label"], reduction="none")


INVALID = [
    ("step, leaves of different sizes",
     lambda ds: _step_call({"image": ds.x_train[:8], "label": ds.y_train[:9]}),
     r"same number of examples \(leading axis\), got batch\['image'\]: 8, batch\['label'\]: 9"),
    ("step, scalar leaf",
     lambda ds: _step_call(_batch(ds, scale=np.float32(2.0))),
     r"batch\['scale'\] is a scalar; every leaf of a batch needs a leading example axis"),
    ("step, per-example loss",
     lambda ds: _step_call(_batch(ds), loss_fn=_per_example_loss),
     r"loss_fn must return a scalar loss .*got shape \(32,\)"),
    ("eval, leaves of different sizes",
     lambda ds: _eval_call(_batch(ds, label=ds.y_train[:31])),
     r"got batch\['image'\]: 32, batch\['label'\]: 31"),
    ("eval, per-example loss",
     lambda ds: _eval_call(_batch(ds), loss_fn=_per_example_loss),
     r"loss_fn must return a scalar loss"),
    ("fit, train_data leaves of different sizes",
     lambda ds: _fit_call({"image": ds.x_train, "label": ds.y_train[:100]}),
     r"got train_data\['image'\]: 120, train_data\['label'\]: 100"),
    ("fit, eval_data scalar leaf",
     lambda ds: _fit_call(_batch(ds, 120), eval_data={"image": ds.x_test, "label": ds.y_test,
                                                      "scale": np.float32(2.0)}),
     r"eval_data\['scale'\] is a scalar"),
    ("step, microbatches=0",
     lambda ds: _step_call(_batch(ds), microbatches=0),
     r"microbatches must be >= 1, got 0"),
    ("step, batch not divisible by microbatches",
     lambda ds: _step_call(_batch(ds), microbatches=3),
     r"the batch size 32 must be divisible by microbatches=3"),
    ("fit, microbatches=0",
     lambda ds: _fit_call(_batch(ds, 120), microbatches=0),
     r"microbatches must be >= 1, got 0"),
    ("fit, batch_size not divisible by microbatches",
     lambda ds: _fit_call(_batch(ds, 120), microbatches=3),
     r"batch_size=32 must be divisible by microbatches=3"),
    ("step, an extra metric named loss",
     lambda ds: _step_call(_batch(ds), loss_fn=lambda out, batch: (
         _dict_loss(out, batch)[0], {"loss": jnp.float32(0.0)})),
     r"extra metrics may not be named \['loss'\]"),
    ("step, pair batch, an extra metric named accuracy",
     lambda ds: lambda: train.make_train_step(MLP.apply, lambda out, y: (
         losses.cross_entropy(out, y), {"accuracy": jnp.float32(1.0)}), optimizers.sgd(lr=LR))(
         train.TrainState.create(_mlp_params(), optimizers.sgd(lr=LR)),
         (ds.x_train[:32], ds.y_train[:32])),
     r"extra metrics may not be named \['accuracy'\]"),
] + [
    (f"{name}, compute_dtype={dtype}", call, rf"compute_dtype must be a floating dtype .*{dtype}")
    for dtype in ("int32", "nonsense")
    for name, call in [
        ("step", lambda ds, dtype=dtype: _step_call(_batch(ds), compute_dtype=dtype)),
        ("eval", lambda ds, dtype=dtype: lambda: train.make_eval_step(
            MLP.apply, losses.cross_entropy, compute_dtype=dtype)),
        ("fit", lambda ds, dtype=dtype: _fit_call(_batch(ds, 120), compute_dtype=dtype)),
    ]
]


@pytest.mark.parametrize("name,make_call,match", INVALID, ids=[row[0] for row in INVALID])
def test_invalid_batches_and_options_raise(iris, name, make_call, match):
    with pytest.raises(ValueError, match=match):
        make_call(iris)()


# --- fit: a linear model with a float64 SGD trajectory as reference ---------------------------

LINEAR = models.MLP(4, (), 1)
LINEAR_LR = 2.0**-4
FIT_BATCH, FIT_EPOCHS, FIT_SEED = 32, 2, 3


def _mae_loss(outputs, batch):
    residual = outputs[..., 0] - batch["y"]
    return losses.mse_loss(outputs[..., 0], batch["y"]), {"mae": jnp.mean(jnp.abs(residual))}


def _pair_loss(outputs, y):
    return losses.mse_loss(outputs[..., 0], y)


def _linear_trajectory(params, x, y, x_test, y_test, microbatches):
    """SGD of ``outputs = x w + b`` with mean squared error, in float64, along the documented
    shuffle (epoch ``e``: ``default_rng([seed, e]).permutation(n)``, ragged end dropped), with a
    bound on the distance of any float32 run.

    Per step, with ``X`` the batch with a column of ones, ``theta = (w, b)``,
    ``r = X theta - y``, ``g = (2/B) X^T r``: a float32 gradient at the same theta is off by
    at most ``gamma(K + 3 + n_sum) M`` with ``R = |X||theta| + |y|`` (>= |r| and its terms) and
    ``M = (2/B)|X|^T R`` (K + 1 roundings for ``x w + b``, one for ``- y``, one for ``2 r / B``,
    ``n_sum`` for the batch sum, as in ``_mlp_sgd_reference``). The map ``theta -> theta - lr g``
    is linear with matrix ``I - lr Hb`` (``Hb = (2/B) X^T X``), a contraction in the 2-norm when
    ``lr lambda_max(Hb) <= 2`` (asserted), so the 2-norm distance ``d`` of a float32 run to the
    reference grows per step by at most ``lr ||gamma M||`` plus one rounding of the new theta.
    A loss computed at the run's theta differs from the reference by ``||g|| d + lambda d^2 / 2``
    plus its own rounding ``2 gamma(K + 2) mean(|r| R) + gamma(n_sum + 2) loss``.
    """
    theta = np.concatenate([np.float64(params[0]["w"][:, 0]), np.float64(params[0]["b"])])
    x1 = np.hstack([np.float64(x), np.ones((len(x), 1))])
    y = np.float64(y)
    n, K = x.shape
    num_batches = n // FIT_BATCH
    n_sum = FIT_BATCH // microbatches + microbatches + 2
    distance = 0.0
    history = []
    for epoch in range(1, FIT_EPOCHS + 1):
        order = np.random.default_rng([FIT_SEED, epoch]).permutation(n)
        order = order[: num_batches * FIT_BATCH].reshape(num_batches, FIT_BATCH)
        step_losses, step_maes, loss_bounds, mae_bounds = [], [], [], []
        for indices in order:
            X, Y = x1[indices], y[indices]
            hessian = 2 / FIT_BATCH * X.T @ X
            lam = np.linalg.eigvalsh(hessian).max()
            assert LINEAR_LR * lam <= 2
            r = X @ theta - Y
            g = 2 / FIT_BATCH * X.T @ r
            R = np.abs(X) @ np.abs(theta) + np.abs(Y)
            M = 2 / FIT_BATCH * np.abs(X).T @ R
            loss = np.mean(r**2)
            step_losses.append(loss)
            step_maes.append(np.mean(np.abs(r)))
            loss_bounds.append(2 * gamma(K + 2) * np.mean(np.abs(r) * R)
                               + gamma(n_sum + 2) * loss
                               + np.linalg.norm(g) * distance + lam * distance**2 / 2)
            mae_bounds.append(gamma(K + 2) * np.mean(R) + gamma(n_sum + 1) * np.mean(np.abs(r))
                              + np.linalg.norm(X, axis=1).max() * distance)
            theta = theta - LINEAR_LR * g
            distance += (LINEAR_LR * np.linalg.norm(gamma(K + 3 + n_sum) * M)
                         + gamma(1) * np.linalg.norm(theta))
        steps = len(order)
        history.append({
            "train_loss": np.mean(step_losses),
            "train_loss_bound": np.mean(loss_bounds) + gamma(steps) * np.mean(step_losses),
            "train_mae": np.mean(step_maes),
            "train_mae_bound": np.mean(mae_bounds) + gamma(steps) * np.mean(step_maes),
        })
    X, Y = np.hstack([np.float64(x_test), np.ones((len(x_test), 1))]), np.float64(y_test)
    r = X @ theta - Y
    R = np.abs(X) @ np.abs(theta) + np.abs(Y)
    g = 2 / len(X) * X.T @ r
    lam = np.linalg.eigvalsh(2 / len(X) * X.T @ X).max()
    test = {
        "test_loss": np.mean(r**2),
        "test_loss_bound": (2 * gamma(K + 2) * np.mean(np.abs(r) * R)
                            + gamma(len(X) + 2) * np.mean(r**2)
                            + np.linalg.norm(g) * distance + lam * distance**2 / 2),
        "test_mae": np.mean(np.abs(r)),
        "test_mae_bound": (gamma(K + 2) * np.mean(R) + gamma(len(X) + 1) * np.mean(np.abs(r))
                           + np.linalg.norm(X, axis=1).max() * distance),
    }
    return {"theta": theta, "distance": distance, "history": history, "test": test}


FIT_CASES = [("pair", 1), ("dict", 1), ("pair", 4), ("dict", 2)]


@pytest.fixture(scope="module")
def linear_fits(iris):
    """``run(kind, microbatches)``: the fit of ``LINEAR`` (regression on the iris labels as
    floats) and its float64 reference (computed once per case)."""
    x, y = iris.x_train, iris.y_train.astype(np.float32)
    x_test, y_test = iris.x_test, iris.y_test.astype(np.float32)
    params = LINEAR.init(jax.random.key(1))
    cache = {}

    def run(kind, microbatches):
        if (kind, microbatches) not in cache:
            tx = optimizers.sgd(lr=LINEAR_LR)
            kwargs = dict(tx=tx, task="regression", epochs=FIT_EPOCHS, batch_size=FIT_BATCH,
                          seed=FIT_SEED, microbatches=microbatches)
            state = train.TrainState.create(params, tx)
            if kind == "pair":
                result = train.fit(state, (x, y), apply_fn=LINEAR.apply, loss_fn=_pair_loss,
                                   eval_data=(x_test, y_test), **kwargs)
            else:
                result = train.fit(state, {"x": x, "y": y},
                                   apply_fn=lambda p, batch: LINEAR.apply(p, batch["x"]),
                                   loss_fn=_mae_loss, eval_data={"x": x_test, "y": y_test},
                                   **kwargs)
            reference = _linear_trajectory(params, x, y, x_test, y_test, microbatches)
            cache[kind, microbatches] = (jax.device_get(result.state), result, reference)
        return cache[kind, microbatches]

    return run


def _theta(state):
    return np.concatenate([np.float64(state.params[0]["w"][:, 0]),
                           np.float64(state.params[0]["b"])])


@pytest.mark.parametrize("kind,microbatches", FIT_CASES)
def test_fit_matches_float64_sgd_trajectory(linear_fits, kind, microbatches):
    state, result, ref = linear_fits(kind, microbatches)
    assert np.linalg.norm(_theta(state) - ref["theta"]) <= ref["distance"]
    assert int(state.step) == result.steps == FIT_EPOCHS * (120 // FIT_BATCH)
    metric = "mse" if kind == "pair" else "mae"
    assert [sorted(entry) for entry in result.history] == [sorted(
        ["epoch", "train_loss", f"train_{metric}", "test_loss", f"test_{metric}", "skipped",
         "seconds"])] * FIT_EPOCHS
    for entry, expected in zip(result.history, ref["history"]):
        assert entry["skipped"] == 0
        assert abs(entry["train_loss"] - expected["train_loss"]) <= expected["train_loss_bound"]
        if kind == "dict":  # the loss function's extra metric, reported as train_/test_mae
            assert abs(entry["train_mae"] - expected["train_mae"]) <= expected["train_mae_bound"]
        else:  # the task's metric, mean((outputs[..., 0] - y)**2), is the loss here
            assert abs(entry["train_mse"] - expected["train_loss"]) <= expected["train_loss_bound"]
    last, test = result.history[-1], ref["test"]
    assert abs(last["test_loss"] - test["test_loss"]) <= test["test_loss_bound"]
    if kind == "dict":
        assert abs(last["test_mae"] - test["test_mae"]) <= test["test_mae_bound"]


@pytest.mark.parametrize("kind,microbatches", [case for case in FIT_CASES if case[1] > 1])
def test_fit_with_microbatches_equals_fit_without(linear_fits, kind, microbatches):
    whole_state, whole, whole_ref = linear_fits(kind, 1)
    parts_state, parts, parts_ref = linear_fits(kind, microbatches)
    # Both are within their bound of the same float64 trajectory (the reference does not
    # depend on microbatches), so within the sum of the bounds of each other.
    np.testing.assert_array_equal(whole_ref["theta"], parts_ref["theta"])
    assert np.linalg.norm(_theta(parts_state) - _theta(whole_state)) <= (
        whole_ref["distance"] + parts_ref["distance"])
    assert int(parts_state.step) == int(whole_state.step)
    for a, b, ra, rb in zip(whole.history, parts.history, whole_ref["history"],
                            parts_ref["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= (ra["train_loss_bound"]
                                                          + rb["train_loss_bound"])


def test_fit_dict_data_equals_pair_data(linear_fits):
    pair_state, pair, pair_ref = linear_fits("pair", 1)
    dict_state, as_dict, dict_ref = linear_fits("dict", 1)
    assert np.linalg.norm(_theta(dict_state) - _theta(pair_state)) <= (
        pair_ref["distance"] + dict_ref["distance"])
    for a, b, ref in zip(pair.history, as_dict.history, pair_ref["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 2 * ref["train_loss_bound"]


# --- Mixed precision --------------------------------------------------------------------------

# A 2-2-3 relu MLP on 8 examples in which every product and partial sum is a multiple of 2**-6
# below 4 in magnitude (8 significant bits), so exact in bfloat16 and float16: the model's
# outputs are known exactly, whatever the order of summation.
DYADIC_PARAMS = [
    {"w": np.array([[0.5, -0.75], [0.25, 1.0]], np.float32),
     "b": np.array([0.1875, -0.0625], np.float32)},
    {"w": np.array([[0.75, -0.5, 0.25], [-0.25, 0.5, 0.75]], np.float32),
     "b": np.array([0.0, 0.25, -0.5], np.float32)},
]
DYADIC_X = np.array([[1.0, 0.5], [-0.5, 1.0], [0.5, -1.0], [1.0, 1.0], [-1.0, -0.5],
                     [0.5, 0.5], [-0.5, -1.0], [1.0, -0.5]], np.float32)
DYADIC_Y = np.array([0, 2, 1, 2, 1, 0, 1, 0], np.int32)
DYADIC_MLP = models.MLP(2, (2,), 3)
DYADIC_LR = 0.125
COMPUTE_DTYPES = ["bfloat16", "float16"]


def _dyadic_exact():
    """The exact pre-activations, hidden values and logits, checked to be exact in 8 bits."""
    (w1, b1), (w2, b2) = [(np.float64(layer["w"]), np.float64(layer["b"]))
                          for layer in DYADIC_PARAMS]
    x = np.float64(DYADIC_X)
    z = x @ w1 + b1
    h = np.maximum(z, 0)
    o = h @ w2 + b2
    for terms, bias, total in [(x[:, :, None] * w1, b1, np.abs(x) @ np.abs(w1) + np.abs(b1)),
                               (h[:, :, None] * w2, b2, np.abs(h) @ np.abs(w2) + np.abs(b2))]:
        assert np.all(np.mod(terms * 64, 1) == 0) and np.all(np.mod(bias * 64, 1) == 0)
        assert np.all(total < 4)
    assert np.all(z != 0)  # no relu kink
    return z, h, o


def _own_forward(params, x, dtype):
    """The MLP written out in ``dtype`` with jax (not jaxfund.models)."""
    (w1, b1), (w2, b2) = [(layer["w"].astype(dtype), layer["b"].astype(dtype))
                          for layer in params]
    h = jnp.maximum(x.astype(dtype) @ w1 + b1, 0)
    return h @ w2 + b2


@pytest.mark.parametrize("compute_dtype", COMPUTE_DTYPES)
def test_compute_dtype_loss_is_float32_of_the_outputs(compute_dtype):
    """The loss is the float32 cross-entropy of the (here exact) low-precision outputs, not a
    value rounded to the compute dtype's grid; the update is the exact one up to the compute
    dtype's rounding of the backward pass."""
    z, h, o = _dyadic_exact()
    own = _own_forward(DYADIC_PARAMS, DYADIC_X, compute_dtype)
    np.testing.assert_array_equal(np.float64(own), o)  # the low-precision forward is exact
    own_loss = float(losses.cross_entropy(own.astype(jnp.float32), DYADIC_Y))

    B, C = o.shape
    row_max = o.max(axis=1)
    log_s = np.log(np.exp(o - row_max[:, None]).sum(axis=1))
    picked = o[np.arange(B), DYADIC_Y]
    per_example = row_max + log_s - picked
    loss = per_example.mean()
    # float32 cross-entropy of exact logits: gamma(C + 8) per example (exp, sum, log, two
    # subtractions, see the module docstring), then the mean.
    loss_bound = (gamma(C + 8) * np.max(1 + np.abs(log_s) + np.abs(picked - row_max)
                                        + per_example)
                  + gamma(B + 1) * loss)
    on_grid = float(np.float32(loss).astype(jnp.dtype(compute_dtype)))
    assert abs(on_grid - loss) > 4 * loss_bound  # a loss rounded to the grid would fail

    tx = optimizers.sgd(lr=DYADIC_LR)
    step = train.make_train_step(DYADIC_MLP.apply, losses.cross_entropy, tx,
                                 compute_dtype=compute_dtype)
    state, metrics = step(train.TrainState.create(DYADIC_PARAMS, tx), (DYADIC_X, DYADIC_Y))
    assert metrics["loss"].dtype == jnp.float32
    assert abs(float(metrics["loss"]) - loss) <= loss_bound
    assert abs(float(metrics["loss"]) - own_loss) <= 2 * loss_bound

    # Backward pass in the compute dtype (unit roundoff u): the cotangent of the outputs is
    # rounded once, the weight gradients are dot products over the B examples and, for the
    # first layer, over the C classes, each rounded to the compute dtype: gamma_u(B + C + 3)
    # of the gradient on absolute values, plus float32 softmax rounding gamma(C + 8).
    u = UNIT_ROUNDOFF[compute_dtype]
    w2 = np.float64(DYADIC_PARAMS[1]["w"])
    onehot = np.eye(C)[DYADIC_Y]
    p = np.exp(o - (row_max + log_s)[:, None])
    delta = (p - onehot) / B
    dh = (delta @ w2.T) * (z > 0)
    grads = [{"w": np.float64(DYADIC_X).T @ dh, "b": dh.sum(0)},
             {"w": h.T @ delta, "b": delta.sum(0)}]
    P = (p + onehot) / B
    D = (P @ np.abs(w2).T) * (z > 0)
    magnitudes = [{"w": np.abs(np.float64(DYADIC_X)).T @ D, "b": D.sum(0)},
                  {"w": h.T @ P, "b": P.sum(0)}]
    expected = jax.tree.map(lambda param, g: np.float64(param) - DYADIC_LR * g,
                            DYADIC_PARAMS, grads)
    bound = jax.tree.map(lambda m, e: DYADIC_LR * (gamma(B + C + 3, u) + gamma(C + 8)) * m
                         + gamma(1) * np.abs(e), magnitudes, expected)
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(state.params))
    _assert_within(jax.device_get(state.params), expected, bound)


@pytest.mark.parametrize("compute_dtype", COMPUTE_DTYPES)
def test_compute_dtype_runs_model_low_keeps_master_float32(iris, compute_dtype):
    seen = []

    def recording_apply(params, x):
        seen.append({leaf.dtype.name for leaf in jax.tree.leaves((params, x))})
        return MLP.apply(params, x)

    tx = optimizers.adam(lr=1e-2)
    state = train.TrainState.create(_mlp_params(), tx)
    step = train.make_train_step(recording_apply, losses.cross_entropy, tx,
                                 compute_dtype=compute_dtype)
    state, metrics = step(state, (iris.x_train[:32], iris.y_train[:32]))
    evaluate = train.make_eval_step(recording_apply, losses.cross_entropy,
                                    compute_dtype=compute_dtype)
    test = evaluate(state.params, (iris.x_test, iris.y_test))
    assert seen == [{compute_dtype}, {compute_dtype}]  # traced once by each step
    floats = [leaf for leaf in jax.tree.leaves((state.params, state.opt_state))
              if jnp.issubdtype(leaf.dtype, jnp.floating)]
    assert floats and all(leaf.dtype == jnp.float32 for leaf in floats)
    assert all(metrics[name].dtype == jnp.float32 and test[name].dtype == jnp.float32
               for name in ("loss", "accuracy"))
    assert all(np.isfinite(leaf).all() for leaf in floats)


# --- Non-finite guard -------------------------------------------------------------------------

def test_optimizers_refuse_an_infinite_lr():
    """Why the guard tests below build their infinite step with optax."""
    with pytest.raises(ValueError, match="lr must be finite"):
        optimizers.sgd(lr=float("inf"))


INFINITE_STEPS = {
    "optax.sgd(inf)": lambda: optax.sgd(jnp.inf),
    "sgd then scale(inf)": lambda: optax.chain(optimizers.sgd(lr=0.1), optax.scale(jnp.inf)),
    "adam then scale(inf)": lambda: optax.chain(optimizers.adam(lr=1e-3), optax.scale(jnp.inf)),
}

# Loss, gradients and new params finite; only the optimizer state (a trace of inf gradients,
# clipped before it reaches the params) is not.
INFINITE_STATE = lambda: optax.chain(optax.scale(jnp.inf), optax.trace(decay=0.9),  # noqa: E731
                                     optax.clip(1.0))


def test_skip_nonfinite_guards_the_optimizer_state(iris):
    tx = INFINITE_STATE()
    batch = (iris.x_train[:32], iris.y_train[:32])
    state = train.TrainState.create(_mlp_params(), tx)
    plain, _ = train.make_train_step(MLP.apply, losses.cross_entropy, tx)(state, batch)
    assert _all_finite(plain.params) and not _all_finite(plain.opt_state)
    guarded, metrics = train.make_train_step(MLP.apply, losses.cross_entropy, tx,
                                             skip_nonfinite=True)(state, batch)
    assert int(metrics["skipped"]) == 1 and int(guarded.step) == 0
    assert _all_finite(guarded.opt_state)


def _all_finite(tree):
    return all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", INFINITE_STEPS)
def test_skip_nonfinite_guards_the_updated_params(iris, name):
    """Loss and gradients are finite; only the update is not: the guard must still skip."""
    tx = INFINITE_STEPS[name]()
    batch = (iris.x_train[:32], iris.y_train[:32])
    state = train.TrainState.create(_mlp_params(), tx)
    before = jax.device_get(state)
    plain_state, plain_metrics = train.make_train_step(MLP.apply, losses.cross_entropy,
                                                       tx)(state, batch)
    assert np.isfinite(plain_metrics["loss"]) and not _all_finite(plain_state.params)
    guarded = train.make_train_step(MLP.apply, losses.cross_entropy, tx, skip_nonfinite=True)
    state, metrics = guarded(state, batch)
    assert int(metrics["skipped"]) == 1
    assert _all_finite(state.params)
    for got, want in zip(jax.tree.leaves(jax.device_get(state)), jax.tree.leaves(before)):
        np.testing.assert_array_equal(got, want)  # params, optimizer state, step: unchanged


def _poison_apply(params, model_state, batch, *, train, rng):
    """An MLP whose model state sums the batch's "poison" column (inf in some rows)."""
    del train, rng
    return MLP.apply(params, batch["x"]), {"poison": model_state["poison"]
                                           + jnp.sum(batch["poison"])}


POISON_MODEL = models.Model(_poison_apply)


def _poison_loss(outputs, batch):
    return losses.cross_entropy(outputs, batch["y"])


def _poisoned(ds, rows):
    poison = np.zeros(len(ds.x_train), np.float32)
    poison[rows] = np.inf
    return {"x": ds.x_train, "y": ds.y_train, "poison": poison}


@pytest.mark.parametrize("guard", [False, True])
def test_skip_nonfinite_guards_the_model_state(iris, guard):
    tx = optimizers.sgd(lr=LR)
    data_ = _poisoned(iris, [5])
    batch = jax.tree.map(lambda a: a[:32], data_)
    state = train.TrainState.create(_mlp_params(), tx, {"poison": jnp.zeros((), jnp.float32)})
    step = train.make_train_step(POISON_MODEL, _poison_loss, tx, skip_nonfinite=guard)
    new, metrics = step(state, batch)
    assert np.isfinite(metrics["loss"]) and _all_finite(new.params)
    if guard:
        assert int(metrics["skipped"]) == 1 and int(new.step) == 0
        assert float(new.model_state["poison"]) == 0.0
        new, metrics = step(new, jax.tree.map(lambda a: a[32:64], data_))
        assert int(metrics["skipped"]) == 0 and int(new.step) == 1
    else:
        assert float(new.model_state["poison"]) == np.inf


def test_fit_reports_skipped_steps_per_epoch(iris):
    rows, epochs, seed = [5, 70, 101], 3, 2
    tx = optimizers.sgd(lr=LR)
    state = train.TrainState.create(_mlp_params(), tx, {"poison": jnp.zeros((), jnp.float32)})
    result = train.fit(state, _poisoned(iris, rows), apply_fn=POISON_MODEL,
                       loss_fn=_poison_loss, tx=tx, epochs=epochs, batch_size=FIT_BATCH,
                       seed=seed, skip_nonfinite=True)
    expected = []
    for epoch in range(1, epochs + 1):
        order = np.random.default_rng([seed, epoch]).permutation(120)[:96].reshape(3, 32)
        expected.append(sum(bool(np.isin(rows, batch).any()) for batch in order))
    assert 0 < sum(expected) < 3 * epochs  # some steps skipped, some not
    assert [entry["skipped"] for entry in result.history] == expected
    assert int(result.state.step) == 3 * epochs - sum(expected) and result.steps == 3 * epochs
    assert float(result.state.model_state["poison"]) == 0.0 and _all_finite(result.state.params)
    assert all(np.isfinite(entry["train_loss"]) for entry, skipped in
               zip(result.history, expected) if skipped < 3)


def test_fit_with_infinite_lr_skips_every_step(iris):
    tx = optax.sgd(jnp.inf)
    state = train.TrainState.create(_mlp_params(), tx)
    result = train.fit(state, (iris.x_train, iris.y_train), apply_fn=MLP.apply,
                       loss_fn=losses.cross_entropy, tx=tx, epochs=2, batch_size=FIT_BATCH,
                       skip_nonfinite=True)
    assert [entry["skipped"] for entry in result.history] == [3, 3]
    assert int(result.state.step) == 0 and result.steps == 6
    # No step kept: the train metrics are means over no steps.
    assert all(math.isnan(entry["train_loss"]) for entry in result.history)
    for got, want in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(_mlp_params())):
        np.testing.assert_array_equal(got, want)


# --- Data parallelism: a batch that does not divide the devices -------------------------------

DP_SCRIPT = """
import json, jax
from jaxfund import data, losses, models, optimizers, train
ds = data.load("iris")
model = models.MLP(4, (8,), 3)
tx = optimizers.sgd(lr=0.1)
state = train.TrainState.create(model.init(jax.random.key(0)), tx)
mesh = train.data_mesh()
calls = {
    "make_train_step": lambda b: train.make_train_step(
        model.apply, losses.cross_entropy, tx, mesh=mesh)(state, b),
    "make_eval_step": lambda b: train.make_eval_step(
        model.apply, losses.cross_entropy, mesh=mesh)(state.params, b),
    "fit": lambda b: train.fit(state, (ds.x_train, ds.y_train), apply_fn=model.apply,
                               loss_fn=losses.cross_entropy, tx=tx, epochs=1,
                               batch_size=len(b[0]), mesh=mesh),
}
report = {"devices": jax.device_count(), "mesh": dict(mesh.shape)}
for name, call in calls.items():
    call((ds.x_train[:8], ds.y_train[:8]))  # a divisible batch works
    try:
        call((ds.x_train[:7], ds.y_train[:7]))
        report[name] = None
    except Exception as error:
        report[name] = [type(error).__module__, type(error).__qualname__, str(error)]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def dp_report():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", DP_SCRIPT], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2 and report["mesh"] == {"data": 2}
    return report


@pytest.mark.parametrize("name,message", [
    ("make_train_step",
     "the batch size 7 must be divisible by the 2 devices of the mesh's 'data' axis"),
    ("make_eval_step",
     "the batch size 7 must be divisible by the 2 devices of the mesh's 'data' axis"),
    ("fit", "batch_size=7 must be divisible by the 2 devices of the mesh's 'data' axis"),
])
def test_indivisible_batch_on_a_mesh_raises_one_line_value_error(dp_report, name, message):
    # The library's own error, not jax's IndivisibleError (also a ValueError, many lines).
    assert dp_report[name] == ["builtins", "ValueError", message]


# --- Donation ---------------------------------------------------------------------------------

def test_train_step_keeps_the_callers_state_by_default(iris):
    """Two optimizers trained from one state object: the first step deletes nothing."""
    batch = (iris.x_train[:32], iris.y_train[:32])
    fast, slow = optimizers.sgd(lr=0.5), optimizers.sgd(lr=0.05)
    state = train.TrainState.create(_mlp_params(), fast)
    train.make_train_step(MLP.apply, losses.cross_entropy, fast)(state, batch)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))
    slow_step = train.make_train_step(MLP.apply, losses.cross_entropy, slow)
    from_shared, _ = slow_step(state, batch)
    from_fresh, _ = slow_step(train.TrainState.create(_mlp_params(), slow), batch)
    for a, b in zip(jax.tree.leaves(from_shared), jax.tree.leaves(from_fresh)):
        np.testing.assert_array_equal(a, b)  # same program, same inputs


def test_train_step_donate_true_deletes_the_callers_state(iris):
    tx = optimizers.sgd(lr=LR)
    state = train.TrainState.create(_mlp_params(), tx)
    step = train.make_train_step(MLP.apply, losses.cross_entropy, tx, donate=True)
    new, _ = step(state, (iris.x_train[:32], iris.y_train[:32]))
    assert jax.tree.leaves(state) and all(leaf.is_deleted() for leaf in jax.tree.leaves(state))
    assert int(new.step) == 1 and _all_finite(new.params)
