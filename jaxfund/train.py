"""Training: a jit-compiled train step, whole-epoch ``lax.scan`` training, data parallelism and
atomic checkpoints.

The pieces are pure functions of a :class:`TrainState` pytree (``step``, ``params``,
``opt_state``), so they work with any model written as ``apply_fn(params, x) -> outputs``:
:class:`jaxfund.models.MLP`, a flax.linen module's ``apply`` or a flax.nnx model split into
``graphdef, state`` (``apply_fn = lambda state, x: nnx.merge(graphdef, state)(x)``).

- :func:`make_train_step` / :func:`make_eval_step`: one jit-compiled step; the train step
  donates the state (its buffers are reused for the result, so use the returned state).
- :func:`fit`: each epoch is ONE compiled ``lax.scan`` over minibatches of device-resident
  data. The shuffle of epoch ``e`` is ``permutation(fold_in(key(seed), e))``, so resuming after
  epoch ``k`` (``start_epoch=k``) reproduces the uninterrupted run bit for bit.
- :func:`fit_seeds`: several seeds trained at once, ONE compiled program (``jax.vmap`` over the
  seeds of the same epoch and step as :func:`fit`); seed ``s`` trains as ``fit`` with seed ``s``.
- The loss and metrics of a task come from :mod:`jaxfund.tasks`; checkpoints of a state are
  written by :mod:`jaxfund.checkpoint`.

Data parallelism. Pass ``mesh=data_mesh()`` (a 1-D :class:`jax.sharding.Mesh` with axis
``"data"``): every batch is sharded over ``"data"`` (``NamedSharding(mesh, P("data"))``), the
params and optimizer state are replicated (``NamedSharding(mesh, P())``), and XLA inserts the
all-reduce of the gradients. The code is the same as on one device, and so is the result up to
the order of floating-point summation in the batch mean (partial sums per device, then an
all-reduce), i.e. within a few float32 ulps per step.

Multi-host. The same code runs on several hosts: call ``jax.distributed.initialize()`` first on
every process, build the global mesh with ``data_mesh()`` (it spans ``jax.devices()``, all
hosts' devices) and run the same program on every process. With :func:`make_train_step`, each
host feeds only its own slice of the global batch::

    sharding = NamedSharding(mesh, PartitionSpec("data"))
    batch = jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(sharding, a), local_batch)
    state, metrics = step(state, batch)

:func:`fit` keeps the (small) dataset replicated on every device, so every process passes the
same full ``train_data``; each device then gathers its own part of every batch. Write
checkpoints from one process (``jax.process_index() == 0``): params and optimizer state are
replicated, so every process holds the full state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxfund import _checks, tasks

__all__ = [
    "TrainState",
    "FitResult",
    "SeedsResult",
    "make_train_step",
    "make_eval_step",
    "data_mesh",
    "fit",
    "fit_seeds",
]

Batch = tuple[jax.Array, jax.Array]
ApplyFn = Callable[[Any, jax.Array], jax.Array]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@flax.struct.dataclass
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
    model_state: Any = flax.struct.field(default_factory=dict)

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation,
               model_state: Any = None) -> TrainState:
        """A state at step 0 with ``opt_state = tx.init(params)`` and ``model_state`` (default
        ``{}``)."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   model_state={} if model_state is None else model_state)


