"""Training: jit-compiled train and eval steps, whole-epoch training, data parallelism.

The pieces are pure functions of a :class:`TrainState` pytree (``step``, ``params``,
``opt_state``, ``model_state``), so they work with any model: a plain ``apply_fn(params, x) ->
outputs`` (:class:`jaxfund.models.MLP`), or a :class:`jaxfund.models.Model` with mutable state,
a train/eval flag and a per-step RNG — a Flax linen module through
:func:`jaxfund.models.from_linen`, an NNX module through :func:`jaxfund.models.from_nnx` (dropout
and batch norm). Batches are ``(x, y)`` pairs or any pytree of arrays sharing the leading axis.

- :func:`make_train_step` / :func:`make_eval_step`: one jit-compiled step. The train step
  never deletes the caller's arrays unless asked to (``donate=True``). Options: mixed
  precision (``compute_dtype``), gradient accumulation (``microbatches``), a non-finite guard.
- :func:`fit`: epochs over device-resident data, each ONE compiled ``lax.scan`` over its
  minibatches or, for a convolutional model on CPU, one compiled call per step (``loop``). The
  shuffle of epoch ``e`` is ``numpy.random.default_rng([seed, e]).permutation(n)`` (drawn on
  the host one epoch ahead, while the device trains) and the model's RNG of step ``t`` is
  ``fold_in(fold_in(key(seed), 2**32 - 1), t)``, so resuming after epoch ``k``
  (``start_epoch=k``) reproduces the uninterrupted run bit for bit.
- :func:`fit_seeds`: several seeds trained at once, ONE compiled program (``jax.vmap`` over the
  seeds of the same epoch and step as :func:`fit`); seed ``s`` trains as ``fit`` with seed ``s``.
  :func:`fit_seeds_each`: the same for several models (e.g. one per activation), still one
  compiled program (``lax.switch`` on the model's index), run once per model; on a CPU the runs
  go side by side, one per core.
- The loss and metrics of a task come from :mod:`jaxfund.tasks`; checkpoints of a state are
  written by :mod:`jaxfund.checkpoint`.

Data parallelism. Pass ``mesh=data_mesh()`` (a 1-D :class:`jax.sharding.Mesh` with axis
``"data"``): every batch is sharded over ``"data"`` (``NamedSharding(mesh, P("data"))``), the
params and optimizer state are replicated (``NamedSharding(mesh, P())``), and XLA inserts the
all-reduce of the gradients. The code is the same as on one device, and so is the result up to
the order of floating-point summation in the batch mean (partial sums per device, then an
all-reduce), i.e. within a few float32 ulps per step.

Several processes (hosts). The same code runs as one process per host under JAX's distributed
runtime: call :func:`jaxfund.distributed.initialize` first in every process, build the global
mesh with ``data_mesh()`` (it spans ``jax.devices()``, all processes' devices) and run the same
program everywhere. :func:`fit` then feeds each process only its own rows of every minibatch:
every process passes the same ``train_data`` (host NumPy arrays; a memory-mapped array is read
only where this process's rows are) and the epoch's minibatches are assembled from the
processes' rows with ``jax.make_array_from_process_local_data``, so the global batch, the
shuffle and the results are those of one process; every process stops after the same epoch
(process 0's callback decides). With :func:`make_train_step`, each process feeds its own slice
of the global batch::

    sharding = NamedSharding(mesh, PartitionSpec("data"))
    batch = jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(sharding, a), local_batch)
    state, metrics = step(state, batch)

Sharded state. ``fit(..., shard_state=True)`` shards the params and optimizer state over
``"data"`` as well (:func:`jaxfund.distributed.state_shardings`: ZeRO/FSDP, each device stores
about 1/N of them) instead of replicating them; XLA gathers the params where the forward pass
needs them. The results are those of the replicated run up to summation order. Checkpoints
(:class:`jaxfund.checkpoint.Checkpoints`) are written by every process together, each its own
shards.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxfund import _checks, distributed, models, tasks

__all__ = [
    "TrainState",
    "FitResult",
    "SeedsResult",
    "make_train_step",
    "make_eval_step",
    "data_mesh",
    "place_state",
    "fit",
    "fit_seeds",
    "fit_seeds_each",
]

Batch = Any
ApplyFn = Callable[[Any, Any], Any] | models.Model | models.MLP
LossFn = Callable[[Any, Any], Any]

# fold_in tag of the model's RNG stream (dropout masks) under key(seed).
_MODEL_STREAM = 2**32 - 1


# A pytree of the fields' leaves, in field order, with the key paths (``.step``, ``.params...``)
# that checkpoints name leaves by: what flax.struct.dataclass made, without importing flax
# (~0.2 s of every command's start).
@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["step", "params", "opt_state", "model_state"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything that changes during training, as one pytree.

    Attributes:
      step: int32 scalar, the number of optimizer updates applied (a skipped non-finite update
        does not count).
      params: the model parameters (any pytree).
      opt_state: the optimizer state, ``tx.init(params)``.
      model_state: the model's mutable, non-trained state (e.g. batch-norm running statistics,
        flax ``batch_stats``): updated by every train step, read by evaluation; ``{}`` (no leaves)
        for a model without one.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any = dataclasses.field(default_factory=dict)

    def replace(self, **changes: Any) -> TrainState:
        """A copy with ``changes`` (field name -> new value), e.g. ``state.replace(params=p)``."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation,
               model_state: Any = None) -> TrainState:
        """A state at step 0 with ``opt_state = tx.init(params)`` and ``model_state`` (default
        ``{}``)."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   model_state={} if model_state is None else model_state)


def _split_batch(batch: Batch) -> tuple[Any, Any, bool]:
    """``(inputs, targets, is_pair)``: ``(x, y, True)`` for a pair, else the batch twice."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1], True
    return batch, batch, False


