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
- :func:`save` / :func:`restore`: the full training state plus JSON ``extra`` (epoch, seed,
  config) in one file written atomically (temporary file + ``os.replace``).

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

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxfund import _checks

__all__ = [
    "TrainState",
    "FitResult",
    "loss_for_task",
    "make_train_step",
    "make_eval_step",
    "data_mesh",
    "fit",
    "save",
    "restore",
]

TASKS = ("multiclass", "binary", "regression")
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
    """

    step: jax.Array
    params: Any
    opt_state: Any

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation) -> TrainState:
        """A state at step 0 with ``opt_state = tx.init(params)``."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def _multiclass_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    from jaxfund import losses

    return losses.cross_entropy(outputs, targets)


def _binary_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    from jaxfund import losses

    return losses.binary_cross_entropy_with_logits(outputs[..., 0], targets.astype(outputs.dtype))


def _regression_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    from jaxfund import losses

    return losses.mse_loss(outputs[..., 0], targets.astype(outputs.dtype))


_TASK_LOSSES = {
    "multiclass": _multiclass_loss,
    "binary": _binary_loss,
    "regression": _regression_loss,
}


def loss_for_task(task: str) -> LossFn:
    """The mean loss ``loss_fn(outputs, targets) -> scalar`` for a task's head.

    - ``"multiclass"``: ``cross_entropy(outputs, targets)`` with logits ``(B, C)`` and int
      labels ``(B,)`` (torch ``nn.CrossEntropyLoss``).
    - ``"binary"``: ``binary_cross_entropy_with_logits(outputs[..., 0], targets)`` with one
      logit per sample and 0/1 labels (torch ``nn.BCEWithLogitsLoss``).
    - ``"regression"``: ``mse_loss(outputs[..., 0], targets)`` (torch ``nn.MSELoss``).

    Raises:
      ValueError: unknown ``task``.
    """
    _checks.check_choice(task, "task", TASKS)
    return _TASK_LOSSES[task]


def _task_metrics(task: str, outputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """Accuracy for classification (argmax of the logits, or logit > 0 for binary)."""
    if task == "multiclass":
        predicted = jnp.argmax(outputs, axis=-1)
    elif task == "binary":
        predicted = (outputs[..., 0] > 0).astype(jnp.int32)
    else:
        return {}
    return {"accuracy": jnp.mean((predicted == targets).astype(jnp.float32))}


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


def _make_step_body(apply_fn: ApplyFn, loss_fn: LossFn, tx: optax.GradientTransformation,
                    task: str, mesh: Mesh | None, skip_nonfinite: bool) -> Callable:
    _checks.check_choice(task, "task", TASKS)

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
        metrics = {"loss": loss, **_task_metrics(task, outputs, y)}
        if skip_nonfinite:
            finite = jnp.logical_and(jnp.isfinite(loss), _all_finite(grads))
            new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                     new_state, state)
            metrics["skipped"] = jnp.logical_not(finite).astype(jnp.int32)
        return new_state, metrics

    return train_step


