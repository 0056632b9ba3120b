import functools
import json
import os
import subprocess
import sys
from typing import Any

import chex
import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from jaxfund import checkpoint, data, models, optimizers, tasks, train


@pytest.fixture(autouse=True)
def _fresh_trace_counter():
    chex.clear_trace_counter()
    yield
    chex.clear_trace_counter()


@pytest.fixture(scope="module")
def course():
    return data.load("classification")


def _setup(ds, hidden=(50,), task="multiclass", lr=1e-3, key=0):
    """The course network (20-50-2 relu by default) with Adam, as (model, tx, state)."""
    model = models.MLP(ds.num_features, hidden, tasks.output_features(task, ds.num_classes))
    tx = optimizers.adam(lr=lr)
    return model, tx, train.TrainState.create(model.init(jax.random.key(key)), tx)


def _fit(ds, model, tx, state, task="multiclass", **kwargs):
    kwargs = {"epochs": 3, "batch_size": 32, "eval_data": (ds.x_test, ds.y_test), **kwargs}
    return train.fit(state, (ds.x_train, ds.y_train), apply_fn=model.apply,
                     loss_fn=tasks.loss(task), tx=tx, task=task, **kwargs)


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_train_state_create():
    params = {"w": jnp.ones((2, 3))}
    tx = optimizers.adam(lr=1e-3)
    state = train.TrainState.create(params, tx)
    assert state.step.dtype == jnp.int32 and int(state.step) == 0
    assert state.params is params
    chex.assert_trees_all_equal(state.opt_state, tx.init(params))
    assert jax.tree.structure(state).num_leaves == 1 + 1 + len(jax.tree.leaves(tx.init(params)))


def test_course_full_batch_matches_torch(course):
    """The course's loop (20 full-batch Adam steps on the 800 train samples, 20-50-2 relu MLP)
    with logits into CrossEntropyLoss, in torch from the same initial weights."""
    model, tx, state = _setup(course)
    net = torch.nn.Sequential(torch.nn.Linear(20, 50), torch.nn.ReLU(), torch.nn.Linear(50, 2))
    with torch.no_grad():
        for linear, layer in zip((net[0], net[2]), state.params):
            linear.weight.copy_(torch.from_numpy(np.array(layer["w"]).T))
            linear.bias.copy_(torch.from_numpy(np.array(layer["b"])))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    x, y = torch.from_numpy(course.x_train), torch.from_numpy(course.y_train).long()
    step = train.make_train_step(model.apply, tasks.loss("multiclass"), tx)
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        state, metrics = step(state, (course.x_train, course.y_train))
        np.testing.assert_allclose(metrics["loss"], loss.item(), rtol=2e-6)
    assert int(state.step) == 20
    for linear, layer in zip((net[0], net[2]), state.params):
        np.testing.assert_allclose(layer["w"], linear.weight.detach().numpy().T, atol=2e-6)
        np.testing.assert_allclose(layer["b"], linear.bias.detach().numpy(), atol=2e-6)