def _check_batch(batch: Any, mesh: Mesh | None) -> Batch:
    """Trace-time checks of a batch ``(x, y)``: a pair with a shared leading (example) axis."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be a pair (x, y), got {type(batch).__name__}")
    x, y = batch
    chex.assert_equal_shape_prefix((x, y), 1,
                                   custom_message="batch x and y need the same number of examples")
    if mesh is not None and x.shape[0] % mesh.shape["data"]:
        raise ValueError(
            f"the batch size {x.shape[0]} must be divisible by the {mesh.shape['data']} devices "
            f"of the mesh's 'data' axis"
        )
    return x, y


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def _make_step_body(apply_fn: ApplyFn, loss_fn: LossFn | None, tx: optax.GradientTransformation,
                    task: str, mesh: Mesh | None, skip_nonfinite: bool) -> Callable:
    """The un-jitted train step shared by :func:`make_train_step`, :func:`fit` and
    :func:`fit_seeds`."""
    loss_fn = tasks.loss(task) if loss_fn is None else loss_fn

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        x, y = _check_batch(batch, mesh)

        def objective(params):
            outputs = apply_fn(params, x)
            return loss_fn(outputs, y), outputs

        (loss, outputs), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(step=state.step + 1,
                                  params=optax.apply_updates(state.params, updates),
                                  opt_state=opt_state)
        metrics = {"loss": loss, **tasks.metrics(task, outputs, y)}
        if skip_nonfinite:
            finite = jnp.logical_and(jnp.isfinite(loss), _all_finite(grads))
            new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                     new_state, state)
            metrics["skipped"] = jnp.logical_not(finite).astype(jnp.int32)
        return new_state, metrics

    return train_step


def _make_eval_body(apply_fn: ApplyFn, loss_fn: LossFn | None, task: str,
                    mesh: Mesh | None) -> Callable:
    """The un-jitted evaluation shared by :func:`make_eval_step` and :func:`fit_seeds`."""
    loss_fn = tasks.loss(task) if loss_fn is None else loss_fn

    def eval_step(params: Any, batch: Batch) -> dict[str, jax.Array]:
        x, y = _check_batch(batch, mesh)
        outputs = apply_fn(params, x)
        return {"loss": loss_fn(outputs, y), **tasks.metrics(task, outputs, y)}

    return eval_step


def _make_epoch(step_body: Callable, num_batches: int, batch_size: int,
                sharded: NamedSharding | None = None) -> Callable:
    """``epoch(state, x, y, key, e)``: one ``lax.scan`` of ``step_body`` over the minibatches of
    ``permutation(fold_in(key, e), n)`` (the ragged last batch dropped)."""

    def epoch(state: TrainState, x: jax.Array, y: jax.Array, key: jax.Array, e: jax.Array):
        order = jax.random.permutation(jax.random.fold_in(key, e), x.shape[0])
        order = order[: num_batches * batch_size].reshape(num_batches, batch_size)

        def scan_step(state, indices):
            batch = (x[indices], y[indices])
            if sharded is not None:
                batch = jax.lax.with_sharding_constraint(batch, sharded)
            return step_body(state, batch)

        return jax.lax.scan(scan_step, state, order)

    return epoch


def _shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """(replicated, sharded over "data") for ``mesh``."""
    if "data" not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named 'data', got axes {mesh.axis_names}")
    return NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def make_train_step(apply_fn: ApplyFn, loss_fn: LossFn | None, tx: optax.GradientTransformation,
                    *, task: str = "multiclass", mesh: Mesh | None = None,
                    skip_nonfinite: bool = False, max_traces: int | None = None) -> Callable:
    """A jit-compiled train step ``step(state, batch) -> (state, metrics)``.

    One step: ``loss, grads = value_and_grad(loss_fn(apply_fn(params, x), y))``, then
    ``updates, opt_state = tx.update(grads, opt_state, params)`` and
    ``params = optax.apply_updates(params, updates)`` (torch: ``zero_grad(); loss.backward();
    optimizer.step()``). The batch shape is checked once, at trace time (chex).

    Args:
      apply_fn: ``apply_fn(params, x) -> outputs`` (logits or raw outputs).
      loss_fn: ``loss_fn(outputs, y) -> scalar``; ``None`` takes the task's loss,
        :func:`jaxfund.tasks.loss`.
      tx: an ``optax.GradientTransformation``, e.g. ``jaxfund.optimizers.adam(lr=1e-3)``.
      task: ``"multiclass"``, ``"binary"`` or ``"regression"`` (:data:`jaxfund.tasks.TASKS`);
        selects the metrics (:func:`jaxfund.tasks.metrics`) and the default loss.
      mesh: a mesh with a ``"data"`` axis (see :func:`data_mesh`) for data parallelism: the
        batch is sharded over ``"data"`` (its size must be divisible by the axis size), the
        state is replicated. ``None``: default device.
      skip_nonfinite: if True, an update whose loss or gradients contain NaN/inf is skipped
        (the state is returned unchanged, ``step`` included) and ``metrics["skipped"]`` is 1.
      max_traces: for tests: wrap the step in ``chex.assert_max_traces(n=max_traces)`` inside
        ``jax.jit`` (chex counts traces per call site; ``chex.clear_trace_counter()`` resets).

    Returns:
      ``step(state, batch)``: ``batch = (x, y)``; the state argument is donated (use the
      returned state). ``metrics`` has ``"loss"`` (the mean loss before the update),
      ``"accuracy"`` (classification) or ``"mse"`` (regression) and ``"skipped"`` (int32 0/1)
      with ``skip_nonfinite``.
    """
    body = _make_step_body(apply_fn, loss_fn, tx, task, mesh, skip_nonfinite)
    if max_traces is not None:
        body = chex.assert_max_traces(body, n=max_traces)
    if mesh is None:
        return jax.jit(body, donate_argnums=0)
    replicated, sharded = _shardings(mesh)
    jitted = jax.jit(body, in_shardings=(replicated, sharded),
                     out_shardings=(replicated, replicated), donate_argnums=0)

    def data_parallel_train_step(state: TrainState, batch: Batch):
        return jitted(jax.device_put(state, replicated), jax.device_put(tuple(batch), sharded))

    return data_parallel_train_step


def make_eval_step(apply_fn: ApplyFn, loss_fn: LossFn | None = None, *,
                   task: str = "multiclass", mesh: Mesh | None = None,
                   max_traces: int | None = None) -> Callable:
    """A jit-compiled evaluation ``eval_step(params, batch) -> metrics`` (no update).

    Args:
      apply_fn, loss_fn, task, mesh, max_traces: as in :func:`make_train_step`.

    Returns:
      ``eval_step(params, (x, y))`` with metrics ``{"loss", "accuracy"}`` for classification
      or ``{"loss", "mse"}`` for regression (``mse = mean((outputs[..., 0] - y)**2)``), as
      scalars over the whole batch.
    """
    eval_step = _make_eval_body(apply_fn, loss_fn, task, mesh)
    if max_traces is not None:
        eval_step = chex.assert_max_traces(eval_step, n=max_traces)
    if mesh is None:
        return jax.jit(eval_step)
    replicated, sharded = _shardings(mesh)
    jitted = jax.jit(eval_step, in_shardings=(replicated, sharded), out_shardings=replicated)

    def data_parallel_eval_step(params: Any, batch: Batch):
        return jitted(jax.device_put(params, replicated), jax.device_put(tuple(batch), sharded))

    return data_parallel_eval_step


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
    """

    state: TrainState
    history: list[dict]
    compile_seconds: float
    train_seconds: float
    steps: int