def _batch_size(batch: Batch, name: str = "batch") -> int:
    """The shared leading (example) axis of the batch's leaves; a clear error otherwise."""
    leaves = jax.tree_util.tree_leaves_with_path(batch)
    if not leaves:
        raise ValueError(f"{name} has no arrays")
    sizes = {}
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(f"{name}{jax.tree_util.keystr(path)} is a scalar; every leaf of "
                             "a batch needs a leading example axis")
        sizes.setdefault(shape[0], jax.tree_util.keystr(path))
    if len(sizes) > 1:
        seen = ", ".join(f"{name}{path}: {size}" for size, path in sizes.items())
        raise ValueError(f"{name} leaves need the same number of examples (leading axis), "
                         f"got {seen}")
    return next(iter(sizes))


def _check_batch(batch: Batch, mesh: Mesh | None, microbatches: int = 1) -> None:
    """Shape checks of a batch (at trace time, or before placing it on a mesh)."""
    size = _batch_size(batch)
    if mesh is not None and size % mesh.shape["data"]:
        raise ValueError(
            f"the batch size {size} must be divisible by the {mesh.shape['data']} devices "
            f"of the mesh's 'data' axis"
        )
    if size % microbatches:
        raise ValueError(f"the batch size {size} must be divisible by "
                         f"microbatches={microbatches}")


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _cast_floats(tree: Any, dtype: Any) -> Any:
    """The floating leaves of ``tree`` in ``dtype`` (``None``: unchanged)."""
    if dtype is None:
        return tree
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a,
        tree)


def _check_compute_dtype(compute_dtype: Any) -> Any:
    if compute_dtype is None:
        return None
    dtype = _checks.floating_dtype(compute_dtype)
    if dtype is None:
        raise ValueError(f"compute_dtype must be a floating dtype such as 'bfloat16', "
                         f"'float16' or 'float32', got {compute_dtype!r}")
    return dtype


def _loss_and_aux(value: Any) -> tuple[jax.Array, dict]:
    """A loss function's result: a scalar, or ``(scalar, dict of scalar metrics)``."""
    loss, aux = (value if isinstance(value, tuple) and len(value) == 2 else (value, {}))
    if not isinstance(aux, dict):
        raise TypeError(f"loss_fn must return a scalar or (scalar, dict of metrics), got a "
                        f"{type(aux).__name__} as its second element")
    if np.shape(loss) != ():
        raise ValueError(f"loss_fn must return a scalar loss (e.g. reduction='mean'), got shape "
                         f"{np.shape(loss)}")
    return loss, aux


def _model_state_like(new: Any, old: Any) -> Any:
    """The updated model state, checked against the carried one and kept in its dtypes."""
    if jax.tree.structure(new) != jax.tree.structure(old):
        raise ValueError(
            "the model returned a model_state of another structure than the state's "
            f"model_state ({jax.tree.structure(new)} vs {jax.tree.structure(old)}); pass the "
            "model's initial state as TrainState.create(params, tx, model_state)")
    return jax.tree.map(lambda n, o: n.astype(jnp.result_type(o)), new, old)


def _model_key(key: jax.Array, step: jax.Array) -> jax.Array:
    """The RNG key handed to the model in train step ``step``: ``fold_in(fold_in(key,
    2**32 - 1), step)``."""
    return jax.random.fold_in(jax.random.fold_in(key, _MODEL_STREAM), step)


def _make_forward(apply_fn: ApplyFn, loss_fn: LossFn | None, task: str,
                  compute_dtype: Any) -> Callable:
    """``forward(params, model_state, batch, *, train, rng) -> (loss, (metrics, model_state))``:
    the model on the batch (in ``compute_dtype``), its loss and metrics in float32 or wider."""
    model = models.as_model(apply_fn)
    loss_fn = tasks.loss(task) if loss_fn is None else loss_fn

    def forward(params, model_state, batch, *, train, rng):
        inputs, targets, pair = _split_batch(batch)
        outputs, new_model_state = model.apply(
            _cast_floats(params, compute_dtype), model_state,
            _cast_floats(inputs, compute_dtype), train=train, rng=rng)
        if compute_dtype is not None:
            outputs = jax.tree.map(
                lambda a: a.astype(jnp.promote_types(a.dtype, jnp.float32))
                if jnp.issubdtype(a.dtype, jnp.floating) else a, outputs)
        loss, aux = _loss_and_aux(loss_fn(outputs, targets))
        task_metrics = tasks.metrics(task, outputs, targets) if pair else {}
        clash = sorted(set(aux) & {"loss", "skipped", *task_metrics})
        if clash:
            raise ValueError(f"loss_fn's extra metrics may not be named {clash}: these names "
                             "are the loss and the task's metrics")
        metrics = {"loss": loss, **aux, **task_metrics}
        return loss, (metrics, _model_state_like(new_model_state, model_state))

    return forward