def _shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """(replicated, sharded over "data") for ``mesh``."""
    if "data" not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named 'data', got axes {mesh.axis_names}")
    return NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def make_train_step(apply_fn: ApplyFn, loss_fn: LossFn, tx: optax.GradientTransformation, *,
                    task: str = "multiclass", mesh: Mesh | None = None,
                    skip_nonfinite: bool = False, max_traces: int | None = None) -> Callable:
    """A jit-compiled train step ``step(state, batch) -> (state, metrics)``.

    One step: ``loss, grads = value_and_grad(loss_fn(apply_fn(params, x), y))``, then
    ``updates, opt_state = tx.update(grads, opt_state, params)`` and
    ``params = optax.apply_updates(params, updates)`` (torch: ``zero_grad(); loss.backward();
    optimizer.step()``). The batch shape is checked once, at trace time (chex).

    Args:
      apply_fn: ``apply_fn(params, x) -> outputs`` (logits or raw outputs).
      loss_fn: ``loss_fn(outputs, y) -> scalar``, e.g. :func:`loss_for_task`.
      tx: an ``optax.GradientTransformation``, e.g. ``jaxfund.optimizers.adam(lr=1e-3)``.
      task: ``"multiclass"``, ``"binary"`` or ``"regression"``; selects the metrics.
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
      ``"accuracy"`` for classification and ``"skipped"`` (int32 0/1) with ``skip_nonfinite``.
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


def make_eval_step(apply_fn: ApplyFn, loss_fn: LossFn, *, task: str = "multiclass",
                   mesh: Mesh | None = None, max_traces: int | None = None) -> Callable:
    """A jit-compiled evaluation ``eval_step(params, batch) -> metrics`` (no update).

    Args:
      apply_fn, loss_fn, task, mesh, max_traces: as in :func:`make_train_step`.

    Returns:
      ``eval_step(params, (x, y))`` with metrics ``{"loss", "accuracy"}`` for classification
      or ``{"loss", "mse"}`` for regression (``mse = mean((outputs[..., 0] - y)**2)``), as
      scalars over the whole batch.
    """
    _checks.check_choice(task, "task", TASKS)

    def eval_step(params: Any, batch: Batch) -> dict[str, jax.Array]:
        x, y = _check_batch(batch, mesh)
        outputs = apply_fn(params, x)
        metrics = {"loss": loss_fn(outputs, y), **_task_metrics(task, outputs, y)}
        if task == "regression":
            metrics["mse"] = jnp.mean((outputs[..., 0] - y.astype(outputs.dtype)) ** 2)
        return metrics

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


def _summary(metrics: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    """Mean of per-step metrics over the steps that were not skipped."""
    kept = metrics.get("skipped", np.zeros_like(metrics["loss"], dtype=np.int32)) == 0
    out = {}
    for name, values in metrics.items():
        if name == "skipped":
            continue
        out[f"{prefix}{name}"] = float(np.mean(values[kept])) if kept.any() else math.nan
    return out


def fit(state: TrainState, train_data: tuple[Any, Any], *, apply_fn: ApplyFn, loss_fn: LossFn,
        tx: optax.GradientTransformation, task: str = "multiclass", epochs: int,
        batch_size: int, seed: int = 0, eval_data: tuple[Any, Any] | None = None,
        start_epoch: int = 0, mesh: Mesh | None = None, skip_nonfinite: bool = False,
        callback: Callable[[dict, TrainState], None] | None = None,
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
        checkpoint. The state is donated to the next epoch: save or copy it inside the
        callback rather than keeping a reference.

    Returns:
      :class:`FitResult`. ``history`` has one entry per epoch: ``{"epoch", "train_loss",
      "train_accuracy" (classification), "test_loss", "test_accuracy" | "test_mse" (with
      eval_data), "seconds", "skipped"}``; train metrics are means over the epoch's steps
      that were not skipped.
    """
    x, y = _check_data(train_data, "train_data")
    for value, name in ((epochs, "epochs"), (start_epoch, "start_epoch"), (seed, "seed")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if start_epoch > epochs:
        raise ValueError(f"start_epoch={start_epoch} must be <= epochs={epochs}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    num_examples = x.shape[0]
    if batch_size > num_examples:
        raise ValueError(f"batch_size={batch_size} is larger than the {num_examples} examples "
                         f"of train_data")
    num_batches = num_examples // batch_size
    step_body = _make_step_body(apply_fn, loss_fn, tx, task, mesh, skip_nonfinite)
    replicated, sharded = _shardings(mesh) if mesh is not None else (None, None)

    def train_epoch(state: TrainState, x: jax.Array, y: jax.Array, epoch: jax.Array):
        key = jax.random.fold_in(jax.random.key(seed), epoch)
        order = jax.random.permutation(key, num_examples)[: num_batches * batch_size]

        def scan_step(state, indices):
            batch = (x[indices], y[indices])
            if mesh is not None:
                batch = jax.lax.with_sharding_constraint(batch, sharded)
            return step_body(state, batch)

        return jax.lax.scan(scan_step, state, order.reshape(num_batches, batch_size))

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
        entry = {"epoch": epoch, **_summary(metrics, "train_")}
        if evaluate is not None:
            test = jax.device_get(evaluate(state.params, eval_batch))
            entry.update({f"test_{name}": float(value) for name, value in test.items()})
        entry["seconds"] = seconds
        entry["skipped"] = int(np.sum(metrics.get("skipped", 0)))
        history.append(entry)
        if callback is not None:
            callback(entry, state)
    return FitResult(state=state, history=history, compile_seconds=compile_seconds,
                     train_seconds=train_seconds, steps=num_batches * (epochs - start_epoch))


_MAGIC = b"JAXFUND-CHECKPOINT\n"
_FORMAT_VERSION = 1
_DIGEST_BYTES = hashlib.sha256().digest_size


def _leaf_to_numpy(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if not leaf.is_fully_replicated:
            raise ValueError("save needs replicated (or single-process) arrays; got a leaf "
                             f"sharded across processes with sharding {leaf.sharding}")
        leaf = leaf.addressable_data(0)
    return np.asarray(jax.device_get(leaf))


def _flatten(tree: Any) -> tuple[list[str], list[Any]]:
    with_paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(path) for path, _ in with_paths], [leaf for _, leaf in with_paths]


def save(path: str | os.PathLike, state: TrainState, extra: dict | None = None) -> None:
    """Writes the full training state (params, optimizer state, step) and ``extra`` to ``path``.

    The file is ``magic | sha256(payload) | payload`` with a msgpack payload (flax
    serialization) holding a JSON header (format version, the key path, shape and dtype of
    every leaf, ``extra``) and the leaves as arrays. It is written to a temporary file in the
    same directory, flushed to disk and renamed over ``path`` with ``os.replace`` (atomic), so a
    crash mid-write leaves either the old checkpoint or the new one, never a broken file.

    Args:
      path: the file to write; its directory must exist.
      state: a :class:`TrainState` (or any pytree of arrays).
      extra: JSON-serialisable metadata, e.g. ``{"epoch": 5, "seed": 0, "config": {...}}``.
    """
    path = os.fspath(path)
    names, leaves = _flatten(state)
    arrays = [_leaf_to_numpy(leaf) for leaf in leaves]
    try:
        extra_json = json.dumps({} if extra is None else extra)
    except TypeError as err:
        raise TypeError(f"extra must be JSON-serialisable: {err}") from None
    header = {
        "format": "jaxfund-checkpoint",
        "format_version": _FORMAT_VERSION,
        "paths": names,
        "shapes": [list(a.shape) for a in arrays],
        "dtypes": [str(a.dtype) for a in arrays],
    }
    payload = flax.serialization.msgpack_serialize({
        "header": json.dumps(header),
        "extra": extra_json,
        "leaves": {str(i): a for i, a in enumerate(arrays)},
    })
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> tuple[dict, dict, dict]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file not found: {path}") from None
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path} is not a jaxfund checkpoint (bad magic bytes)")
    digest = data[len(_MAGIC): len(_MAGIC) + _DIGEST_BYTES]
    payload = data[len(_MAGIC) + _DIGEST_BYTES:]
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"checkpoint {path} is corrupt or truncated (checksum mismatch, "
                         f"{len(data)} bytes)")
    try:
        content = flax.serialization.msgpack_restore(payload)
        header = json.loads(content["header"])
        extra = json.loads(content["extra"])
        leaves = content["leaves"]
    except Exception as err:  # any decoding failure means an unreadable file
        raise ValueError(f"checkpoint {path} cannot be decoded: {err}") from None
    if header.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format version {header.get('format_version')}, "
                         f"this jaxfund reads version {_FORMAT_VERSION}")
    return header, extra, leaves


