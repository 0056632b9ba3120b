import math

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from scipy import stats

from jaxfund import activations, losses, models, tasks, train

# jaxfund activation name -> torch module (the torch reference).
ACTIVATIONS = [
    ("relu", torch.nn.ReLU()),
    ("tanh", torch.nn.Tanh()),
    ("sigmoid", torch.nn.Sigmoid()),
    ("LeakyReLU", torch.nn.LeakyReLU()),
    ("gelu", torch.nn.GELU()),
    ("elu", torch.nn.ELU()),
    ("silu", torch.nn.SiLU()),
    ("identity", torch.nn.Identity()),
]


def _torch_net(model, params, torch_acts, dtype):
    """torch nn.Sequential with the same weights (w is torch's weight.T)."""
    layers = []
    for i, layer in enumerate(params):
        linear = torch.nn.Linear(*layer["w"].shape, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.asarray(layer["w"]).T.copy()))
            linear.bias.copy_(torch.from_numpy(np.array(layer["b"])))
        layers.append(linear)
        if i < len(params) - 1:
            layers.append(torch_acts[i])
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("fan_in,fan_out", [(20, 50), (256, 512)])
def test_init_matches_torch_linear_distribution(fan_in, fan_out):
    """Weights and biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like torch nn.Linear: KS
    two-sample test against torch's own draws, hard bounds, and mean/variance of the uniform."""
    draws = max(1, 100_000 // (fan_in * fan_out))
    keys = jax.random.split(jax.random.key(0), draws)
    params = jax.vmap(models.MLP(fan_in, (), fan_out).init)(keys)[0]
    ours_w, ours_b = np.asarray(params["w"]).ravel(), np.asarray(params["b"]).ravel()
    torch.manual_seed(0)
    theirs = [torch.nn.Linear(fan_in, fan_out) for _ in range(max(draws, 200 // fan_out + 1))]
    theirs_w = np.concatenate([t.weight.detach().numpy().ravel() for t in theirs])
    theirs_b = np.concatenate([t.bias.detach().numpy().ravel() for t in theirs])
    bound = 1.0 / math.sqrt(fan_in)
    for ours, ref in ((ours_w, theirs_w), (ours_b, theirs_b)):
        assert stats.ks_2samp(ours, ref).pvalue > 1e-3
        assert np.abs(ours).max() <= bound and np.abs(ref).max() <= bound
    # Closed form for U(-b, b): mean 0 (sd b/sqrt(3n)), variance b^2/3 (sd b^2*sqrt(4/(45n))).
    n = ours_w.size
    assert abs(ours_w.mean()) < 5 * bound / math.sqrt(3 * n)
    assert abs(ours_w.var() - bound**2 / 3) < 5 * bound**2 * math.sqrt(4 / (45 * n))
    assert np.abs(ours_w).max() > bound * (1 - 20 / n)


def test_init_structure_dtype_and_keys():
    model = models.MLP(20, (50, 30), 2)
    params = model.init(jax.random.key(1))
    assert [(p["w"].shape, p["b"].shape) for p in params] == [
        ((20, 50), (50,)), ((50, 30), (30,)), ((30, 2), (2,))]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    for layer, fan_in in zip(params, (20, 50, 30)):
        assert float(jnp.abs(layer["w"]).max()) <= 1 / math.sqrt(fan_in)
    again = model.init(jax.random.key(1))
    other = model.init(jax.random.key(2))
    assert all(np.array_equal(a, b)
               for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)))
    assert not np.array_equal(params[0]["w"], other[0]["w"])
    with jax.enable_x64(True):
        assert all(leaf.dtype == jnp.float64
                   for leaf in jax.tree.leaves(model.init(jax.random.key(1), jnp.float64)))


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_init_draws_what_jax_random_draws_layer_by_layer(dtype):
    """init is one compiled program; its numbers are the eager draws of torch's rule
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, weight then bias, from ``split(key, 2 * layers)``,
    bit for bit."""
    model = models.MLP(13, (7, 5), 3)
    key = jax.random.key(4)
    with jax.enable_x64(dtype == "float64"):
        params = model.init(key, dtype)
        keys = jax.random.split(key, 6)
        for i, (layer, (fan_in, fan_out)) in enumerate(zip(params, [(13, 7), (7, 5), (5, 3)])):
            bound = 1 / math.sqrt(fan_in)
            for name, k, shape in (("w", keys[2 * i], (fan_in, fan_out)),
                                   ("b", keys[2 * i + 1], (fan_out,))):
                want = jax.random.uniform(k, shape, dtype, -bound, bound)
                assert layer[name].dtype == want.dtype
                np.testing.assert_array_equal(np.asarray(layer[name]).view(np.uint8),
                                              np.asarray(want).view(np.uint8))


@pytest.mark.parametrize("name,torch_act", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_apply_matches_torch_f32(name, torch_act):
    model = models.MLP(20, (50, 30), 3, activation=name)
    params = model.init(jax.random.key(0))
    x = np.random.default_rng(0).normal(size=(16, 20)).astype(np.float32)
    ours = model.apply(params, jnp.asarray(x))
    ref = _torch_net(model, params, [torch_act] * 2, torch.float32)(torch.from_numpy(x))
    assert ours.shape == (16, 3) and ours.dtype == jnp.float32
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,torch_act", ACTIVATIONS[:5], ids=[a[0] for a in ACTIVATIONS[:5]])
def test_apply_and_gradients_match_torch_f64(name, torch_act):
    """Outputs and parameter gradients of cross_entropy(MLP(x), y) against torch autograd."""
    model = models.MLP(6, (8, 7), 4, activation=name)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 6)), rng.integers(0, 4, size=10)
    with jax.enable_x64(True):
        params = model.init(jax.random.key(3), jnp.float64)
        loss_fn = tasks.loss("multiclass")
        loss, grads = jax.value_and_grad(
            lambda p: loss_fn(model.apply(p, jnp.asarray(x)), jnp.asarray(y)))(params)
        net = _torch_net(model, params, [torch_act] * 2, torch.float64)
        ref = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        ref.backward()
        np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for g, linear in zip(grads, linears):
            np.testing.assert_allclose(g["w"], linear.weight.grad.numpy().T, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(g["b"], linear.bias.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_per_layer_activations_and_callables():
    model = models.MLP(5, (6, 7, 4), 2, activation=["relu", jnp.sin, "Tanh"])
    params = model.init(jax.random.key(0))
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)

    class Sin(torch.nn.Module):
        def forward(self, t):
            return torch.sin(t)

    net = _torch_net(model, params, [torch.nn.ReLU(), Sin(), torch.nn.Tanh()], torch.float32)
    np.testing.assert_allclose(model.apply(params, x), net(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_single_sample_and_vmap_and_jit():
    model = models.MLP(4, (8,), 3)
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 4))
    batched = model.apply(params, x)
    np.testing.assert_allclose(jax.vmap(model.apply, in_axes=(None, 0))(params, x), batched,
                               rtol=1e-6)
    np.testing.assert_allclose(jax.jit(model.apply)(params, x), batched, rtol=1e-6)
    assert model.apply(params, x[0]).shape == (3,)


@pytest.mark.parametrize("shape", [(8, 19), (8, 21), (2, 8, 20), ()])
def test_bad_x_shape_names_x_and_expected_shape(shape):
    model = models.MLP(20, (50,), 2)
    params = model.init(jax.random.key(0))
    x = jnp.ones(shape)
    pattern = r"x must have shape \(batch, 20\) or \(20,\).*got shape"
    with pytest.raises(ValueError, match=pattern):
        model.apply(params, x)
    with pytest.raises(ValueError, match=pattern):
        jax.jit(model.apply)(params, x)


def test_bad_x_dtype_and_bad_params():
    model = models.MLP(3, (4,), 2)
    params = model.init(jax.random.key(0))
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        model.apply(params, jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"params do not match an MLP with layer sizes \(3, 4, "):
        model.apply(params[:1], jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="params do not match"):
        models.MLP(3, (5,), 2).apply(params, jnp.ones((2, 3)))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"in_features": 0}, ValueError, "in_features must be >= 1"),
    ({"in_features": 3, "out_features": 2.0}, TypeError, "out_features must be an int"),
    ({"in_features": 3, "hidden": 4}, TypeError, "hidden must be a sequence"),
    ({"in_features": 3, "hidden": "64"}, TypeError, "hidden must be a sequence"),
    ({"in_features": 3, "hidden": (4, 0)}, ValueError, r"hidden\[1\] must be >= 1"),
    ({"in_features": 3, "hidden": (4, 4), "activation": ["relu"]}, ValueError,
     "activation has 1 entries but hidden has 2 layers"),
    ({"in_features": 3, "activation": "nope"}, ValueError,
     "unknown activation 'nope'; valid hidden-layer activations: identity, .*relu"),
])
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        models.MLP(**kwargs)


