"""The supervised tasks jaxfund trains: one home for everything that depends on the task.

- ``"regression"``: 1 output; loss ``mse_loss(out[..., 0], y)`` (torch ``MSELoss``);
  prediction ``out[..., 0]``.
- ``"binary"``: 1 output, a logit; loss ``binary_cross_entropy_with_logits(out[..., 0], y)``
  (``BCEWithLogitsLoss``); prediction ``out[..., 0] > 0``.
- ``"multiclass"``: C outputs, logits; loss ``cross_entropy(out, y)`` (``CrossEntropyLoss``);
  prediction ``argmax(out, -1)``.

The evaluation metric (:func:`metric`) is the MSE for regression and the accuracy otherwise.

Models return raw outputs (logits): the course applies sigmoid/softmax in the model and then a
loss; the losses here take logits (they contain the log-sigmoid/log-softmax, stably).

:func:`infer` tells the task from the targets, as :mod:`jaxfund.data` does for every dataset.

Example::

    >>> import jax.numpy as jnp
    >>> from jaxfund import tasks
    >>> tasks.infer(jnp.array([0, 2, 1, 2]))
    ('multiclass', 3)
    >>> tasks.output_features("multiclass", 3), tasks.metric("regression")
    (3, 'mse')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfund import _checks, losses
from jaxfund._names import TASKS

__all__ = ["TASKS", "output_features", "loss", "predict", "metrics", "metric", "infer"]

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def _check(task: Any) -> str:
    return _checks.check_choice(task, "task", TASKS)


def output_features(task: str, num_classes: int = 0) -> int:
    """Number of output units of the head for ``task``.

    Args:
      task: ``"regression"`` (one linear output), ``"binary"`` (one logit) or ``"multiclass"``
        (``num_classes`` logits).
      num_classes: number of classes, >= 2 for ``"multiclass"``; ignored otherwise.

    Returns:
      1, 1 or ``num_classes``.

    >>> output_features("binary"), output_features("multiclass", 10)
    (1, 10)
    """
    if _check(task) != "multiclass":
        return 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for task='multiclass', got {num_classes}")
    return int(num_classes)


def _multiclass_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    return losses.cross_entropy(outputs, targets)


def _binary_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    return losses.binary_cross_entropy_with_logits(outputs[..., 0], targets.astype(outputs.dtype))


def _regression_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    return losses.mse_loss(outputs[..., 0], targets.astype(outputs.dtype))


_LOSSES: dict[str, LossFn] = {
    "regression": _regression_loss,
    "binary": _binary_loss,
    "multiclass": _multiclass_loss,
}


def loss(task: str) -> LossFn:
    """The mean loss ``loss_fn(outputs, targets) -> scalar`` of a task's head.

    - ``"multiclass"``: ``cross_entropy(outputs, targets)``, logits ``(B, C)``, int labels ``(B,)``.
    - ``"binary"``: ``binary_cross_entropy_with_logits(outputs[..., 0], targets)``, one logit per
      sample and 0/1 labels.
    - ``"regression"``: ``mse_loss(outputs[..., 0], targets)``.

    >>> float(loss("binary")(jnp.zeros((2, 1)), jnp.array([0, 1])))  # log 2
    0.6931471824645996
    """
    return _LOSSES[_check(task)]


def predict(task: str, outputs: jax.Array) -> jax.Array:
    """The prediction from a head's outputs: the class (int32) or the regression value.

    >>> predict("binary", jnp.array([[-1.0], [2.0]]))
    Array([0, 1], dtype=int32)
    """
    task = _check(task)
    if task == "multiclass":
        return jnp.argmax(outputs, axis=-1).astype(jnp.int32)
    if task == "binary":
        return (outputs[..., 0] > 0).astype(jnp.int32)
    return outputs[..., 0]


def metric(task: str) -> str:
    """The name of the task's evaluation metric: ``"accuracy"`` or ``"mse"`` (lower is better).

    >>> metric("multiclass")
    'accuracy'
    """
    return "mse" if _check(task) == "regression" else "accuracy"


def metrics(task: str, outputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """``{metric(task): value}`` of a batch: the accuracy of :func:`predict`, or the MSE.

    >>> metrics("multiclass", jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.array([0, 0]))
    {'accuracy': Array(0.5, dtype=float32)}
    """
    predicted = predict(task, outputs)
    if task == "regression":
        return {"mse": jnp.mean((predicted - targets.astype(predicted.dtype)) ** 2)}
    return {"accuracy": jnp.mean((predicted == targets).astype(jnp.float32))}


def infer(targets: Any) -> tuple[str, int]:
    """The task of concrete targets, and the number of classes (0 for regression).

    Integer targets with values ``0 .. K-1`` are classification: binary for ``K = 2``,
    multiclass for ``K > 2``. Floating targets are regression (even whole-numbered ones, such
    as diabetes' disease progression).

    Raises:
      ValueError: not a non-empty 1-D array, a negative label, or fewer than two classes.

    >>> infer(np.array([0, 1, 1])), infer(np.array([0.5, 1.5]))
    (('binary', 2), ('regression', 0))
    """
    y = np.asarray(targets)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"targets must be a non-empty 1-D array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        return "regression", 0
    if y.min() < 0:
        raise ValueError(f"class labels must be 0 .. K-1, got the label {int(y.min())}")
    num_classes = int(y.max()) + 1
    if num_classes < 2:
        raise ValueError(f"classification targets need at least 2 classes, got {num_classes}")
    return ("binary" if num_classes == 2 else "multiclass"), num_classes