def test_course_exercise_trains(course):
    """Minibatches of 32 for 20 epochs reach a sensible accuracy on the course's problem."""
    model, tx, state = _setup(course)
    result = _fit(course, model, tx, state, epochs=20)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    # 0.855 here; the course's own schedule (20 full-batch steps) reaches 0.755 in torch.
    assert result.history[-1]["test_accuracy"] >= 0.8
    assert result.steps == 20 * (800 // 32) and int(result.state.step) == result.steps


def test_digits_reaches_95_percent():
    ds = data.load("digits")
    model, tx, state = _setup(ds, hidden=(64,))
    result = _fit(ds, model, tx, state, epochs=15)
    assert result.history[-1]["test_accuracy"] >= 0.95


@pytest.mark.parametrize("name,task,metric,bound", [
    ("breast_cancer", "binary", "test_accuracy", 0.94),
    ("iris", "multiclass", "test_accuracy", 0.9),
    ("diabetes", "regression", "test_mse", 0.7),
])
def test_other_heads_train(name, task, metric, bound):
    ds = data.load(name)
    model, tx, state = _setup(ds, hidden=(32,), task=task, lr=3e-3)
    result = _fit(ds, model, tx, state, task=task, epochs=30, batch_size=16)
    last = result.history[-1]
    assert (last[metric] >= bound) if metric == "test_accuracy" else (last[metric] <= bound)
    if task == "regression":
        assert "test_accuracy" not in last and "train_accuracy" not in last
        np.testing.assert_allclose(last["test_mse"], last["test_loss"], rtol=1e-6)
        np.testing.assert_allclose(last["train_mse"], last["train_loss"], rtol=1e-6)


def test_history_entries_and_callback(course):
    model, tx, state = _setup(course)
    seen = []
    result = _fit(course, model, tx, state, epochs=3,
                  callback=lambda entry, st: seen.append((entry["epoch"], int(st.step))))
    assert seen == [(1, 25), (2, 50), (3, 75)]
    assert set(result.history[0]) == {"epoch", "train_loss", "train_accuracy", "test_loss",
                                      "test_accuracy", "seconds", "skipped"}
    assert result.compile_seconds > 0 and result.train_seconds > 0
    assert result.train_seconds == pytest.approx(sum(h["seconds"] for h in result.history))


def test_fit_equals_step_loop_with_documented_shuffle(course):
    """An epoch of fit is the train step over default_rng([seed, e]).permutation(n) in batches,
    with the ragged last batch dropped (800 = 7 * 112 + 16)."""
    model, tx, state = _setup(course)
    loop_state = train.TrainState.create(jax.tree.map(jnp.array, state.params), tx)
    result = _fit(course, model, tx, state, epochs=2, batch_size=112, seed=5)
    step = train.make_train_step(model.apply, tasks.loss("multiclass"), tx)
    for epoch in (1, 2):
        order = np.random.default_rng([5, epoch]).permutation(800)
        for i in range(7):
            idx = order[112 * i: 112 * (i + 1)]
            loop_state, _ = step(loop_state, (course.x_train[idx], course.y_train[idx]))
    assert result.steps == 14 and int(loop_state.step) == 14
    # Same operations; XLA may fuse the scan body differently from the standalone step.
    assert _max_diff(result.state.params, loop_state.params) <= 1e-6


def test_step_and_epoch_compile_once():
    """chex.assert_max_traces inside jax.jit: one trace for a fixed batch shape, across steps
    and across epochs; a new batch shape is a retrace and trips the assertion."""
    ds = data.load("iris")
    model, tx, state = _setup(ds, hidden=(8,))
    step = train.make_train_step(model.apply, tasks.loss("multiclass"), tx,
                                 max_traces=1)
    for i in range(4):
        state, _ = step(state, (ds.x_train[10 * i: 10 * i + 10], ds.y_train[10 * i: 10 * i + 10]))
    with pytest.raises(AssertionError, match="traced > 1 times"):
        step(state, (ds.x_train[:7], ds.y_train[:7]))
    chex.clear_trace_counter()
    _, _, state = _setup(ds, hidden=(8,))
    result = _fit(ds, model, tx, state, epochs=5, batch_size=16, max_traces=1)
    assert len(result.history) == 5


def test_eval_step_metrics_match_torch(course):
    model, _, state = _setup(course)
    evaluate = train.make_eval_step(model.apply, tasks.loss("multiclass"))
    metrics = evaluate(state.params, (course.x_test, course.y_test))
    logits = np.array(model.apply(state.params, course.x_test))
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                            torch.from_numpy(course.y_test).long())
    np.testing.assert_allclose(metrics["loss"], ref.item(), rtol=1e-6)
    np.testing.assert_allclose(metrics["accuracy"],
                               np.mean(logits.argmax(-1) == course.y_test), rtol=1e-7)
    binary = train.make_eval_step(lambda p, x: x, tasks.loss("binary"), task="binary")
    out = binary(None, (jnp.array([[2.0], [-1.0], [0.5]]), jnp.array([1, 1, 0])))
    np.testing.assert_allclose(out["accuracy"], 1 / 3, rtol=1e-7)