def _check_data(data: Any, name: str) -> tuple[np.ndarray | jax.Array, np.ndarray | jax.Array]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (x, y), got {type(data).__name__}")
    x, y = (_checks.as_array(a, f"{name}[{i}]") for i, a in enumerate(data))
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name} x and y need the same number of examples (leading axis), got "
                         f"shapes {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def _check_schedule(x: Any, epochs: int, batch_size: int, start_epoch: int = 0) -> int:
    """Checks the epoch and batch arguments of :func:`fit`/:func:`fit_seeds`; returns the
    number of minibatches per epoch."""
    _checks.check_int(epochs, "epochs", low=0)
    _checks.check_int(start_epoch, "start_epoch", low=0)
    _checks.check_int(batch_size, "batch_size", low=1)
    if start_epoch > epochs:
        raise ValueError(f"start_epoch={start_epoch} must be <= epochs={epochs}")
    if batch_size > x.shape[0]:
        raise ValueError(f"batch_size={batch_size} is larger than the {x.shape[0]} examples "
                         "of train_data")
    return x.shape[0] // batch_size


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


def fit(state: TrainState, train_data: tuple[Any, Any], *, apply_fn: ApplyFn,
        loss_fn: LossFn | None = None, tx: optax.GradientTransformation,
        task: str = "multiclass", epochs: int, batch_size: int, seed: int = 0,
        eval_data: tuple[Any, Any] | None = None, start_epoch: int = 0,
        mesh: Mesh | None = None, skip_nonfinite: bool = False,
        callback: Callable[[dict, TrainState], None] | None = None,
        eval_params: Callable[[TrainState], Any] | None = None,
        max_traces: int | None = None) -> FitResult:
    """Trains for epochs ``start_epoch + 1 .. epochs``, one compiled ``lax.scan`` per epoch.

    The data are put on the device(s) once. Epoch ``e`` visits the examples in the order
    ``jax.random.permutation(fold_in(key(seed), e), n)``, in ``n // batch_size`` minibatches
    (the ragged last batch is dropped, as torch ``DataLoader(drop_last=True)``); the whole
    epoch is a single ``lax.scan`` of the train step of :func:`make_train_step`, compiled once.
    Because the shuffle depends only on ``(seed, e)``, resuming from a checkpoint saved after
    epoch ``k`` with ``start_epoch=k`` gives exactly the parameters of the uninterrupted run.

    Args:
      state: the initial state; it is donated (use ``result.state``).
      train_data: ``(x, y)`` arrays with the examples on the leading axis.
      apply_fn, loss_fn, tx, task, mesh, skip_nonfinite, max_traces: as in
        :func:`make_train_step` (``max_traces`` guards the compiled epoch).
      epochs: the last epoch to run (1-based, >= ``start_epoch``).
      batch_size: examples per step (divisible by the mesh's ``"data"`` size with a mesh).
      seed: seed of the per-epoch shuffles.
      eval_data: optional ``(x, y)`` evaluated as one batch after every epoch (with a mesh,
        replicated on every device rather than sharded, so its size need not divide).
      start_epoch: number of epochs already done (resume).
      callback: ``callback(entry, state)`` after every epoch, e.g. for a progress bar or a
        checkpoint (:func:`jaxfund.checkpoint.save`). The state is donated to the next epoch:
        save or copy it inside the callback rather than keeping a reference.
      eval_params: the parameters to evaluate, as a function of the state; default
        ``state.params``. :func:`jaxfund.averaging.averaged_params` evaluates the SWA/EMA average.

    Returns:
      :class:`FitResult`. ``history`` has one entry per epoch: ``{"epoch", "train_loss",
      "train_accuracy" | "train_mse", "test_loss", "test_accuracy" | "test_mse" (with
      eval_data), "skipped", "seconds"}``; train metrics are means over the epoch's steps that
      were not skipped.
    """
    x, y = _check_data(train_data, "train_data")
    num_batches = _check_schedule(x, epochs, batch_size, start_epoch)
    _checks.check_int(seed, "seed", low=0)
    step_body = _make_step_body(apply_fn, loss_fn, tx, task, mesh, skip_nonfinite)
    replicated, sharded = _shardings(mesh) if mesh is not None else (None, None)
    epoch_fn = _make_epoch(step_body, num_batches, batch_size, sharded)

    def train_epoch(state: TrainState, x: jax.Array, y: jax.Array, epoch: jax.Array):
        return epoch_fn(state, x, y, jax.random.key(seed), epoch)

    if max_traces is not None:
        train_epoch = chex.assert_max_traces(train_epoch, n=max_traces)
    if mesh is None:
        run_epoch = jax.jit(train_epoch, donate_argnums=0)
        place = jax.device_put
    else:
        run_epoch = jax.jit(train_epoch, in_shardings=replicated, out_shardings=replicated,
                            donate_argnums=0)

        def place(tree):
            return jax.device_put(tree, replicated)

    state, x, y = place(state), place(x), place(y)
    evaluate = None
    if eval_data is not None:
        eval_batch = place(_check_data(eval_data, "eval_data"))
        evaluate = make_eval_step(apply_fn, loss_fn, task=task)

    history: list[dict] = []
    compile_seconds = train_seconds = 0.0
    if start_epoch < epochs:
        start = time.perf_counter()
        run_epoch.lower(state, x, y, jnp.asarray(start_epoch + 1, jnp.int32)).compile()
        compile_seconds = time.perf_counter() - start
    for epoch in range(start_epoch + 1, epochs + 1):
        start = time.perf_counter()
        state, metrics = run_epoch(state, x, y, jnp.asarray(epoch, jnp.int32))
        metrics = jax.device_get(metrics)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        test = None if evaluate is None else jax.device_get(
            evaluate(_params_to_evaluate(state, eval_params), eval_batch))
        entry = {**_history_entry(epoch, metrics, test), "seconds": seconds}
        history.append(entry)
        if callback is not None:
            callback(entry, state)
    return FitResult(state=state, history=history, compile_seconds=compile_seconds,
                     train_seconds=train_seconds, steps=num_batches * (epochs - start_epoch))