def _make_step_body(apply_fn: ApplyFn, loss_fn: LossFn | None, tx: optax.GradientTransformation,
                    task: str, mesh: Mesh | None, skip_nonfinite: bool,
                    compute_dtype: Any = None, microbatches: int = 1) -> Callable:
    """The un-jitted train step ``body(state, batch, key)`` shared by :func:`make_train_step`,
    :func:`fit` and :func:`fit_seeds` (``key``: the run's base key, ``key(seed)``)."""
    forward = _make_forward(apply_fn, loss_fn, task, compute_dtype)
    gradient = jax.grad(forward, has_aux=True)

    def gradients(params, model_state, batch, rng):
        """Mean gradient, metrics and model state over ``microbatches`` equal parts of the batch
        (one part: the batch's gradient)."""
        if microbatches == 1:
            grads, (metrics, model_state) = gradient(params, model_state, batch, train=True,
                                                     rng=rng)
            return grads, metrics, model_state
        parts = jax.tree.map(
            lambda a: a.reshape(microbatches, a.shape[0] // microbatches, *a.shape[1:]), batch)

        def accumulate(carry, part):
            total, model_state = carry
            i, micro = part
            grads, (metrics, model_state) = gradient(
                params, model_state, micro, train=True, rng=jax.random.fold_in(rng, i))
            return (jax.tree.map(jnp.add, total, grads), model_state), metrics

        (total, model_state), metrics = jax.lax.scan(
            accumulate, (jax.tree.map(jnp.zeros_like, params), model_state),
            (jnp.arange(microbatches), parts))
        grads = jax.tree.map(lambda g: g / microbatches, total)
        return grads, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics), model_state

    def train_step(state: TrainState, batch: Batch,
                   key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        _check_batch(batch, mesh, microbatches)
        grads, metrics, model_state = gradients(state.params, state.model_state, batch,
                                                _model_key(key, state.step))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(step=state.step + 1,
                                  params=optax.apply_updates(state.params, updates),
                                  opt_state=opt_state, model_state=model_state)
        if skip_nonfinite:
            finite = _all_finite((metrics["loss"], grads, new_state.params, opt_state,
                                  model_state))
            new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                     new_state, state)
            metrics["skipped"] = jnp.logical_not(finite).astype(jnp.int32)
        return new_state, metrics

    return train_step


def _make_eval_body(apply_fn: ApplyFn, loss_fn: LossFn | None, task: str,
                    mesh: Mesh | None, compute_dtype: Any = None) -> Callable:
    """The un-jitted evaluation shared by :func:`make_eval_step` and :func:`fit_seeds`."""
    forward = _make_forward(apply_fn, loss_fn, task, compute_dtype)

    def eval_step(params: Any, batch: Batch, model_state: Any = None) -> dict[str, jax.Array]:
        _check_batch(batch, mesh)
        _, (metrics, _) = forward(params, {} if model_state is None else model_state, batch,
                                  train=False, rng=None)
        return metrics

    return eval_step


def _gather(data: Any, indices: jax.Array, sharded: NamedSharding | None) -> Any:
    batch = jax.tree.map(lambda a: a[indices], data)
    return batch if sharded is None else jax.lax.with_sharding_constraint(batch, sharded)


def _epoch_order(seed: int, e: int, n: int, num_batches: int, batch_size: int) -> np.ndarray:
    """The example indices of epoch ``e``'s minibatches, int32 ``(num_batches, batch_size)``:
    ``numpy.random.default_rng([seed, e]).permutation(n)`` with the ragged end dropped.

    Drawn on the host: NumPy permutes 800 indices in ~16 us, XLA:CPU's sort behind
    ``jax.random.permutation`` takes ~90 us, as long as a whole epoch of the course's MLP."""
    order = np.random.default_rng([seed, e]).permutation(n)
    return order[: num_batches * batch_size].reshape(num_batches, batch_size).astype(np.int32)


def _make_epoch(step_body: Callable, sharded: NamedSharding | None = None) -> Callable:
    """``epoch(state, data, key, order)``: one ``lax.scan`` of ``step_body`` over the minibatches
    ``data[order[i]]`` (``order`` from :func:`_epoch_order`)."""

    def epoch(state: TrainState, data: Any, key: jax.Array, order: jax.Array):
        def scan_step(state, indices):
            return step_body(state, _gather(data, indices, sharded), key)

        return jax.lax.scan(scan_step, state, order)

    return epoch


def _shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """(replicated, sharded over "data") for ``mesh``."""
    if "data" not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named 'data', got axes {mesh.axis_names}")
    return NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def _check_microbatches(microbatches: int) -> int:
    return _checks.check_int(microbatches, "microbatches", low=1)


def _place_checked(mesh: Mesh | None, microbatches: int = 1) -> Callable:
    """``place(batch)``: the batch checked, then sharded over the mesh's ``"data"`` axis."""
    if mesh is None:
        return lambda batch: batch
    _, sharded = _shardings(mesh)

    def place(batch: Batch) -> Batch:
        _check_batch(batch, mesh, microbatches)
        return jax.device_put(tuple(batch) if isinstance(batch, list) else batch, sharded)

    return place


def make_train_step(apply_fn: ApplyFn, loss_fn: LossFn | None, tx: optax.GradientTransformation,
                    *, task: str = "multiclass", mesh: Mesh | None = None,
                    skip_nonfinite: bool = False, seed: int = 0, compute_dtype: Any = None,
                    microbatches: int = 1, donate: bool = False,
                    max_traces: int | None = None) -> Callable:
    """A jit-compiled train step ``step(state, batch) -> (state, metrics)``.

    One step: ``loss, grads = value_and_grad(loss_fn(apply(params, inputs), targets))``, then
    ``updates, opt_state = tx.update(grads, opt_state, params)`` and
    ``params = optax.apply_updates(params, updates)`` (torch: ``zero_grad(); loss.backward();
    optimizer.step()``); the model's state (batch-norm statistics) is updated by the forward
    pass in training mode. The batch shape is checked once, at trace time.

    Batches. An ``(x, y)`` pair: the model gets ``x``, the loss ``(outputs, y)``, and the task's
    metrics are computed. Any other pytree whose leaves share the leading example axis (e.g.
    ``{"image": ..., "label": ...}``): the model and the loss get the whole batch
    (``loss_fn(outputs, batch)``; :func:`jaxfund.models.from_linen` takes ``inputs=`` to pick
    the model's input).

    Args:
      apply_fn: a plain ``apply_fn(params, inputs) -> outputs``, or a
        :class:`jaxfund.models.Model` (model state, train/eval flag, RNG): e.g.
        :func:`jaxfund.models.from_linen` or :func:`jaxfund.models.from_nnx`; or a
        :class:`jaxfund.models.MLP` (with its dropout).
      loss_fn: ``loss_fn(outputs, targets) -> scalar`` or ``-> (scalar, {name: scalar})`` (the
        extra metrics are reported); ``None`` takes the task's loss, :func:`jaxfund.tasks.loss`.
      tx: an ``optax.GradientTransformation``, e.g. ``jaxfund.optimizers.adam(lr=1e-3)``.
      task: ``"multiclass"``, ``"binary"`` or ``"regression"`` (:data:`jaxfund.tasks.TASKS`);
        selects the metrics (:func:`jaxfund.tasks.metrics`) and the default loss.
      mesh: a mesh with a ``"data"`` axis (see :func:`data_mesh`) for data parallelism: the
        batch is sharded over ``"data"`` (its size must be divisible by the axis size), the
        state is replicated. Batch statistics (batch norm) are those of the global batch, as
        torch's ``SyncBatchNorm``: the model's mean over the sharded batch axis is a global
        mean. ``None``: default device.
      skip_nonfinite: if True, an update whose loss, gradients, new params, new optimizer state
        or new model state contain NaN/inf is skipped (the state is returned unchanged,
        ``step`` included) and ``metrics["skipped"]`` is 1.
      seed: the model's RNG in step ``t`` is ``fold_in(fold_in(key(seed), 2**32 - 1), t)``
        (``t = state.step``; dropout masks are reproducible and resume exactly).
      compute_dtype: e.g. ``"bfloat16"``: the forward and backward passes run in this dtype
        (floating params and inputs cast to it), while params, optimizer state and gradients
        stay in the params' dtype (float32 master weights) and the outputs are cast to at
        least float32 before the loss, so the loss and metrics are reduced and reported in
        float32. ``None``: no cast.
      microbatches: gradient accumulation: the batch is split into this many equal parts, run
        one after another, and their mean gradient makes ONE update — the update of the whole
        batch for a mean loss (up to rounding), with the memory of one part. The model state
        goes through the parts in order; part ``i`` gets the key ``fold_in(rng, i)``.
      donate: donate the state's buffers to the result (saves memory; the state passed in is
        deleted). Default False: the caller's arrays stay valid, e.g. to train two optimizers
        from one initial state.
      max_traces: for tests: wrap the step in ``chex.assert_max_traces(n=max_traces)`` inside
        ``jax.jit`` (chex counts traces per call site; ``chex.clear_trace_counter()`` resets).

    Returns:
      ``step(state, batch)``. ``metrics`` has ``"loss"`` (the mean loss before the update),
      ``"accuracy"`` (classification) or ``"mse"`` (regression) for ``(x, y)`` batches, the
      loss function's extra metrics, and ``"skipped"`` (int32 0/1) with ``skip_nonfinite``.
    """
    _checks.check_int(seed, "seed", low=0)
    body = _make_step_body(apply_fn, loss_fn, tx, task, mesh, skip_nonfinite,
                           _check_compute_dtype(compute_dtype), _check_microbatches(microbatches))
    key = jax.random.key(seed)

    def train_step(state: TrainState, batch: Batch):
        return body(state, batch, key)

    if max_traces is not None:
        train_step = chex.assert_max_traces(train_step, n=max_traces)
    donate_argnums = (0,) if donate else ()
    if mesh is None:
        return jax.jit(train_step, donate_argnums=donate_argnums)
    replicated, sharded = _shardings(mesh)
    jitted = jax.jit(train_step, in_shardings=(replicated, sharded),
                     out_shardings=(replicated, replicated), donate_argnums=donate_argnums)
    place = _place_checked(mesh, microbatches)

    def data_parallel_train_step(state: TrainState, batch: Batch):
        return jitted(jax.device_put(state, replicated), place(batch))

    return data_parallel_train_step


def make_eval_step(apply_fn: ApplyFn, loss_fn: LossFn | None = None, *,
                   task: str = "multiclass", mesh: Mesh | None = None, compute_dtype: Any = None,
                   max_traces: int | None = None) -> Callable:
    """A jit-compiled evaluation ``eval_step(params, batch, model_state=None) -> metrics``.

    The model runs in evaluation mode (``train=False``, no RNG: dropout off, batch norm reads
    the running statistics of ``model_state``, which is not updated).

    Args:
      apply_fn, loss_fn, task, mesh, compute_dtype, max_traces: as in :func:`make_train_step`.

    Returns:
      ``eval_step(params, batch, model_state=None)`` with metrics ``{"loss", "accuracy"}`` for
      classification or ``{"loss", "mse"}`` for regression (``mse = mean((outputs[..., 0] -
      y)**2)``) over the whole batch, plus the loss function's extra metrics.
    """
    eval_step = _make_eval_body(apply_fn, loss_fn, task, mesh,
                                _check_compute_dtype(compute_dtype))
    if max_traces is not None:
        eval_step = chex.assert_max_traces(eval_step, n=max_traces)
    if mesh is None:
        return jax.jit(eval_step)
    replicated, sharded = _shardings(mesh)
    jitted = jax.jit(eval_step, in_shardings=(replicated, sharded, replicated),
                     out_shardings=replicated)
    place = _place_checked(mesh)

    def data_parallel_eval_step(params: Any, batch: Batch, model_state: Any = None):
        return jitted(jax.device_put(params, replicated), place(batch),
                      jax.device_put({} if model_state is None else model_state, replicated))

    return data_parallel_eval_step


def _state_sharding(state: TrainState, mesh: Mesh, shard_state: bool) -> Any:
    """The sharding :func:`fit` trains ``state`` with on ``mesh``: replicated, or with
    ``shard_state`` :func:`jaxfund.distributed.state_shardings` (one per leaf)."""
    return distributed.state_shardings(state, mesh) if shard_state else NamedSharding(mesh, P())


def place_state(state: TrainState, mesh: Mesh, *, shard_state: bool = False) -> TrainState:
    """``state`` on the devices of ``mesh`` as :func:`fit` trains it there with ``shard_state``:
    replicated, or sharded by :func:`jaxfund.distributed.state_shardings`. The ``like`` to
    restore a checkpoint onto this topology (``Checkpoints(d).restore(place_state(...))``
    reshards what another topology saved)."""
    _shardings(mesh)  # checks the "data" axis
    return jax.device_put(state, _state_sharding(state, mesh, shard_state))


def data_mesh(devices: Any = None) -> Mesh:
    """A 1-D :class:`jax.sharding.Mesh` with axis ``"data"`` over ``devices``.

    Args:
      devices: a sequence of devices; default ``jax.devices()`` (all devices of all processes,
        so under ``jax.distributed.initialize()`` this is the global mesh).
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must not be empty")
    return Mesh(np.asarray(devices), ("data",))


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
      state: the final :class:`TrainState`.
      history: one dict per epoch run (see :func:`fit`).
      compile_seconds: time to trace and compile the epoch (once).
      train_seconds: wall time of the training epochs, excluding compilation and evaluation.
      steps: minibatches processed (skipped non-finite updates included).
      loop: the loop that ran, ``"scan"`` or ``"step"`` (see :func:`fit`'s ``loop``).
    """

    state: TrainState
    history: list[dict]
    compile_seconds: float
    train_seconds: float
    steps: int
    loop: str = "scan"


def _check_data(data: Any, name: str, host: bool = False) -> Any:
    """``data`` (an ``(x, y)`` pair or any pytree of arrays sharing the leading example axis)
    with array leaves (JAX arrays; with ``host``, NumPy arrays, memory-mapped ones kept as they
    are); a clear error otherwise."""
    if isinstance(data, list) and len(data) == 2:
        data = tuple(data)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(data)]
    leaves, treedef = jax.tree.flatten(data)
    arrays = [leaf if host and isinstance(leaf, np.ndarray)
              else _checks.as_array(leaf, f"{name}{path}") for leaf, path in zip(leaves, paths)]
    if host:
        arrays = [np.asarray(array) for array in arrays]
    data = jax.tree.unflatten(treedef, arrays)
    _batch_size(data, name)
    return data