def restore(path: str | os.PathLike, like: TrainState) -> tuple[TrainState, dict]:
    """Reads a checkpoint written by :func:`save` into the structure of ``like``.

    Args:
      path: the checkpoint file.
      like: a state of the expected structure, shapes and dtypes (e.g. a freshly created
        :class:`TrainState`); its values are not used. Each restored leaf is placed with the
        sharding of the corresponding leaf of ``like``.

    Returns:
      ``(state, extra)``.

    Raises:
      FileNotFoundError: ``path`` does not exist (the message names it).
      ValueError: the file is corrupt, truncated or not a checkpoint, or its structure, shapes
        or dtypes differ from ``like``'s (the message names the path and the first difference).
    """
    path = os.fspath(path)
    header, extra, stored = _read(path)
    names, like_leaves = _flatten(like)
    treedef = jax.tree_util.tree_structure(like)
    if header["paths"] != names:
        missing = sorted(set(header["paths"]) ^ set(names))
        raise ValueError(
            f"checkpoint {path} does not match the structure of `like`: it has "
            f"{len(header['paths'])} leaves, `like` has {len(names)}; differing leaves: "
            f"{', '.join(missing[:5]) or 'same names in a different order'}"
        )
    leaves = []
    for i, (name, like_leaf) in enumerate(zip(names, like_leaves)):
        value = stored[str(i)]
        expected = (tuple(np.shape(like_leaf)), str(np.dtype(like_leaf.dtype)))
        if (tuple(value.shape), str(value.dtype)) != expected:
            raise ValueError(
                f"checkpoint {path}: leaf {name} has shape {tuple(value.shape)} and dtype "
                f"{value.dtype}, but `like` expects shape {expected[0]} and dtype {expected[1]}"
            )
        sharding = getattr(like_leaf, "sharding", None)
        leaves.append(jax.device_put(value, sharding) if sharding is not None else
                      jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, leaves), extra