class SeedsResult(NamedTuple):
    """What :func:`fit_seeds` returns.

    Attributes:
      states: the final :class:`TrainState` of every seed, stacked on a leading seed axis
        (``jax.tree.map(lambda a: a[i], states)`` is seed ``seeds[i]``'s).
      histories: one history per seed, each one entry per epoch as :func:`fit`'s (without
        ``"seconds"``: the seeds run together).
      compile_seconds: time to trace and compile the one program.
      train_seconds: wall time of the run (every seed, every epoch, evaluations included).
    """

    states: TrainState
    histories: list[list[dict]]
    compile_seconds: float
    train_seconds: float


def fit_seeds(init_fn: Callable[[jax.Array], Any], train_data: tuple[Any, Any], *,
              seeds: Sequence[int], apply_fn: ApplyFn, loss_fn: LossFn | None = None,
              tx: optax.GradientTransformation, task: str = "multiclass", epochs: int,
              batch_size: int, eval_data: tuple[Any, Any] | None = None,
              skip_nonfinite: bool = False,
              eval_params: Callable[[TrainState], Any] | None = None) -> SeedsResult:
    """Trains one model per seed, every seed and every epoch in ONE compiled program.

    Seed ``s`` starts from ``init_fn(jax.random.key(s))`` and trains exactly as
    ``fit(TrainState.create(init_fn(key(s)), tx), train_data, seed=s, ...)``: the same train
    step, the same epoch (shuffle ``permutation(fold_in(key(s), e), n)``) and the same
    evaluation after every epoch. The seeds are batched with ``jax.vmap`` and the epochs run in
    a ``lax.scan``, so ``len(seeds)`` seeds cost one compilation and one dispatch. Batched
    matrix products may be summed in another order than single ones, so a seed's numbers can
    differ from ``fit``'s in the last float32 bits (see the README).

    Args:
      init_fn: ``init_fn(key) -> params``, e.g. ``MLP(...).init``.
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
    x, y = _check_data(train_data, "train_data")
    num_batches = _check_schedule(x, epochs, batch_size)
    seeds = [_checks.check_int(s, f"seeds[{i}]", low=0) for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must not be empty")
    epoch_fn = _make_epoch(_make_step_body(apply_fn, loss_fn, tx, task, None, skip_nonfinite),
                           num_batches, batch_size)
    evaluate = None if eval_data is None else _make_eval_body(apply_fn, loss_fn, task, None)
    eval_batch = None if eval_data is None else _check_data(eval_data, "eval_data")

    def one_seed(seed: jax.Array, x: jax.Array, y: jax.Array, eval_batch: Any):
        key = jax.random.key(seed)

        def epoch(state, e):
            state, train = epoch_fn(state, x, y, key, e)
            test = None if evaluate is None else evaluate(
                _params_to_evaluate(state, eval_params), eval_batch)
            return state, (train, test)

        return jax.lax.scan(epoch, TrainState.create(init_fn(key), tx),
                            jnp.arange(1, epochs + 1, dtype=jnp.int32))

    program = jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None)))
    args = (jnp.asarray(seeds, jnp.uint32), jnp.asarray(x), jnp.asarray(y),
            None if eval_batch is None else tuple(jnp.asarray(a) for a in eval_batch))
    start = time.perf_counter()
    compiled = program.lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    states, (train, test) = jax.block_until_ready(compiled(*args))
    train, test = jax.device_get((train, test))
    train_seconds = time.perf_counter() - start
    histories = [
        [_history_entry(e + 1, {k: v[i, e] for k, v in train.items()},
                        None if test is None else {k: v[i, e] for k, v in test.items()})
         for e in range(epochs)]
        for i in range(len(seeds))]
    return SeedsResult(states=states, histories=histories, compile_seconds=compile_seconds,
                       train_seconds=train_seconds)