def _check_schedule(data: Any, epochs: int, batch_size: int, start_epoch: int = 0) -> int:
    """Checks the epoch and batch arguments of :func:`fit`/:func:`fit_seeds`; returns the
    number of minibatches per epoch."""
    _checks.check_int(epochs, "epochs", low=0)
    _checks.check_int(start_epoch, "start_epoch", low=0)
    _checks.check_int(batch_size, "batch_size", low=1)
    if start_epoch > epochs:
        raise ValueError(f"start_epoch={start_epoch} must be <= epochs={epochs}")
    n = _batch_size(data, "train_data")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} examples "
                         "of train_data")
    return n // batch_size


def _summary(metrics: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    """Mean of per-step metrics over the steps that were not skipped."""
    kept = metrics.get("skipped", np.zeros_like(metrics["loss"], dtype=np.int32)) == 0
    out = {}
    for name, values in metrics.items():
        if name == "skipped":
            continue
        out[f"{prefix}{name}"] = float(np.mean(values[kept])) if kept.any() else math.nan
    return out


def _params_to_evaluate(state: TrainState, eval_params: Callable | None) -> Any:
    return state.params if eval_params is None else eval_params(state)


def _history_entry(epoch: int, train: dict[str, np.ndarray],
                   test: dict[str, np.ndarray] | None) -> dict:
    """One epoch of history: the means of the per-step train metrics and the test metrics."""
    entry = {"epoch": epoch, **_summary(train, "train_")}
    if test is not None:
        entry.update({f"test_{name}": float(value) for name, value in test.items()})
    entry["skipped"] = int(np.sum(train.get("skipped", 0)))
    return entry


LOOPS = ("auto", "scan", "step")


def _primitive_names(jaxpr: Any) -> set[str]:
    """The primitives of a jaxpr and of every jaxpr nested in its equations."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(sub, "eqns") or hasattr(sub, "jaxpr"):
                    names |= _primitive_names(sub)
    return names


def _choose_loop(loop: str, step: Callable, args: tuple, platform: str) -> str:
    """``"scan"`` or ``"step"`` for ``loop="auto"``: a train step with a convolution on CPU
    runs one compiled call per step, everything else one ``lax.scan`` per epoch.

    Measured (benchmarks/train.py, 2-core x86, jaxlib 0.10): XLA:CPU runs the kernel gradient
    of a convolution inside a while loop ~30x slower than outside one (the digits CNN of
    scripts/train_cnn_linen.py: 202 ms per step in the scan, 6.7 ms from a Python loop), while
    an MLP's scan is 2.6x faster than a Python loop (no per-step dispatch).
    """
    if loop != "auto":
        return loop
    if platform != "cpu":
        return "scan"
    has_conv = "conv_general_dilated" in _primitive_names(jax.make_jaxpr(step)(*args))
    return "step" if has_conv else "scan"


def _fetch(metrics: dict | list[dict]) -> dict[str, np.ndarray]:
    """An epoch's per-step metrics on the host: ``{name: (steps,)}`` from the scan's stacked
    arrays or from the step loop's list of per-step dicts."""
    metrics = jax.device_get(metrics)
    if isinstance(metrics, list):
        return {name: np.stack([m[name] for m in metrics]) for name in metrics[0]}
    return metrics


def _copy(tree: Any) -> Any:
    """A copy of every array of ``tree`` in new buffers (which the library may donate)."""
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


def fit(state: TrainState, train_data: Any, *, apply_fn: ApplyFn,
        loss_fn: LossFn | None = None, tx: optax.GradientTransformation,
        task: str = "multiclass", epochs: int, batch_size: int, seed: int = 0,
        eval_data: Any = None, start_epoch: int = 0,
        mesh: Mesh | None = None, skip_nonfinite: bool = False, compute_dtype: Any = None,
        microbatches: int = 1, loop: str = "auto", shard_state: bool = False,
        callback: Callable[[dict, TrainState], bool | None] | None = None,
        eval_params: Callable[[TrainState], Any] | None = None,
        max_traces: int | None = None) -> FitResult:
    """Trains for epochs ``start_epoch + 1 .. epochs`` on device-resident data.

    The data are put on the device(s) once and the state is copied once (the caller's arrays
    stay valid; the copies are donated from step to step). Epoch ``e`` visits the examples in
    the order ``numpy.random.default_rng([seed, e]).permutation(n)`` (drawn on the host while
    the previous epoch trains), in ``n // batch_size``
    minibatches (the ragged last batch is dropped, as torch ``DataLoader(drop_last=True)``),
    each a step of :func:`make_train_step` (with ``seed``: the model's RNG in step ``t`` is
    ``fold_in(fold_in(key(seed), 2**32 - 1), t)``). Because the shuffle and the RNG depend only
    on ``(seed, e)`` and the step, resuming from a checkpoint saved after epoch ``k`` with
    ``start_epoch=k`` gives exactly the parameters of the uninterrupted run.

    Args:
      state: the initial state (not modified; the result is ``result.state``).
      train_data: ``(x, y)`` arrays, or any pytree of arrays (e.g. a dict), with the examples
        on the leading axis; batches of it are given to the model and loss as in
        :func:`make_train_step`.
      apply_fn, loss_fn, tx, task, mesh, skip_nonfinite, seed, compute_dtype, microbatches,
      max_traces: as in :func:`make_train_step` (``max_traces`` guards the compiled epoch or
        step).
      epochs: the last epoch to run (1-based, >= ``start_epoch``).
      batch_size: examples per step (divisible by the mesh's ``"data"`` size with a mesh, and
        by ``microbatches``).
      eval_data: optional data like ``train_data``, evaluated as one batch after every epoch in
        evaluation mode (dropout off, batch norm on the running statistics; with a mesh,
        replicated on every device rather than sharded, so its size need not divide).
      start_epoch: number of epochs already done (resume).
      loop: ``"scan"``: each epoch is ONE compiled ``lax.scan`` over its minibatches (no
        per-step dispatch); ``"step"``: one compiled call per step from Python; ``"auto"``
        (default): ``"step"`` when the train step contains a convolution and runs on CPU
        (XLA:CPU runs a convolution's gradient inside a loop tens of times slower), ``"scan"``
        otherwise. Both give the same steps.
      callback: ``callback(entry, state)`` after every epoch, e.g. for a progress bar or a
        checkpoint (:class:`jaxfund.checkpoint.Checkpoints`); if it returns True, training stops
        after this epoch (early stopping; with several processes, process 0's return value
        decides for all). The state is donated to the next epoch: save or copy it
        inside the callback rather than keeping a reference.
      eval_params: the parameters to evaluate, as a function of the state; default
        ``state.params``. :func:`jaxfund.averaging.averaged_params` evaluates the SWA/EMA average.
      shard_state: with a mesh: shard the params and optimizer state over its ``"data"`` axis
        (:func:`jaxfund.distributed.state_shardings`) instead of replicating them; the state
        returned (and given to ``callback``) is sharded so.

    Returns:
      :class:`FitResult`. ``history`` has one entry per epoch: ``{"epoch", "train_loss",
      "train_accuracy" | "train_mse", "test_loss", "test_accuracy" | "test_mse" (with
      eval_data), "skipped" (the epoch's skipped non-finite steps), "seconds"}`` and the loss
      function's extra metrics; train metrics are means over the epoch's steps that were not
      skipped.
    """
    multiprocess = mesh is not None and mesh.is_multi_process
    data = _check_data(train_data, "train_data", host=multiprocess)
    num_batches = _check_schedule(data, epochs, batch_size, start_epoch)
    _checks.check_int(seed, "seed", low=0)
    _checks.check_choice(loop, "loop", LOOPS)
    microbatches = _check_microbatches(microbatches)
    num_devices = 1 if mesh is None else mesh.shape["data"]
    for divisor, what in ((num_devices, f"the {num_devices} devices of the mesh's 'data' axis"),
                          (microbatches, f"microbatches={microbatches}")):
        if batch_size % divisor:
            raise ValueError(f"batch_size={batch_size} must be divisible by {what}")
    if shard_state and mesh is None:
        raise ValueError("shard_state=True needs a mesh to shard over: pass "
                         "mesh=train.data_mesh()")
    compute_dtype = _check_compute_dtype(compute_dtype)
    step_body = _make_step_body(apply_fn, loss_fn, tx, task, mesh, skip_nonfinite,
                                compute_dtype, microbatches)
    key = jax.random.key(seed)
    n = _batch_size(data, "train_data")
    if mesh is None:
        place = state_place = jax.device_put
        jit_options: dict = {}
    else:
        replicated, sharded = _shardings(mesh)
        state_sharding = _state_sharding(state, mesh, shard_state)
        feed_sharding = NamedSharding(mesh, P(None, "data")) if multiprocess else replicated

        def place(tree: Any) -> Any:
            return jax.device_put(tree, replicated)

        def state_place(state: TrainState) -> TrainState:
            return jax.device_put(state, state_sharding)

        jit_options = {"in_shardings": (state_sharding, feed_sharding, replicated),
                       "out_shardings": (state_sharding, replicated)}
    state = _copy(state_place(state))
    if multiprocess:
        # Every process holds the data on the host and puts only its own rows of each batch on
        # its devices: epoch e's minibatches, (num_batches, batch_size, ...) sharded on the
        # batch axis, assembled from the processes' rows.
        rows = distributed.local_rows(feed_sharding, (num_batches, batch_size), axis=1)
        steps = place(np.arange(num_batches, dtype=np.int32))  # the scan's minibatch numbers

        def feed_of(epoch: int) -> tuple[Any, jax.Array]:
            mine = _epoch_order(seed, epoch, n, num_batches, batch_size)[:, rows]
            return jax.tree.map(lambda a: jax.make_array_from_process_local_data(
                feed_sharding, a[mine], (num_batches, batch_size, *a.shape[1:])), data), steps

        def batch_of(feed: Any, i: jax.Array) -> Batch:
            return jax.lax.with_sharding_constraint(jax.tree.map(lambda a: a[i], feed), sharded)

        first = jax.tree.map(lambda a: a[:batch_size], data)
    else:
        # The data are on every device once; each step gathers its minibatch by index.
        data = place(data)

        def feed_of(epoch: int) -> tuple[Any, jax.Array]:
            return data, place(_epoch_order(seed, epoch, n, num_batches, batch_size))

        def batch_of(feed: Any, indices: jax.Array) -> Batch:
            return _gather(feed, indices, None if mesh is None else sharded)

        first = _gather(data, jnp.arange(batch_size), None)
    loop = _choose_loop(loop, lambda state, batch: step_body(state, batch, key), (state, first),
                        mesh.devices.flat[0].platform if mesh is not None
                        else jax.default_backend())

    def step_of(state: TrainState, feed: Any, indices: jax.Array):
        """One step on the minibatch ``batch_of(feed, indices)``: ``data[indices]`` gathered on
        the device, or the fed epoch's minibatch number ``indices``."""
        return step_body(state, batch_of(feed, indices), key)

    if loop == "scan":
        def train_epoch(state: TrainState, feed: Any, order: jax.Array):
            return jax.lax.scan(lambda state, indices: step_of(state, feed, indices), state,
                                order)

        if max_traces is not None:
            train_epoch = chex.assert_max_traces(train_epoch, n=max_traces)
        compiled = jax.jit(train_epoch, donate_argnums=0, **jit_options)

        def run_epoch(state: TrainState, feed: tuple[Any, jax.Array]):
            return compiled(state, *feed)

        def compile_loop(feed: tuple[Any, jax.Array]) -> None:
            compiled.lower(state, *feed).compile()
    else:
        def indexed_step(state: TrainState, feed: Any, order: jax.Array, i: jax.Array):
            return step_of(state, feed, order[i])

        if max_traces is not None:
            indexed_step = chex.assert_max_traces(indexed_step, n=max_traces)
        if mesh is not None:
            jit_options["in_shardings"] = (*jit_options["in_shardings"], replicated)
        compiled = jax.jit(indexed_step, donate_argnums=0, **jit_options)

        def run_epoch(state: TrainState, feed: tuple[Any, jax.Array]):
            metrics = []
            for i in range(num_batches):
                state, step_metrics = compiled(state, *feed, np.int32(i))
                metrics.append(step_metrics)
            return state, metrics

        def compile_loop(feed: tuple[Any, jax.Array]) -> None:
            compiled.lower(state, *feed, np.int32(0)).compile()

    evaluate = None
    if eval_data is not None:
        eval_batch = place(_check_data(eval_data, "eval_data", host=multiprocess))
        evaluate = jax.jit(_make_eval_body(apply_fn, loss_fn, task, None, compute_dtype),
                           **({} if mesh is None else {"out_shardings": replicated}))

    history: list[dict] = []
    compile_seconds = train_seconds = 0.0
    feed = feed_of(start_epoch + 1)
    if start_epoch < epochs:
        start = time.perf_counter()
        compile_loop(feed)
        compile_seconds = time.perf_counter() - start
    for epoch in range(start_epoch + 1, epochs + 1):
        start = time.perf_counter()
        state, metrics = run_epoch(state, feed)  # dispatched: the device trains, while
        feed = feed_of(epoch + 1)  # the host draws the next epoch's shuffle
        metrics = _fetch(metrics)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        test = None if evaluate is None else jax.device_get(evaluate(
            _params_to_evaluate(state, eval_params), eval_batch, state.model_state))
        entry = {**_history_entry(epoch, metrics, test), "seconds": seconds}
        history.append(entry)
        stop = bool(callback is not None and callback(entry, state))
        if multiprocess:  # every process stops after the same epoch: process 0's decision
            stop = bool(multihost_utils.broadcast_one_to_all(np.bool_(stop)))
        if stop:
            break
    return FitResult(state=state, history=history, compile_seconds=compile_seconds,
                     train_seconds=train_seconds, steps=num_batches * len(history), loop=loop)


class SeedsResult(NamedTuple):
    """What :func:`fit_seeds` returns.

    Attributes:
      states: the final :class:`TrainState` of every seed, stacked on a leading seed axis
        (``jax.tree.map(lambda a: a[i], states)`` is seed ``seeds[i]``'s).
      histories: one history per seed, each one entry per epoch as :func:`fit`'s (without
        ``"seconds"``: the seeds run together).
      compile_seconds: time to trace and compile the one program.
      train_seconds: wall time of the run (every seed, every epoch, evaluations included;
        for :func:`fit_seeds_each`, of this model's run, which on a CPU shares the machine with
        the next model's).
    """

    states: TrainState
    histories: list[list[dict]]
    compile_seconds: float
    train_seconds: float


def fit_seeds(init_fn: Callable[[jax.Array], Any], train_data: Any, *,
              seeds: Sequence[int], apply_fn: ApplyFn, loss_fn: LossFn | None = None,
              tx: optax.GradientTransformation, task: str = "multiclass", epochs: int,
              batch_size: int, eval_data: Any = None,
              skip_nonfinite: bool = False,
              eval_params: Callable[[TrainState], Any] | None = None) -> SeedsResult:
    """Trains one model per seed, every seed and every epoch in ONE compiled program.

    Seed ``s`` starts from ``init_fn(jax.random.key(s))`` and trains exactly as
    ``fit(TrainState.create(init_fn(key(s)), tx), train_data, seed=s, ...)``: the same train
    step, the same epoch (shuffle ``default_rng([s, e]).permutation(n)``) and the same
    evaluation after every epoch. The seeds are batched with ``jax.vmap`` and the epochs run in
    a ``lax.scan``, so ``len(seeds)`` seeds cost one compilation and one dispatch. Batched
    matrix products may be summed in another order than single ones, so a seed's numbers can
    differ from ``fit``'s in the last float32 bits (see the README).

    Args:
      init_fn: ``init_fn(key) -> params``, e.g. ``MLP(...).init``; with a
        :class:`jaxfund.models.Model` as ``apply_fn``, ``init_fn(key) -> (params,
        model_state)``, e.g. ``lambda key: model.init(key, x[:1])``.
      train_data, apply_fn, loss_fn, tx, task, epochs, batch_size, eval_data, skip_nonfinite,
      eval_params: as in :func:`fit` (all epochs from the first; no mesh: run on the default
        device).
      seeds: the seeds, non-negative ints.

    Returns:
      :class:`SeedsResult` with the stacked final states and one :func:`fit`-style history per
      seed.

    >>> from jaxfund import models, optimizers
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int32)
    >>> model = models.MLP(4, (8,), 1)
    >>> result = fit_seeds(model.init, (x, y), seeds=[0, 1], apply_fn=model.apply,
    ...                    tx=optimizers.adam(lr=1e-2), task="binary", epochs=3, batch_size=16)
    >>> [len(h) for h in result.histories], sorted(result.histories[0][-1])
    ([3, 3], ['epoch', 'skipped', 'train_accuracy', 'train_loss'])
    """
    return next(fit_seeds_each(init_fn, train_data, seeds=seeds, apply_fns=[apply_fn],
                               loss_fn=loss_fn, tx=tx, task=task, epochs=epochs,
                               batch_size=batch_size, eval_data=eval_data,
                               skip_nonfinite=skip_nonfinite, eval_params=eval_params))


def fit_seeds_each(init_fn: Callable[[jax.Array], Any], train_data: Any, *,
                   seeds: Sequence[int], apply_fns: Sequence[ApplyFn],
                   loss_fn: LossFn | None = None, tx: optax.GradientTransformation,
                   task: str = "multiclass", epochs: int, batch_size: int, eval_data: Any = None,
                   skip_nonfinite: bool = False,
                   eval_params: Callable[[TrainState], Any] | None = None,
                   ) -> Iterator[SeedsResult]:
    """:func:`fit_seeds` for each model of ``apply_fns`` in turn, from ONE compiled program.

    The models share ``init_fn`` (the same parameter structure and initialisation, e.g. an
    ``MLP`` with different activations). The program takes the model's index as an argument
    and picks its whole epoch and evaluation with ``lax.switch``; the index is not batched, so
    the switch stays a conditional that runs one model's epoch, and model ``i`` trains exactly
    as ``fit_seeds(init_fn, ..., apply_fn=apply_fns[i])`` does. Compiling once instead of once
    per model is what saves time: for the course's MLP, XLA's compilation is ~90% of a
    ``fit_seeds`` call.

    Args:
      apply_fns: one or more models, as ``apply_fn`` of :func:`fit_seeds`.
      init_fn, train_data, seeds, loss_fn, tx, task, epochs, batch_size, eval_data,
      skip_nonfinite, eval_params: as in :func:`fit_seeds`, shared by every model.

    Returns:
      An iterator of one :class:`SeedsResult` per model, in order (the arguments are checked
      and the program is compiled at the call: the first result's ``compile_seconds``, the
      others' are 0). Each model trains when its result is asked for; on a CPU the next models
      train alongside it, one per core (:func:`_models_at_once`), each on its own thread. The
      numbers do not depend on it: each run is the same program on the same inputs.
    """
    data = _check_data(train_data, "train_data")
    num_batches = _check_schedule(data, epochs, batch_size)
    seeds = [_checks.check_int(s, f"seeds[{i}]", low=0) for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must not be empty")
    apply_fns = list(apply_fns)
    if not apply_fns:
        raise ValueError("apply_fns must not be empty")
    # vmap over the seeds is applied to each step and evaluation, inside the scans and the
    # switch, not around them: each model's step is then traced once, batched as it is traced.
    # A vmap around the scans traces the step unbatched and then batches its jaxpr, a second
    # pass over every branch (the program is the same). An epoch's order is
    # (num_batches, seeds, batch_size): a step gathers every seed's batch at once.
    epoch_fns = [_make_epoch(jax.vmap(_make_step_body(apply_fn, loss_fn, tx, task, None,
                                                      skip_nonfinite)))
                 for apply_fn in apply_fns]
    evaluates = None if eval_data is None else [
        jax.vmap(_make_eval_body(apply_fn, loss_fn, task, None), in_axes=(0, None, 0))
        for apply_fn in apply_fns]
    eval_batch = None if eval_data is None else _check_data(eval_data, "eval_data")
    with_model_state = isinstance(apply_fns[0], models.Model)

    def initial_state(key: jax.Array) -> TrainState:
        init = init_fn(key)
        params, model_state = init if with_model_state else (init, {})
        return TrainState.create(params, tx, model_state)

    def every_seed(index: jax.Array, seeds: jax.Array, orders: jax.Array, data: Any,
                   eval_batch: Any):
        keys = jax.vmap(jax.random.key)(seeds)
        states = jax.vmap(initial_state)(keys)
        params_to_evaluate = jax.vmap(lambda state: _params_to_evaluate(state, eval_params))

        def epoch(states, orders):
            states, train = jax.lax.switch(index, epoch_fns, states, data, keys, orders)
            test = None if evaluates is None else jax.lax.switch(
                index, evaluates, params_to_evaluate(states), eval_batch, states.model_state)
            return states, (train, test)

        return jax.lax.scan(epoch, states, orders)

    n = _batch_size(data, "train_data")
    orders = np.zeros((epochs, num_batches, len(seeds), batch_size), np.int32)
    for i, s in enumerate(seeds):
        for e in range(epochs):
            orders[e, :, i] = _epoch_order(s, e + 1, n, num_batches, batch_size)
    args = (jnp.asarray(seeds, jnp.uint32), jnp.asarray(orders), jax.tree.map(jnp.asarray, data),
            None if eval_batch is None else jax.tree.map(jnp.asarray, eval_batch))
    start = time.perf_counter()
    compiled = jax.jit(every_seed).lower(jnp.int32(0), *args).compile()
    compile_seconds = time.perf_counter() - start

    def run(index: int) -> tuple[Any, float]:
        start = time.perf_counter()
        states, (train, test) = jax.block_until_ready(compiled(jnp.int32(index), *args))
        return (states, jax.device_get((train, test))), time.perf_counter() - start

    def results() -> Iterator[SeedsResult]:
        at_once = _models_at_once(len(apply_fns))
        runs: dict[int, concurrent.futures.Future] = {}
        with concurrent.futures.ThreadPoolExecutor(at_once) as pool:
            try:
                for index in range(len(apply_fns)):
                    for later in range(index, min(index + at_once, len(apply_fns))):
                        if later not in runs:
                            runs[later] = pool.submit(run, later)
                    (states, (train, test)), train_seconds = runs.pop(index).result()
                    # train metrics are (epochs, num_batches, seeds, ...), test metrics
                    # (epochs, seeds)
                    histories = [
                        [_history_entry(e + 1, {k: v[e, :, i] for k, v in train.items()},
                                        None if test is None
                                        else {k: v[e, i] for k, v in test.items()})
                         for e in range(epochs)]
                        for i in range(len(seeds))]
                    yield SeedsResult(states=states, histories=histories,
                                      compile_seconds=compile_seconds if index == 0 else 0.0,
                                      train_seconds=train_seconds)
            finally:  # the iterator closed early: runs not started are dropped
                for future in runs.values():
                    future.cancel()

    return results()


def _models_at_once(models: int) -> int:
    """How many of :func:`fit_seeds_each`'s model runs execute at once: on a CPU, one per core
    (at most ``models``), else one. XLA:CPU runs a small program's steps on about one core, and
    runs called from two threads run side by side: on 2 cores, compare's six digits models
    took 0.93-1.18 s one after another and 0.37-0.56 s two at a time (with 512-wide layers,
    which XLA spreads over the cores itself, 15.8-16.7 -> 13.7-13.8 s; benchmarks/README.md).
    An accelerator runs one at a time."""
    if jax.default_backend() != "cpu":
        return 1
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return max(1, min(cores, models))