def test_bad_batches_and_arguments(course):
    model, tx, state = _setup(course)
    loss_fn = tasks.loss("multiclass")
    step = train.make_train_step(model.apply, loss_fn, tx)
    with pytest.raises(ValueError, match=r"same number of examples \(leading axis\), got "
                                         r"batch\[0\]: 8, batch\[1\]: 9"):
        step(state, (course.x_train[:8], course.y_train[:9]))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 20\)"):
        step(state, (course.x_train[:8, :5], course.y_train[:8]))
    for kwargs, match in [({"batch_size": 801}, "larger than the 800 examples"),
                          ({"batch_size": 0}, "batch_size must be >= 1"),
                          ({"epochs": 2, "start_epoch": 3}, "start_epoch=3 must be <= epochs=2"),
                          ({"task": "ranking"}, "task must be one of")]:
        with pytest.raises(ValueError, match=match):
            _fit(course, model, tx, state, **kwargs)
    with pytest.raises(ValueError, match="mesh must have an axis named 'data'"):
        train.make_train_step(model.apply, loss_fn, tx,
                              mesh=jax.sharding.Mesh(np.array(jax.devices()), ("batch",)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_skip_nonfinite_step(course, bad):
    model, tx, state = _setup(course)
    x = course.x_train[:32].copy()
    x[3, 4] = bad
    before = jax.tree.map(np.array, state)
    guarded = train.make_train_step(model.apply, tasks.loss("multiclass"), tx,
                                    skip_nonfinite=True)
    state, metrics = guarded(state, (x, course.y_train[:32]))
    assert int(metrics["skipped"]) == 1
    assert _leaves_equal(state, before)  # params, optimizer state and step unchanged
    state, metrics = guarded(state, (course.x_train[:32], course.y_train[:32]))
    assert int(metrics["skipped"]) == 0 and int(state.step) == 1
    plain = train.make_train_step(model.apply, tasks.loss("multiclass"), tx)
    state, metrics = plain(state, (x, course.y_train[:32]))
    assert "skipped" not in metrics
    assert not np.isfinite(np.asarray(state.params[0]["w"])).all()


def test_skip_nonfinite_fit_counts_skips(course):
    model, tx, state = _setup(course)
    x = course.x_train.copy()
    bad_rows = [3, 500]
    x[bad_rows, 0] = np.nan
    result = train.fit(state, (x, course.y_train), apply_fn=model.apply,
                       loss_fn=tasks.loss("multiclass"), tx=tx, epochs=2,
                       batch_size=100, seed=1, skip_nonfinite=True)
    for entry in result.history:
        order = np.random.default_rng([1, entry["epoch"]]).permutation(800).reshape(8, 100)
        expected = sum(bool(np.isin(bad_rows, batch).any()) for batch in order)
        assert entry["skipped"] == expected > 0
        assert np.isfinite(entry["train_loss"])
    assert int(result.state.step) == 16 - sum(h["skipped"] for h in result.history)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(result.state.params))


def test_data_parallel_equals_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    worker = os.path.join(os.path.dirname(__file__), "_dp_worker.py")
    out = subprocess.run([sys.executable, worker], env=env, check=True, capture_output=True,
                         text=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["devices"] == 8 and report["mesh_shape"] == {"data": 8}
    assert report["params_replicated"] and report["params_spec"] == "P()"
    assert report["state_params_spec"] == "P()"
    # Inside the compiled step each device sees 64 / 8 = 8 examples (one device: all 64; the
    # full 200-example eval batch is not sharded).
    assert report["single_device_batch_shapes"] == [[64, 20], [200, 20]]
    assert report["fit_batch_shard_shapes"] == [[8, 20], [200, 20]]
    assert report["step_batch_shard_shapes"] == [[8, 20]]
    assert report["fit_steps"] == [36, 36]
    # Not bitwise: each device sums its 8 examples, then the partial gradients are all-reduced,
    # a different float32 summation order than one device's; after 36 Adam steps that is a few
    # ulps of parameters of size ~0.2 (ulp 1.5e-8).
    assert report["fit_params_max_diff"] <= 1e-6
    assert report["fit_opt_state_max_diff"] <= 1e-6
    assert report["step_params_max_diff"] <= 1e-6
    np.testing.assert_allclose(*report["fit_history_loss"], rtol=1e-6)
    np.testing.assert_allclose(*report["step_losses"], rtol=1e-6)
    assert report["fit_test_accuracy"][0] == report["fit_test_accuracy"][1]
    # Batch norm under data parallelism: the running mean after one step is 0.1 x the mean of
    # the global 64-example batch (a mean of 64 O(1) values: a few ulps), far from the first
    # device's 8 examples'; fit on the mesh follows fit on one device, statistics included.
    assert report["bn_mean_err_global"] <= 1e-6
    assert report["bn_mean_err_first_device"] > 1e-3
    # That fit runs in float64: in float32 the reordered sums (~1e-8 in a gradient) are amplified
    # by Adam up to lr / eps = 1e5 where a gradient is near zero (BatchNorm scale[19]'s first
    # gradient is -5.5e-8), 1e-6 to 1e-5 depending on the CPU's vector width and the mesh size.
    # In float64 a gradient (sums over 64 examples of O(1) terms) moves by at most 64 * U64 when
    # reordered, an update by at most lr / eps times that, over 24 steps: 1.7e-8 at the very
    # worst (observed ~1e-16); per-device statistics or the wrong batch move params by >= 1e-4.
    assert report["bn_fit_dtypes"] == ["float64"] and report["bn_fit_steps"] == 24
    assert report["bn_fit_params_max_diff"] <= 24 * (1e-3 / 1e-8) * 64 * 2.0**-53
    assert report["bn_fit_model_state_max_diff"] <= 1e-6
    assert report["bn_fit_test_accuracy"][0] == report["bn_fit_test_accuracy"][1]


def test_resume_after_epoch_k_is_bitwise_exact(course, tmp_path):
    path = tmp_path / "ckpt.msgpack"
    model, tx, state = _setup(course)

    def save_epoch_2(entry, st):
        if entry["epoch"] == 2:
            checkpoint.save(path, st, {"epoch": entry["epoch"], "seed": 3})

    full = _fit(course, model, tx, state, epochs=4, seed=3, callback=save_epoch_2)
    _, _, like = _setup(course, key=99)
    restored, extra = checkpoint.restore(path, like)
    assert extra == {"epoch": 2, "seed": 3} and int(restored.step) == 50
    resumed = _fit(course, model, tx, restored, epochs=4, seed=extra["seed"],
                   start_epoch=extra["epoch"])
    assert [h["epoch"] for h in resumed.history] == [3, 4]
    assert _leaves_equal(resumed.state, full.state)
    assert resumed.history[-1]["train_loss"] == full.history[-1]["train_loss"]


class LinenMLP(linen.Module):
    """The course network as a flax.linen module."""

    @linen.compact
    def __call__(self, x):
        hidden = linen.relu(linen.Dense(50)(x))
        return linen.Dense(2)(hidden)


class NnxMLP(nnx.Module):
    """The course network as a flax.nnx module."""

    def __init__(self, rngs):
        self.fc1 = nnx.Linear(20, 50, rngs=rngs)
        self.fc2 = nnx.Linear(50, 2, rngs=rngs)

    def __call__(self, x):
        return self.fc2(nnx.relu(self.fc1(x)))


def test_linen_and_nnx_models_train_like_mlp(course):
    """Any apply_fn(params, x) trains: a linen module's apply and an nnx model through
    split/merge, from the MLP's initial weights, give the MLP's trajectory."""
    model, tx, state = _setup(course)
    init = jax.tree.map(np.array, state.params)
    reference = _fit(course, model, tx, state, epochs=2)

    linen_module = LinenMLP()
    variables = {"params": {f"Dense_{i}": {"kernel": layer["w"], "bias": layer["b"]}
                            for i, layer in enumerate(init)}}
    chex.assert_trees_all_equal_shapes(
        variables, linen_module.init(jax.random.key(0), course.x_train[:1]))
    linen_result = train.fit(
        train.TrainState.create(variables, tx), (course.x_train, course.y_train),
        apply_fn=linen_module.apply, loss_fn=tasks.loss("multiclass"), tx=tx,
        epochs=2, batch_size=32, eval_data=(course.x_test, course.y_test))

    graphdef, nnx_state = nnx.split(NnxMLP(nnx.Rngs(0)))
    nnx_state["fc1"]["kernel"].set_value(jnp.asarray(init[0]["w"]))
    nnx_state["fc1"]["bias"].set_value(jnp.asarray(init[0]["b"]))
    nnx_state["fc2"]["kernel"].set_value(jnp.asarray(init[1]["w"]))
    nnx_state["fc2"]["bias"].set_value(jnp.asarray(init[1]["b"]))
    nnx_result = train.fit(
        train.TrainState.create(nnx_state, tx), (course.x_train, course.y_train),
        apply_fn=lambda st, x: nnx.merge(graphdef, st)(x),
        loss_fn=tasks.loss("multiclass"), tx=tx, epochs=2, batch_size=32,
        eval_data=(course.x_test, course.y_test))

    trained = reference.state.params
    linen_params = linen_result.state.params["params"]
    nnx_params = nnx_result.state.params
    for i, (name, layer) in enumerate(zip(("fc1", "fc2"), trained)):
        for ours, theirs in ((linen_params[f"Dense_{i}"]["kernel"], layer["w"]),
                             (linen_params[f"Dense_{i}"]["bias"], layer["b"]),
                             (nnx_params[name]["kernel"][...], layer["w"]),
                             (nnx_params[name]["bias"][...], layer["b"])):
            np.testing.assert_allclose(ours, theirs, atol=1e-6)
    for result in (linen_result, nnx_result):
        assert result.history[-1]["test_accuracy"] == pytest.approx(
            reference.history[-1]["test_accuracy"], abs=0.011)
        assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


# ---------------------------------------------------------------------------------------------
# fit_seeds: several seeds in one compiled program, each as fit with that seed.


def _reorder_bound(steps, lr, terms, dtype):
    """How far two runs of the same Adam training may drift apart when their programs sum in
    other orders (XLA:GPU's vmapped and single programs may): a gradient, a sum of at most
    ``terms`` O(1) terms, moves by <= terms * U per step; an Adam update moves by at most
    lr / eps (eps = 1e-8) times that where a gradient is near zero; over ``steps`` steps."""
    return steps * (lr / 1e-8) * terms * float(np.finfo(dtype).eps) / 2


def _as(dtype, tree):
    """``tree`` with its floating leaves in ``dtype``."""
    return jax.tree.map(lambda a: jnp.asarray(a, dtype)
                        if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree)


@pytest.mark.parametrize("name,task", [("classification", "binary"), ("iris", "multiclass"),
                                       ("diabetes", "regression")])
def test_fit_seeds_equals_fit_per_seed(name, task):
    """Seed s of fit_seeds trains exactly as fit(seed=s) from init(key(s)): the same train
    step and epoch, vmapped. XLA:CPU computes the batched (vmapped) products of the train step
    as it computes the single ones, so params and every train metric are bitwise equal (float32).
    The evaluation's loss is a mean over the test set that XLA may sum in another order inside
    the batched program: within n * U relative (n - 1 additions, each rounding by at most U of
    the partial sum), as is every other mean over the test set (the regression's test_mse), and
    the test accuracy is the same.

    Other backends (XLA:GPU) may sum in other orders in the vmapped program, which Adam amplifies
    where a gradient is near zero (see _reorder_bound): there the test runs in float64, where the
    bound that follows is ~1e-8 and a wrong seed, shuffle or step moves parameters by > 1e-3."""
    bitwise = jax.default_backend() == "cpu"
    dtype = np.float32 if bitwise else np.float64
    with jax.enable_x64(not bitwise):
        ds = data.load(name)
        model, tx, _ = _setup(ds, hidden=(16,), task=task, lr=3e-3)
        init = lambda key: _as(dtype, model.init(key))  # noqa: E731
        train_data = _as(dtype, (ds.x_train, ds.y_train))
        test_data = _as(dtype, (ds.x_test, ds.y_test))
        seeds = [0, 3, 4]
        kwargs = dict(apply_fn=model.apply, tx=tx, task=task, epochs=3, batch_size=16,
                      eval_data=test_data)
        many = train.fit_seeds(init, train_data, seeds=seeds, **kwargs)
        assert many.compile_seconds > 0 and many.train_seconds > 0
        for i, seed in enumerate(seeds):
            one = train.fit(train.TrainState.create(init(jax.random.key(seed)), tx), train_data,
                            seed=seed, **kwargs)
            ours_state = jax.tree.map(lambda a: a[i], many.states)
            assert {a.dtype for a in jax.tree.leaves(ours_state.params)} == {np.dtype(dtype)}
            terms = max(16, ds.num_features)
            drift = 0.0 if bitwise else _reorder_bound(int(one.state.step), 3e-3, terms, dtype)
            if bitwise:
                assert _leaves_equal(ours_state, one.state)
            else:
                chex.assert_trees_all_close(ours_state, one.state, rtol=0, atol=drift)
            for ours, ref in zip(many.histories[i], one.history, strict=True):
                assert set(ours) == set(ref) - {"seconds"}
                for key in ours:
                    if key in ("test_loss", "test_mse"):
                        rtol = len(ds.x_test) * float(np.finfo(dtype).eps) / 2 + drift
                        np.testing.assert_allclose(ours[key], ref[key], rtol=rtol)
                    elif key in ("train_loss", "train_mse"):
                        np.testing.assert_allclose(ours[key], ref[key], rtol=drift)
                    else:
                        assert ours[key] == ref[key], (seed, ours["epoch"], key)


def test_fit_seeds_distinct_seeds_and_bad_arguments(course):
    model, tx, _ = _setup(course)
    result = train.fit_seeds(model.init, (course.x_train, course.y_train), seeds=[1, 2],
                             apply_fn=model.apply, tx=tx, epochs=1, batch_size=100)
    w = np.asarray(result.states.params[0]["w"])
    assert w.shape == (2, 20, 50) and not np.array_equal(w[0], w[1])
    assert set(result.histories[0][0]) == {"epoch", "train_loss", "train_accuracy", "skipped"}
    common = dict(apply_fn=model.apply, tx=tx, epochs=1, batch_size=100)
    for seeds, error, match in [([], ValueError, "seeds must not be empty"),
                                ([-1], ValueError, r"seeds\[0\] must be >= 0"),
                                (["0"], TypeError, r"seeds\[0\] must be an int")]:
        with pytest.raises(error, match=match):
            train.fit_seeds(model.init, (course.x_train, course.y_train), seeds=seeds, **common)
    with pytest.raises(ValueError, match="larger than the 800 examples"):
        train.fit_seeds(model.init, (course.x_train, course.y_train), seeds=[0],
                        **{**common, "batch_size": 801})


# ---------------------------------------------------------------------------------------------
# Real models: model state and dropout through fit and checkpoints, the caller's arrays, loops.

class LinenBatchNormNet(linen.Module):
    param_dtype: Any = jnp.float32

    @linen.compact
    def __call__(self, x, train: bool):
        dense = functools.partial(linen.Dense, param_dtype=self.param_dtype)
        x = linen.BatchNorm(use_running_average=not train, param_dtype=self.param_dtype)(
            dense(16)(x))
        x = linen.Dropout(0.3, deterministic=not train)(linen.relu(x))
        return dense(2)(x)


def _batch_norm_setup(ds, key=0):
    model = models.from_linen(LinenBatchNormNet())
    params, model_state = model.init(jax.random.key(key), ds.x_train[:1])
    tx = optimizers.adam(lr=1e-3)
    return model, tx, train.TrainState.create(params, tx, model_state)


def test_resume_with_batch_norm_and_dropout_is_bitwise_exact(course, tmp_path):
    """The model state (running statistics) is checkpointed with the state and the dropout
    keys come from (seed, step): resuming after epoch 1 gives the uninterrupted run's state,
    model state included, bit for bit."""
    path = tmp_path / "ckpt"
    model, tx, state = _batch_norm_setup(course)

    def save_epoch_1(entry, st):
        if entry["epoch"] == 1:
            checkpoint.save(path, st, {"epoch": 1})

    kwargs = dict(apply_fn=model, tx=tx, epochs=3, batch_size=32, seed=4,
                  eval_data=(course.x_test, course.y_test))
    full = train.fit(state, (course.x_train, course.y_train), callback=save_epoch_1, **kwargs)
    restored, _ = checkpoint.restore(path, _batch_norm_setup(course, key=9)[2])
    resumed = train.fit(restored, (course.x_train, course.y_train), start_epoch=1, **kwargs)
    assert jax.tree.leaves(full.state.model_state)  # the running statistics are there
    assert _leaves_equal(resumed.state, full.state)
    assert resumed.history == [{**h, "seconds": r["seconds"]}
                               for h, r in zip(full.history[1:], resumed.history)]


def test_fit_never_deletes_the_callers_arrays(course):
    """The course pattern: two optimizers trained from ONE initial state object."""
    model, _, _ = _setup(course)
    params = model.init(jax.random.key(0))
    results = {}
    for name, tx in (("adam", optimizers.adam(lr=1e-3)), ("sgd", optimizers.sgd(lr=0.1))):
        state = train.TrainState.create(params, tx)
        results[name] = _fit(course, model, tx, state, epochs=1)
        assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(params))
    assert not _leaves_equal(results["adam"].state.params, results["sgd"].state.params)


class LinenConvNet(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.relu(linen.Conv(4, (3, 3))(x.reshape(x.shape[0], 4, 5, 1)))
        return linen.Dense(2)(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_loops_give_the_same_steps_and_auto_picks_by_model(course, network):
    """loop="scan" and loop="step" run the same steps; "auto" takes the step loop for a
    convolution on CPU (XLA:CPU runs its gradient slowly inside a while loop), else the scan."""
    auto = "step" if network == "conv" and jax.default_backend() == "cpu" else "scan"
    if network == "mlp":
        model, tx, state = _setup(course)
        apply_fn = model.apply
    else:
        module = LinenConvNet()
        tx = optimizers.adam(lr=1e-3)
        state = train.TrainState.create(
            module.init(jax.random.key(0), course.x_train[:1])["params"], tx)

        def apply_fn(params, x):
            return module.apply({"params": params}, x)

    x, y = course.x_train[:256], course.y_train[:256]
    results = {loop: train.fit(state, (x, y), apply_fn=apply_fn, tx=tx, epochs=2,
                               batch_size=32, seed=1, loop=loop)
               for loop in ("scan", "step", "auto")}
    assert {loop: r.loop for loop, r in results.items()} == {"scan": "scan", "step": "step",
                                                             "auto": auto}
    assert results["scan"].steps == results["step"].steps == 16
    # The same operations; XLA may fuse the scan body differently from the standalone step.
    assert _max_diff(results["scan"].state.params, results["step"].state.params) <= 1e-6
    np.testing.assert_allclose([h["train_loss"] for h in results["scan"].history],
                               [h["train_loss"] for h in results["step"].history], rtol=1e-6)
    with pytest.raises(ValueError, match="loop must be one of"):
        train.fit(state, (x, y), apply_fn=apply_fn, tx=tx, epochs=1, batch_size=32,
                  loop="unrolled")


def test_fit_seeds_with_a_stateful_model(course):
    """fit_seeds takes a Model: init_fn returns (params, model_state); seed s trains as fit,
    running statistics and dropout masks included. As in test_fit_seeds_equals_fit_per_seed:
    bitwise in float32 on XLA:CPU; elsewhere in float64, within _reorder_bound (a bias before
    a batch norm has a gradient that is zero but for rounding, which Adam turns into steps of
    up to lr: in float32 on an H200 the vmapped and single runs ended 2.3e-3 apart).

    The parameters are initialised in that dtype too. Initialised in Flax's default float32,
    the vmapped program's init and the eager one may round differently on such a backend, and
    training carries a few float32 ulps of the init to the end: on CPU, ±4 ulps of the init
    move the first kernel by 1.2e-7, as far as an H200's float64 runs ended apart (1.8e-7)
    when the init was float32."""
    bitwise = jax.default_backend() == "cpu"
    dtype = np.float32 if bitwise else np.float64
    with jax.enable_x64(not bitwise):
        model = models.from_linen(LinenBatchNormNet(param_dtype=dtype))
        tx = optimizers.adam(lr=1e-3)
        test_data = _as(dtype, (course.x_test, course.y_test))
        train_data = _as(dtype, (course.x_train, course.y_train))
        kwargs = dict(apply_fn=model, tx=tx, epochs=2, batch_size=64, eval_data=test_data)
        init = lambda key: _as(dtype, model.init(key, course.x_train[:1]))  # noqa: E731
        result = train.fit_seeds(init, train_data, seeds=[3, 5], **kwargs)
        params, model_state = init(jax.random.key(5))
        single = train.fit(train.TrainState.create(params, tx, model_state), train_data, seed=5,
                           **kwargs)
        seed_5 = jax.tree.map(lambda a: a[1], result.states)
        assert {a.dtype for a in jax.tree.leaves(seed_5.params)} == {np.dtype(dtype)}
        if bitwise:
            assert _leaves_equal(seed_5, single.state)
            drift = 0.0
        else:
            drift = _reorder_bound(int(single.state.step), 1e-3, 64, dtype)
            chex.assert_trees_all_close(seed_5, single.state, rtol=0, atol=drift)
        for ours, ref in zip(result.histories[1], single.history, strict=True):
            np.testing.assert_allclose(
                ours.pop("test_loss"), ref.pop("test_loss"),
                rtol=len(course.x_test) * float(np.finfo(dtype).eps) / 2 + drift)
            np.testing.assert_allclose(ours.pop("train_loss"), ref.pop("train_loss"),
                                       rtol=drift)
            assert ours == {k: v for k, v in ref.items() if k != "seconds"}


def test_callback_returning_true_stops_training(course):
    """Early stopping: a callback that returns True after epoch 2 ends fit there."""
    model, tx, state = _setup(course)
    result = _fit(course, model, tx, state, epochs=10,
                  callback=lambda entry, st: entry["epoch"] == 2)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.steps == 2 * 25 and int(result.state.step) == 50