@pytest.mark.parametrize("name", sorted(set(activations.NAMES) - set(activations.ELEMENTWISE)))
def test_non_elementwise_activation_is_refused(name):
    with pytest.raises(ValueError, match=f"activation '{name}' is not an element-wise activation"
                                         ".*valid hidden-layer activations: identity, sigmoid"):
        models.MLP(3, (4,), 2, activation=name)


@pytest.mark.parametrize("name", activations.ELEMENTWISE)
def test_every_elementwise_activation_builds_and_runs(name):
    model = models.MLP(3, (4,), 2, activation=name)
    out = model.apply(model.init(jax.random.key(0)), jnp.ones((5, 3)))
    assert out.shape == (5, 2) and bool(jnp.all(jnp.isfinite(out)))
    assert models.hidden_activation(name) is activations.get(name)


def test_hidden_list_is_normalised():
    model = models.MLP(3, [4, 5], 2, activation=["relu", "tanh"])
    assert model.hidden == (4, 5) and model.activation == ("relu", "tanh")
    assert model.sizes == (3, 4, 5, 2)
    hash(model)


# Heads per the course: task -> (torch loss on the raw outputs, targets).
HEADS = [
    ("regression", 0, lambda out, y: torch.nn.MSELoss()(out[:, 0], y.float())),
    ("binary", 2, lambda out, y: torch.nn.BCEWithLogitsLoss()(out[:, 0], y.float())),
    ("multiclass", 4, lambda out, y: torch.nn.CrossEntropyLoss()(out, y.long())),
]


