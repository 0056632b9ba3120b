"""Data-parallel run for tests/test_train.py, in its own process.

Run with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag must be set before
jax starts, hence the subprocess). Trains the course network on the course data once on one
device and once data-parallel over an 8-device mesh, from the same initial parameters, with both
``fit`` and ``make_train_step``; does the same for a linen network with batch norm and dropout
(whose running statistics must be the global batch's) -- its fit in float64, see
``batch_norm_fit_report``; and prints a JSON report on stdout.
"""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxfund import data, models, optimizers, tasks, train


class BatchNormNet(nn.Module):
    """BatchNorm on the inputs (its statistics have a closed form) -> Dense -> Dropout -> Dense."""

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.Dropout(0.3, deterministic=not train)(nn.relu(nn.Dense(16)(x)))
        return nn.Dense(2)(x)


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def batch_norm_report(ds, mesh) -> dict:
    """One data-parallel step: the running mean is 0.1 * the GLOBAL batch mean (as torch's
    SyncBatchNorm), not one device's."""
    model = models.from_linen(BatchNormNet())
    tx = optimizers.adam(lr=1e-3)
    params, model_state = model.init(jax.random.key(0), ds.x_train[:1])
    state = train.TrainState.create(params, tx, model_state)
    x, y = ds.x_train[:64], ds.y_train[:64]
    state, _ = train.make_train_step(model, None, tx, mesh=mesh)(state, (x, y))
    mean = np.asarray(state.model_state["batch_stats"]["BatchNorm_0"]["mean"])
    return {
        "bn_mean_err_global": float(np.max(np.abs(mean - 0.1 * x.mean(axis=0)))),
        "bn_mean_err_first_device": float(np.max(np.abs(mean - 0.1 * x[:8].mean(axis=0)))),
    }


def batch_norm_fit_report(ds, mesh) -> dict:
    """fit with the mesh equals fit on one device, running statistics included, in FLOAT64
    (call with ``jax_enable_x64`` on).

    In float32 the two differ by the reordering of sums (each device sums its 8 examples, then
    the partial sums are all-reduced), ~1e-8 in a gradient, which Adam amplifies by up to
    lr / eps = 1e5 where a gradient is near zero: BatchNorm_0's scale[19] has gradient -5.5e-8
    in the first step, so its first update lr * g / (|g| + eps) moves by ~1e-6 to 1e-5 depending
    on the summation order (the CPU's vector width, the mesh size). float64 has the same
    program with rounding 2**29 times finer, so a bound can follow from the arithmetic."""
    f64 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)
    model = models.from_linen(BatchNormNet())
    tx = optimizers.adam(lr=1e-3)
    params, model_state = f64(model.init(jax.random.key(0), ds.x_train[:1]))

    def fresh():
        return train.TrainState.create(jax.tree.map(jnp.array, params), tx,
                                       jax.tree.map(jnp.array, model_state))

    train_data = (np.asarray(ds.x_train, np.float64), ds.y_train)
    kwargs = dict(apply_fn=model, tx=tx, epochs=2, batch_size=64, seed=7,
                  eval_data=(np.asarray(ds.x_test, np.float64), ds.y_test))
    single = train.fit(fresh(), train_data, **kwargs)
    parallel = train.fit(fresh(), train_data, mesh=mesh, **kwargs)
    leaves = jax.tree.leaves((parallel.state.params, parallel.state.model_state,
                              parallel.state.opt_state))
    return {
        "bn_fit_dtypes": sorted({str(a.dtype) for a in leaves if jnp.issubdtype(a.dtype,
                                                                                jnp.floating)}),
        "bn_fit_steps": int(parallel.state.step),
        "bn_fit_params_max_diff": max_diff(single.state.params, parallel.state.params),
        "bn_fit_model_state_max_diff": max_diff(single.state.model_state,
                                                parallel.state.model_state),
        "bn_fit_test_accuracy": [single.history[-1]["test_accuracy"],
                                 parallel.history[-1]["test_accuracy"]],
    }


def main() -> None:
    ds = data.load("classification")
    model = models.MLP(ds.num_features, (50,), 2)
    tx = optimizers.adam(lr=1e-3)
    loss_fn = tasks.loss("multiclass")
    init = model.init(jax.random.key(0))
    shard_shapes = set()

    def apply_fn(params, x):
        """model.apply, recording the per-device shape of the batch inside the compiled step."""
        jax.debug.inspect_array_sharding(
            x, callback=lambda sharding: shard_shapes.add(sharding.shard_shape(x.shape)))
        return model.apply(params, x)

    def fresh():
        return train.TrainState.create(jax.tree.map(jnp.array, init), tx)

    mesh = train.data_mesh()
    kwargs = dict(apply_fn=apply_fn, loss_fn=loss_fn, tx=tx, epochs=3, batch_size=64,
                  seed=7, eval_data=(ds.x_test, ds.y_test))
    single = train.fit(fresh(), (ds.x_train, ds.y_train), **kwargs)
    single_shard_shapes = sorted(shard_shapes)
    shard_shapes.clear()
    parallel = train.fit(fresh(), (ds.x_train, ds.y_train), mesh=mesh, **kwargs)
    fit_shard_shapes = sorted(shard_shapes)
    shard_shapes.clear()

    single_step = train.make_train_step(model.apply, loss_fn, tx)
    parallel_step = train.make_train_step(apply_fn, loss_fn, tx, mesh=mesh)
    state_1, state_8 = fresh(), fresh()
    losses_1, losses_8 = [], []
    for i in range(5):
        batch = (ds.x_train[64 * i: 64 * (i + 1)], ds.y_train[64 * i: 64 * (i + 1)])
        state_1, metrics_1 = single_step(state_1, batch)
        state_8, metrics_8 = parallel_step(state_8, batch)
        losses_1.append(float(metrics_1["loss"]))
        losses_8.append(float(metrics_8["loss"]))

    param = parallel.state.params[0]["w"]
    report = {
        "devices": jax.device_count(),
        "mesh_shape": dict(mesh.shape),
        "fit_params_max_diff": max_diff(single.state.params, parallel.state.params),
        "fit_opt_state_max_diff": max_diff(single.state.opt_state, parallel.state.opt_state),
        "fit_steps": [int(single.state.step), int(parallel.state.step)],
        "fit_history_loss": [[h["train_loss"] for h in single.history],
                             [h["train_loss"] for h in parallel.history]],
        "fit_test_accuracy": [single.history[-1]["test_accuracy"],
                              parallel.history[-1]["test_accuracy"]],
        "step_params_max_diff": max_diff(state_1.params, state_8.params),
        "step_losses": [losses_1, losses_8],
        "params_replicated": bool(param.sharding.is_fully_replicated
                                  and len(param.sharding.device_set) == 8),
        "params_spec": str(param.sharding.spec),
        "state_params_spec": str(state_8.params[0]["w"].sharding.spec),
        "single_device_batch_shapes": single_shard_shapes,
        "fit_batch_shard_shapes": fit_shard_shapes,
        "step_batch_shard_shapes": sorted(shard_shapes),
        **batch_norm_report(ds, mesh),
    }
    # Last: float64 from here on (the float32 runs above are done).
    jax.config.update("jax_enable_x64", True)
    report.update(batch_norm_fit_report(ds, mesh))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
