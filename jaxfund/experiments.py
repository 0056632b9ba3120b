"""The course's experiments as Python functions: what ``jaxfund compare``, ``jaxfund plot`` and
``jaxfund gradients`` compute, returned as numbers (the command only adds tables and figures).

- :func:`compare`: the same MLP trained with each activation (and optimizer) on each dataset,
  several seeds at once (:func:`jaxfund.train.fit_seeds_each`), summarised as the command's table.
- :func:`activation_curves`: every element-wise activation and its derivative on a grid.
- :func:`gradient_flow`: per-layer gradient norms of a deep MLP at torch's initialisation
  (vanishing gradients), and the course's repeated multiplication.

In a notebook::

    from jaxfund import experiments
    rows = experiments.compare(datasets=("digits",), seeds=3)["digits"]
    [(r.activation, r.test_metric_mean) for r in rows]

``jaxfund.data`` loads the datasets, so these functions need scikit-learn (the ``cli`` extra).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxfund import _checks, data, models, tasks, train
from jaxfund import optimizers as optim
from jaxfund import activations as activation_fns
from jaxfund._names import COMPARE_ACTIVATIONS

__all__ = [
    "COMPARE_ACTIVATIONS",
    "CompareRow",
    "compare",
    "FAMILIES",
    "FAMILY_KWARGS",
    "activation_curves",
    "GradientFlow",
    "gradient_flow",
]


@dataclasses.dataclass(frozen=True)
class CompareRow:
    """One (dataset, activation, optimizer) of :func:`compare`, over its seeds.

    Attributes:
      dataset, task, activation, optimizer: what was trained (``task`` from
        :func:`jaxfund.tasks.infer`).
      lr: the optimizer's learning rate (``lrs[optimizer]``, else ``lr``).
      metric: ``"accuracy"`` or ``"mse"`` (:func:`jaxfund.tasks.metric`).
      seeds: the seeds, one model each.
      test_metric: the test metric after the last epoch, one per seed.
      final_train_loss: the last epoch's mean train loss, one per seed.
      train_loss_curves, test_loss_curves, test_metric_curves: ``(seeds, epochs)`` arrays.
      epochs_to_target: the first epoch (1-based) whose seed-mean train loss is
        ``<= target_loss``, or None.
      compile_seconds: to compile the one program that trains every activation of this
        dataset and optimizer (:func:`jaxfund.train.fit_seeds_each`), while the previous
        program trains: on the first of these rows, 0 on the others.
      train_seconds: of this row's run of that program (every seed).
    """

    dataset: str
    task: str
    activation: str
    optimizer: str
    lr: float
    metric: str
    seeds: tuple[int, ...]
    test_metric: np.ndarray
    final_train_loss: np.ndarray
    train_loss_curves: np.ndarray
    test_loss_curves: np.ndarray
    test_metric_curves: np.ndarray
    epochs_to_target: int | None
    compile_seconds: float
    train_seconds: float

    @property
    def test_metric_mean(self) -> float:
        """Mean over the seeds of the final test metric."""
        return float(np.mean(self.test_metric))

    @property
    def test_metric_std(self) -> float:
        """Population standard deviation over the seeds of the final test metric."""
        return float(np.std(self.test_metric))


def compare(datasets: Sequence[str | data.Dataset] = ("classification", "digits"),
            activations: Sequence[str] = COMPARE_ACTIVATIONS,
            optimizers: Sequence[str] = ("adam",), *, lr: float = 1e-3, epochs: int = 30,
            batch_size: int = 64, hidden: Sequence[int] = (64, 64), seeds: int = 3,
            seed: int = 0, target_loss: float = 0.2,
            on_run: Callable[[str, str, str], None] | None = None,
            lrs: Mapping[str, float] | None = None) -> dict[str, list[CompareRow]]:
    """The course's exercise: the same MLP trained with each activation, on each dataset.

    For every (dataset, optimizer, activation) an ``MLP(features, hidden, out, activation)``
    (:mod:`jaxfund.models`) is trained for ``epochs`` epochs with minibatches of ``batch_size``
    and the task's loss, from ``seeds`` seeds ``seed, seed + 1, ...`` at once
    (:func:`jaxfund.train.fit_seeds_each`: one compiled program per dataset and optimizer,
    run once per activation). Seed ``s`` trains as ``jaxfund train --seed s`` does.

    Args:
      datasets: names of :data:`jaxfund.data.NAMES` (each loaded with
        :func:`jaxfund.data.load`), or datasets already loaded.
      activations: names of :data:`jaxfund.activations.ELEMENTWISE`.
      optimizers: names for :func:`jaxfund.optimizers.first_order`, each with its learning
        rate (``lrs[name]``, else ``lr``) and torch's other defaults.
      lr, epochs, batch_size, hidden, seeds, seed: the training set-up; ``lr`` is the learning
        rate of every optimizer that ``lrs`` does not name.
      target_loss: :attr:`CompareRow.epochs_to_target` reports when the mean train loss
        reaches it (a finite number ``>= 0``).
      on_run: called as ``on_run(dataset, activation, optimizer)`` before each row trains
        (a progress bar).
      lrs: a learning rate per optimizer, ``{name: lr}`` (e.g. ``{"sgd": 0.1}``: SGD needs a
        larger step than Adam); every key must be one of ``optimizers``.

    Returns:
      ``{dataset name: [CompareRow, ...]}``, rows ordered by optimizer, then activation.

    Raises:
      ValueError: an unknown dataset, activation or optimizer name (listing the valid ones),
        an ``lrs`` key that is not in ``optimizers``, a ``batch_size`` above a dataset's
        training examples, or bad numbers.
    """
    for name in datasets:
        if not isinstance(name, data.Dataset):
            _checks.check_choice(name, "datasets", data.NAMES)
    for name in activations:
        models.hidden_activation(name)
    lrs = dict(lrs or {})
    extra = [name for name in lrs if name not in optimizers]
    if extra:
        raise ValueError(f"lrs: {', '.join(map(repr, extra))} not in optimizers "
                         f"{tuple(optimizers)}")
    opt_lrs = {name: lrs.get(name, lr) for name in optimizers}
    txs = {name: _optimizer(name, opt_lr) for name, opt_lr in opt_lrs.items()}
    _checks.check_int(seeds, "seeds", low=1)
    _checks.check_int(seed, "seed", low=0)
    _checks.check_real(target_loss, "target_loss", low=0.0, high=math.inf, high_open=True)
    seed_list = tuple(range(seed, seed + seeds))
    loaded = [ds if isinstance(ds, data.Dataset) else data.load(ds) for ds in datasets]
    # Largest training set first: only the last program's training has no compilation to
    # overlap (below), so the shortest goes last. The results keep the order of the arguments.
    plan = sorted(((ds, opt_name) for ds in loaded for opt_name in txs),
                  key=lambda job: -job[0].x_train.size)

    def program(ds: data.Dataset, opt_name: str):
        mlps = [models.MLP(ds.num_features, tuple(hidden),
                           tasks.output_features(ds.task, ds.num_classes), act)
                for act in activations]
        return train.fit_seeds_each(
            mlps[0].init, (ds.x_train, ds.y_train), seeds=seed_list,
            apply_fns=[mlp.apply for mlp in mlps], tx=txs[opt_name], task=ds.task,
            epochs=epochs, batch_size=batch_size, eval_data=(ds.x_test, ds.y_test))

    results: dict[str, list[CompareRow]] = {ds.name: [] for ds in loaded}
    # A worker thread traces and compiles the next program while this one trains (XLA runs
    # without holding Python's lock), so each waits for the one before only.
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        pending = worker.submit(program, *plan[0])
        for i, (ds, opt_name) in enumerate(plan):
            runs = pending.result()
            if i + 1 < len(plan):
                pending = worker.submit(program, *plan[i + 1])
            metric = tasks.metric(ds.task)
            for act in activations:
                if on_run is not None:
                    on_run(ds.name, act, opt_name)
                result = next(runs)
                curves = {key: np.array([[e[key] for e in h] for h in result.histories])
                          for key in ("train_loss", "test_loss", f"test_{metric}")}
                mean_loss = curves["train_loss"].mean(axis=0)
                reached = np.flatnonzero(mean_loss <= target_loss)
                results[ds.name].append(CompareRow(
                    dataset=ds.name, task=ds.task, activation=act, optimizer=opt_name,
                    lr=opt_lrs[opt_name], metric=metric, seeds=seed_list,
                    test_metric=curves[f"test_{metric}"][:, -1],
                    final_train_loss=curves["train_loss"][:, -1],
                    train_loss_curves=curves["train_loss"],
                    test_loss_curves=curves["test_loss"],
                    test_metric_curves=curves[f"test_{metric}"],
                    epochs_to_target=int(reached[0]) + 1 if reached.size else None,
                    compile_seconds=result.compile_seconds,
                    train_seconds=result.train_seconds))
    return results


def _optimizer(name: str, lr: float):
    """``optimizers.first_order(name)(lr=lr)``; a bad name or lr raises naming the optimizer."""
    factory = optim.first_order(name)
    try:
        return factory(lr=lr)
    except (TypeError, ValueError) as err:
        raise type(err)(f"optimizer {name}: {err}") from None


# Families of the activation figure: the element-wise activations (rrelu in its evaluation mode)
# plus threshold with FAMILY_KWARGS.
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sigmoid_like", ("sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign")),
    ("relu_like", ("identity", "relu", "relu6", "leaky_relu", "rrelu")),
    ("smooth_relu_like", ("elu", "selu", "celu", "gelu", "silu", "mish", "softplus",
                          "hardswish", "logsigmoid")),
    ("shrink_threshold", ("hardshrink", "softshrink", "tanhshrink", "threshold")),
)
FAMILY_KWARGS: dict[str, dict[str, float]] = {"threshold": {"threshold": 1.0, "value": 0.0}}


def activation_curves(points: int = 1001, lo: float = -5.0, hi: float = 5.0,
                      ) -> tuple[np.ndarray, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """Every activation of :data:`FAMILIES` and its derivative (``jax.vmap(jax.grad(f))``).

    Returns:
      ``(x, {family: {name: (f(x), f'(x))}})`` on ``points`` float32 points of ``[lo, hi]``;
      derivatives at kinks are torch's (e.g. ``relu'(0) = 0``).
    """
    _checks.check_int(points, "points", low=2)
    x = jnp.linspace(lo, hi, points, dtype=jnp.float32)

    def value_and_slope(name: str, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        fn, kwargs = activation_fns.get(name), FAMILY_KWARGS.get(name, {})
        return jax.vmap(jax.value_and_grad(lambda t: fn(t, **kwargs)))(x)

    # One program for every activation, not one each (each lowered and read from the
    # compilation cache: ~2x the time). A list: a dict would come back in sorted key order.
    names = [name for _, family in FAMILIES for name in family]
    curves = jax.jit(lambda x: [value_and_slope(name, x) for name in names])(x)
    curves = dict(zip(names, jax.tree.map(np.asarray, curves)))
    return np.asarray(x), {family: {name: curves[name] for name in family_names}
                           for family, family_names in FAMILIES}


@dataclasses.dataclass(frozen=True)
class GradientFlow:
    """What :func:`gradient_flow` measures.

    Attributes:
      norms: ``{activation: (depth,) array}``, ``‖∂loss/∂W_l‖`` per Linear layer (1 is the
        input side).
      x0: the start of the repeated multiplication, ``randn(5)``.
      iterations: ``{"x*x": (20, 5), "x*tanh(x)": (20, 5)}``, ``x_0 .. x_19`` in float32.
      batch: number of examples in the loss.
    """

    norms: dict[str, np.ndarray]
    x0: np.ndarray
    iterations: dict[str, np.ndarray]
    batch: int


def gradient_flow(activations: Sequence[str] = ("sigmoid", "tanh", "relu", "gelu", "identity"),
                  *, depth: int = 20, width: int = 64, seed: int = 0,
                  iterations: int = 19, dataset: data.Dataset | None = None) -> GradientFlow:
    """Vanishing and exploding gradients, as the course shows them.

    For each activation, the same deep MLP (``depth`` Linear layers of ``width``, one shared
    torch-default initialisation from ``seed``) on the course's classification train split:
    the Frobenius norm of the gradient of the binary cross-entropy (with logits) with respect
    to each layer's weight. And the repeated multiplication ``x <- x * x`` versus
    ``x <- x * tanh(x)`` from ``randn(5)``, ``iterations`` times, in float32.

    ``dataset``: the data whose train split is used, already loaded (with its task's loss);
    ``None`` loads ``data.load("classification")`` (the command passes its prepared copy).
    """
    _checks.check_int(depth, "depth", low=1)
    _checks.check_int(width, "width", low=1)
    for name in activations:
        models.hidden_activation(name)
    if dataset is not None and not isinstance(dataset, data.Dataset):
        raise TypeError(f"dataset: expected a jaxfund.data.Dataset or None, got "
                        f"{type(dataset).__name__}")
    ds = data.load("classification") if dataset is None else dataset
    loss_fn = tasks.loss(ds.task)
    hidden = (width,) * (depth - 1)
    out = tasks.output_features(ds.task, ds.num_classes)
    params = models.MLP(ds.num_features, hidden, out).init(jax.random.key(seed))
    norms = {}
    for name in activations:
        model = models.MLP(ds.num_features, hidden, out, name)

        @jax.jit
        def layer_norms(params, x, y, model=model):
            grads = jax.grad(lambda p: loss_fn(model.apply(p, x), y))(params)
            return jnp.stack([jnp.linalg.norm(layer["w"]) for layer in grads])

        norms[name] = np.asarray(layer_norms(params, ds.x_train, ds.y_train))
    tanh = activation_fns.tanh
    x0 = jax.random.normal(jax.random.key(seed), (5,), dtype=jnp.float32)
    rules = {"x*x": lambda v: v * v, "x*tanh(x)": lambda v: v * tanh(v)}
    runs = {}
    for rule_name, rule in rules.items():
        rows = [x0]
        for _ in range(iterations):
            rows.append(rule(rows[-1]))
        runs[rule_name] = np.asarray(jnp.stack(rows))
    return GradientFlow(norms=norms, x0=np.asarray(x0), iterations=runs, batch=len(ds.x_train))