@pytest.mark.parametrize("task,num_classes,torch_loss", HEADS, ids=[h[0] for h in HEADS])
def test_heads_match_torch_losses(task, num_classes, torch_loss):
    model = models.MLP(6, (8,), tasks.output_features(task, num_classes))
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6)).astype(np.float32)
    y = (rng.normal(size=12).astype(np.float32) if task == "regression"
         else rng.integers(0, max(num_classes, 2), size=12).astype(np.int32))
    outputs = model.apply(params, x)
    ours = tasks.loss(task)(outputs, jnp.asarray(y))
    ref = torch_loss(torch.from_numpy(np.array(outputs)), torch.from_numpy(y))
    np.testing.assert_allclose(ours, ref.item(), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Models with state, a train flag and an RNG: models.Model, from_linen, from_nnx.

MOMENTUM = 0.9  # running = MOMENTUM * running + (1 - MOMENTUM) * batch statistic (flax)


class LinenNet(linen.Module):
    """BatchNorm on the inputs -> Dense -> relu -> Dropout -> Dense."""

    @linen.compact
    def __call__(self, x, train: bool):
        x = linen.BatchNorm(use_running_average=not train, momentum=MOMENTUM)(x)
        x = linen.Dropout(0.5, deterministic=not train)(linen.relu(linen.Dense(16)(x)))
        return linen.Dense(3)(x)


class NnxNet(nnx.Module):
    def __init__(self, rngs):
        self.bn = nnx.BatchNorm(4, momentum=MOMENTUM, rngs=rngs)
        self.fc1 = nnx.Linear(4, 16, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.fc2 = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc2(self.drop(nnx.relu(self.fc1(self.bn(x)))))


def _linen(x):
    module = LinenNet()
    model = models.from_linen(module)
    params, model_state = model.init(jax.random.key(0), x[:1])

    def reference_eval(params, model_state, x):
        """flax itself, in evaluation mode."""
        return module.apply({"params": params, **model_state}, x, train=False)

    def statistics(model_state):
        running = model_state["batch_stats"]["BatchNorm_0"]
        return running["mean"], running["var"]

    return model, params, model_state, reference_eval, statistics


def _nnx(x):
    module = NnxNet(nnx.Rngs(0))
    model, params, model_state = models.from_nnx(module)

    def reference_eval(params, model_state, x):
        nnx.update(module, params, model_state)
        module.eval()
        return module(x)

    def statistics(model_state):
        return model_state["bn"]["mean"], model_state["bn"]["var"]

    return model, params, model_state, reference_eval, statistics


ADAPTERS = {"linen": _linen, "nnx": _nnx}


@pytest.fixture(scope="module")
def iris():
    from jaxfund import data

    return data.load("iris")


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_batch_norm_statistics_are_updated_in_training(adapter, iris):
    """One train step: the running statistics of a BatchNorm on the inputs move towards the
    batch's (closed form: mean_1 = (1 - m) mean(x), var_1 = m + (1 - m) var(x), flax's biased
    variance), and the params are trained."""
    x, y = iris.x_train[:32], iris.y_train[:32]
    model, params, model_state, _, statistics = ADAPTERS[adapter](x)
    tx = optax.sgd(0.1)
    step = train.make_train_step(model, None, tx)
    state, _ = step(train.TrainState.create(params, tx, model_state), (x, y))
    mean, var = statistics(state.model_state)
    # A mean or variance of 32 standardised values: a few ulps of O(1) numbers.
    np.testing.assert_allclose(mean, (1 - MOMENTUM) * np.mean(x, axis=0), atol=1e-6)
    np.testing.assert_allclose(var, MOMENTUM + (1 - MOMENTUM) * np.var(x, axis=0), atol=1e-6)
    assert not np.array_equal(jax.tree.leaves(state.params)[0], jax.tree.leaves(params)[0])


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_dropout_mask_is_new_every_step_and_follows_the_seed(adapter, iris):
    """With frozen params (set_to_zero), the train loss of one batch changes from step to step
    only through the dropout mask: every step differs, the same seed repeats the sequence bit
    for bit, another seed gives another."""
    x, y = iris.x_train[:32], iris.y_train[:32]
    model, params, model_state, _, _ = ADAPTERS[adapter](x)
    tx = optax.set_to_zero()

    def losses_of(seed):
        step = train.make_train_step(model, None, tx, seed=seed)
        state, out = train.TrainState.create(params, tx, model_state), []
        for _ in range(4):
            state, metrics = step(state, (x, y))
            out.append(float(metrics["loss"]))
        return out

    first, again, other = losses_of(0), losses_of(0), losses_of(1)
    assert len(set(first)) == 4
    assert first == again
    assert first != other


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_evaluation_is_deterministic_and_matches_flax(adapter, iris):
    """After training, evaluation (dropout off, running statistics) gives flax's own
    evaluation-mode outputs, and the same numbers twice."""
    model, params, model_state, reference_eval, _ = ADAPTERS[adapter](iris.x_train)
    tx = optax.adam(1e-2)
    result = train.fit(train.TrainState.create(params, tx, model_state),
                       (iris.x_train, iris.y_train), apply_fn=model, tx=tx, epochs=3,
                       batch_size=16)
    state = result.state
    evaluate = train.make_eval_step(model)
    first = evaluate(state.params, (iris.x_test, iris.y_test), state.model_state)
    second = evaluate(state.params, (iris.x_test, iris.y_test), state.model_state)
    assert first == second
    logits = reference_eval(state.params, state.model_state, iris.x_test)
    expected = losses.cross_entropy(logits, iris.y_test)
    # The same operations, jitted (ours) or not (flax's call): a few roundings of O(1) values.
    np.testing.assert_allclose(first["loss"], expected, rtol=1e-5)
    assert float(first["accuracy"]) == float(np.mean(np.argmax(logits, -1) == iris.y_test))


def _probe_model(seen):
    """A Model that records (train, rng is None) at trace time and stores 2 random words of
    its key in the model state."""

    def apply(params, model_state, x, *, train, rng):
        seen.append((train, rng is None))
        bits = jax.random.bits(rng, (2,)) if rng is not None else model_state["bits"]
        return x @ params, {"bits": bits}

    return models.Model(apply)


def test_step_key_is_the_documented_fold_in_and_absent_in_evaluation(iris):
    seen = []
    model = _probe_model(seen)
    params = jnp.zeros((4, 3))
    tx = optax.sgd(0.1)
    state = train.TrainState.create(params, tx, {"bits": jnp.zeros(2, jnp.uint32)})
    step = train.make_train_step(model, None, tx, seed=7)
    batch = (iris.x_train[:8], iris.y_train[:8])
    for t in range(3):
        state, _ = step(state, batch)
        expected = jax.random.bits(
            jax.random.fold_in(jax.random.fold_in(jax.random.key(7), 2**32 - 1), t), (2,))
        np.testing.assert_array_equal(state.model_state["bits"], expected)
    train.make_eval_step(model)(state.params, batch, state.model_state)
    assert seen == [(True, False), (False, True)]


def test_plain_apply_fn_and_adapter_errors():
    model = models.as_model(lambda params, x: x * params)
    outputs, model_state = model.apply(2.0, {"s": 1}, jnp.ones(3), train=True, rng=None)
    np.testing.assert_array_equal(outputs, 2 * np.ones(3))
    assert model_state == {"s": 1}
    assert models.as_model(model) is model
    with pytest.raises(TypeError, match="apply_fn must be a callable"):
        models.as_model(3)
    with pytest.raises(TypeError, match="module must be a flax.linen.Module"):
        models.from_linen(NnxNet(nnx.Rngs(0)))
    with pytest.raises(TypeError, match="module must be a flax.nnx.Module"):
        models.from_nnx(LinenNet())


def test_model_state_of_another_structure_is_a_clear_error(iris):
    """A model returning state the train state does not hold (its initial model state was not
    passed to TrainState.create)."""
    model = models.Model(lambda p, s, x, *, train, rng: (x @ p, {"running": jnp.ones(())}))
    tx = optax.sgd(0.1)
    with pytest.raises(ValueError, match="model_state of another structure"):
        train.make_train_step(model, None, tx)(train.TrainState.create(jnp.zeros((4, 3)), tx),
                                               (iris.x_train[:8], iris.y_train[:8]))


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_mlp_dropout_zeroes_or_scales_each_unit(p):
    """An MLP 8 -> 4096 (identity) -> 4096 whose output layer is the identity: its output in
    training is the hidden layer with each unit either 0 or h / (1 - p) (torch nn.Dropout), the
    kept fraction 1 - p within 5 binomial standard deviations; evaluation has no dropout."""
    width = 4096
    model = models.MLP(8, (width,), width, activation="identity", dropout=p)
    params = model.init(jax.random.key(0))
    params[1] = {"w": jnp.eye(width), "b": jnp.zeros(width)}
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    hidden = x @ np.asarray(params[0]["w"]) + np.asarray(params[0]["b"])
    out = np.asarray(model.apply(params, x, train=True, rng=jax.random.key(1)))
    kept = out != 0
    np.testing.assert_allclose(out[kept], hidden[kept] / (1 - p), rtol=1e-6)
    n = kept.size
    assert abs(kept.sum() - (1 - p) * n) <= 5 * math.sqrt(n * p * (1 - p))
    other = np.asarray(model.apply(params, x, train=True, rng=jax.random.key(2)))
    assert not np.array_equal(other != 0, kept)
    np.testing.assert_allclose(model.apply(params, x), hidden, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(model.apply(params, x, train=True), model.apply(params, x))


def test_mlp_as_apply_fn_trains_with_dropout(iris):
    """Passed itself as apply_fn, the MLP drops units in training (a new mask every step) and
    not in evaluation; its plain .apply never drops."""
    model = models.MLP(4, (64,), 3, dropout=0.5)
    tx = optax.set_to_zero()
    batch = (iris.x_train[:32], iris.y_train[:32])
    state = train.TrainState.create(model.init(jax.random.key(0)), tx)
    step = train.make_train_step(model, None, tx)
    losses_seen = []
    for _ in range(3):
        state, metrics = step(state, batch)
        losses_seen.append(float(metrics["loss"]))
    assert len(set(losses_seen)) == 3
    evaluate = train.make_eval_step(model)(state.params, batch)
    plain = train.make_train_step(model.apply, None, tx)(state, batch)[1]
    assert float(evaluate["loss"]) == pytest.approx(float(plain["loss"]), rel=1e-6)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)|dropout must be <"):
        models.MLP(4, (8,), 3, dropout=1.0)
