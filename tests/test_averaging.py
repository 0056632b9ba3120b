"""jaxfund.averaging against torch.optim.swa_utils.AveragedModel, step for step, and its use in
train.fit through eval_params."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from _optim_ref import STEPS, make_grads, make_params, max_rel_err, precision, torch_dtype
from jaxfund import averaging, data, models, optimizers, train

U32 = 2.0**-24
# Two runs (ours, torch's) each round a parameter once per step (p + u) and each averaged update
# three times (the lerp's subtraction, product and sum), by at most U32 of the largest magnitude
# reached (the scale of max_rel_err), so they differ by at most 2 * (STEPS + 3 * STEPS) * U32.
TOL = {"float32": 2 * (STEPS + 3 * STEPS) * U32, "float64": 1e-12}
PARAMS, GRADS = make_params(), make_grads()

# (id, jaxfund transform, torch multi_avg_fn or None for the SWA default, start, every)
ROWS = [
    ("swa_every_step", averaging.swa(), None, 0, 1),
    ("swa_after_30_every_5", averaging.swa(start=30, every=5), None, 30, 5),
    ("ema_0.9", averaging.ema(decay=0.9), torch.optim.swa_utils.get_ema_multi_avg_fn(0.9), 0, 1),
    ("ema_0.99_after_10_every_3", averaging.ema(decay=0.99, start=10, every=3),
     torch.optim.swa_utils.get_ema_multi_avg_fn(0.99), 10, 3),
    ("ema_decay_1", averaging.ema(decay=1.0), torch.optim.swa_utils.get_ema_multi_avg_fn(1.0),
     0, 1),
]


class _Params(torch.nn.Module):
    def __init__(self, params: dict, dtype):
        super().__init__()
        self.p = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(torch.tensor(v, dtype=dtype)) for k, v in sorted(params.items())})


def _torch_averages(multi_avg_fn, start: int, every: int, dtype: str) -> np.ndarray:
    model = _Params(PARAMS, torch_dtype(dtype))
    swa_model = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=multi_avg_fn)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    rows = []
    for t in range(STEPS):
        for k, p in model.p.items():
            p.grad = torch.tensor(GRADS[k][t], dtype=torch_dtype(dtype))
        opt.step()
        step = t + 1
        if step > start and (step - start) % every == 0:
            swa_model.update_parameters(model)
        rows.append(np.concatenate([swa_model.module.p[k].detach().double().numpy().ravel()
                                    for k in sorted(PARAMS)]))
    return np.stack(rows)


def _jax_averages(transform, dtype: str) -> np.ndarray:
    tx = optax.chain(optimizers.sgd(lr=1e-2, momentum=0.9), transform)
    p0 = {k: jnp.asarray(v, dtype) for k, v in PARAMS.items()}

    def body(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        avg = averaging.averaged_params(s)
        return (optax.apply_updates(p, u), s), jnp.concatenate([avg[k].ravel() for k in sorted(p)])

    _, traj = jax.jit(lambda p, g: jax.lax.scan(body, (p, tx.init(p)), g))(
        p0, {k: jnp.asarray(v, dtype) for k, v in GRADS.items()})
    return np.asarray(traj, np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_matches_torch_averaged_model(row, dtype):
    _, transform, multi_avg_fn, start, every = row
    with precision(dtype):
        ref = _torch_averages(multi_avg_fn, start, every, dtype)
        ours = _jax_averages(transform, dtype)
    err = max_rel_err(ours, ref)
    assert err <= TOL[dtype], f"{row[0]} {dtype}: {err:.3g} > {TOL[dtype]:.3g}"


def test_updates_pass_through_unchanged():
    tx = optax.chain(optimizers.adam(lr=1e-2), averaging.ema(decay=0.9))
    plain = optimizers.adam(lr=1e-2)
    p = {"w": jnp.arange(3.0)}
    s, s_plain = tx.init(p), plain.init(p)
    for t in range(3):
        g = {"w": jnp.asarray([1.0, -2.0, 0.5]) * (t + 1)}
        u, s = tx.update(g, s, p)
        u_plain, s_plain = plain.update(g, s_plain, p)
        np.testing.assert_array_equal(u["w"], u_plain["w"])
        p = optax.apply_updates(p, u)
    assert int(optax.tree_utils.tree_get(s, "n_averaged")) == 3


def test_fit_evaluates_the_averaged_params():
    ds = data.load("iris")
    model = models.MLP(ds.num_features, (16,), ds.num_classes)
    tx = optax.chain(optimizers.sgd(lr=0.1, momentum=0.9), averaging.swa(start=14, every=7))
    state = train.TrainState.create(model.init(jax.random.key(0)), tx)
    kwargs = dict(apply_fn=model.apply, tx=tx, epochs=4, batch_size=16, seed=0,
                  eval_data=(ds.x_test, ds.y_test), eval_params=averaging.averaged_params)
    result = train.fit(state, (ds.x_train, ds.y_train), **kwargs)
    evaluate = train.make_eval_step(model.apply)
    final = averaging.averaged_params(result.state)
    # 7 steps per epoch, 28 updates: averaged at updates 21 and 28.
    assert int(optax.tree_utils.tree_get(result.state.opt_state, "n_averaged")) == 2
    last = result.history[-1]
    on_average = jax.device_get(evaluate(final, (ds.x_test, ds.y_test)))
    assert last["test_loss"] == float(on_average["loss"])
    on_params = jax.device_get(evaluate(result.state.params, (ds.x_test, ds.y_test)))
    assert last["test_loss"] != float(on_params["loss"])
    # fit_seeds evaluates the same function of the state.
    seeds = train.fit_seeds(model.init, (ds.x_train, ds.y_train), seeds=[0],
                            **{k: v for k, v in kwargs.items() if k != "seed"})
    np.testing.assert_allclose(seeds.histories[0][-1]["test_loss"], last["test_loss"],
                               rtol=len(ds.x_test) * U32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: averaging.swa(start=-1), ValueError, "start must be >= 0"),
    (lambda: averaging.swa(every=0), ValueError, "every must be >= 1"),
    (lambda: averaging.swa(every=1.5), TypeError, "every must be an int"),
    (lambda: averaging.ema(decay=1.5), ValueError, r"decay must be in \[0, 1\]"),
    (lambda: averaging.ema(decay="0.9"), TypeError, "decay must be a real number"),
    (lambda: averaging.averaged_params(optimizers.adam(lr=1.0).init({"w": jnp.ones(2)})),
     ValueError, "found 0; chain averaging.swa"),
    (lambda: averaging.swa().update({"w": jnp.ones(2)}, averaging.swa().init({"w": jnp.ones(2)})),
     ValueError, "needs params"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
