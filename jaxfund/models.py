"""A multilayer perceptron as a pure ``init``/``apply`` pair, initialised like ``torch.nn.Linear``.

The network of the course: an input layer of ``in_features``, hidden layers with an activation,
and an output layer without one. The output layer returns raw outputs (logits); the head depends
on the task (see :func:`output_features` and :func:`jaxfund.train.loss_for_task`):

============== ================ ====================================== =========================
task           output features  loss on the outputs                    prediction
============== ================ ====================================== =========================
regression     1                ``mse_loss(out[..., 0], y)``           ``out[..., 0]``
binary         1 (a logit)      ``binary_cross_entropy_with_logits``   ``out[..., 0] > 0``
multiclass     C (logits)       ``cross_entropy(out, y)``              ``argmax(out, -1)``
============== ================ ====================================== =========================

The course applies sigmoid/softmax in the model and then a loss; the losses here take logits
(they include the log-sigmoid/log-softmax, stably), so the model never applies them.

Parameters are a list with one ``{"w": (in, out), "b": (out,)}`` dict per layer — a plain
pytree that works with optax, ``jax.grad``, sharding and the checkpoints of
:mod:`jaxfund.train`. ``w`` is torch's ``weight.T``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxfund import _checks

__all__ = ["MLP", "output_features"]

Params = list[dict[str, jax.Array]]

_TASKS = ("regression", "binary", "multiclass")


def output_features(task: str, num_classes: int = 0) -> int:
    """Number of output units of the head for ``task``.

    Args:
      task: ``"regression"`` (one linear output), ``"binary"`` (one logit, trained with
        ``binary_cross_entropy_with_logits``) or ``"multiclass"`` (``num_classes`` logits,
        trained with ``cross_entropy``).
      num_classes: number of classes, >= 2 for ``"multiclass"``; ignored otherwise.

    Returns:
      1, 1 or ``num_classes``.
    """
    _checks.check_choice(task, "task", _TASKS)
    if task != "multiclass":
        return 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an int >= 2 for task='multiclass', got {num_classes!r}")
    return num_classes


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class MLP:
    """Multilayer perceptron ``Linear -> act -> ... -> Linear`` (torch ``nn.Sequential`` of
    ``nn.Linear`` and activation modules).

    Layer ``i`` computes ``h @ w_i + b_i``; every hidden layer is followed by its activation, the
    output layer by nothing (it returns logits / raw outputs).

    Attributes:
      in_features: number of input features.
      hidden: widths of the hidden layers, e.g. ``(50,)`` for the course's 20-50-2 network;
        ``()`` gives a linear model.
      out_features: number of outputs (see :func:`output_features`).
      activation: a name resolved by :func:`jaxfund.activations.get` (``"relu"``,
        ``"LeakyReLU"``, ...) or a callable, used after every hidden layer; or a sequence with
        one of those per hidden layer.
    """

    in_features: int
    hidden: tuple[int, ...] = (64, 64)
    out_features: int = 1
    activation: str | Callable | Sequence[str | Callable] = "relu"

    def __post_init__(self) -> None:
        _positive_int(self.in_features, "in_features")
        _positive_int(self.out_features, "out_features")
        if isinstance(self.hidden, int) or not isinstance(self.hidden, Sequence):
            raise ValueError(f"hidden must be a sequence of positive ints, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for i, width in enumerate(self.hidden):
            _positive_int(width, f"hidden[{i}]")
        if isinstance(self.activation, str) or callable(self.activation):
            activations = (self.activation,) * len(self.hidden)
        else:
            activations = tuple(self.activation)
            if len(activations) != len(self.hidden):
                raise ValueError(
                    f"activation has {len(activations)} entries but hidden has "
                    f"{len(self.hidden)} layers; give one activation, or one per hidden layer"
                )
            object.__setattr__(self, "activation", activations)
        from jaxfund import activations as activations_module

        object.__setattr__(self, "_activations",
                           tuple(activations_module.get(a) for a in activations))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to output, e.g. ``(20, 50, 2)``."""
        return (self.in_features, *self.hidden, self.out_features)

    def init(self, key: jax.Array, dtype: Any = jnp.float32) -> Params:
        """Draws parameters like torch ``nn.Linear.reset_parameters``.

        torch uses ``kaiming_uniform_(weight, a=sqrt(5))`` and a uniform bias, both of which
        reduce to ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in`` the layer's input width.
        The distribution is torch's; the numbers are not (different RNG).

        Args:
          key: a ``jax.random`` key.
          dtype: floating dtype of the parameters (default float32).

        Returns:
          ``[{"w": (fan_in, fan_out), "b": (fan_out,)}, ...]``, one dict per layer.
        """
        sizes = self.sizes
        keys = jax.random.split(key, 2 * (len(sizes) - 1))
        params = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = 1.0 / math.sqrt(fan_in)
            params.append({
                "w": jax.random.uniform(keys[2 * i], (fan_in, fan_out), dtype, -bound, bound),
                "b": jax.random.uniform(keys[2 * i + 1], (fan_out,), dtype, -bound, bound),
            })
        return params

    def _check(self, params: Params, x: jax.Array) -> None:
        if x.ndim not in (1, 2) or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape (batch, {self.in_features}) or ({self.in_features},) for "
                f"an MLP with in_features={self.in_features}, got shape {tuple(x.shape)}"
            )
        sizes = self.sizes
        expected = [((a, b), (b,)) for a, b in zip(sizes[:-1], sizes[1:])]
        try:
            seen = [(tuple(p["w"].shape), tuple(p["b"].shape)) for p in params]
        except (TypeError, KeyError, AttributeError, IndexError):
            seen = None
        if seen != expected:
            got = seen if seen is not None else repr(params)
            raise ValueError(
                f"params do not match an MLP with layer sizes {sizes}: expected a list of "
                f"{{'w', 'b'}} dicts with shapes {expected}, got {got}"
            )

    def apply(self, params: Params, x: jax.Array) -> jax.Array:
        """Runs the network: ``h_{i+1} = act_i(h_i @ w_i + b_i)``, no activation on the output.

        Args:
          params: parameters from :meth:`init` (or of the same structure and shapes).
          x: floating array ``(batch, in_features)`` or a single sample ``(in_features,)``.

        Returns:
          ``(batch, out_features)`` (or ``(out_features,)``) raw outputs / logits, in the
          parameters' dtype promoted with ``x``'s.

        Raises:
          ValueError: at trace time, if ``x`` has the wrong rank or feature count, or ``params``
            has the wrong structure; TypeError if ``x`` is not a floating array.
        """
        x = _checks.as_float_array(x, "x")
        self._check(params, x)
        h = x
        for layer, act in zip(params[:-1], self._activations):
            h = act(h @ layer["w"] + layer["b"])
        return h @ params[-1]["w"] + params[-1]["b"]
