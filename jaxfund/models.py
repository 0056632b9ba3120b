"""A multilayer perceptron as a pure ``init``/``apply`` pair, initialised like ``torch.nn.Linear``.

The network of the course: an input layer of ``in_features``, hidden layers with an element-wise
activation (:data:`jaxfund.activations.ELEMENTWISE`), and an output layer without one that
returns raw outputs (logits). Its width and the loss on it depend on the task:
:func:`jaxfund.tasks.output_features` and :func:`jaxfund.tasks.loss`.

Parameters are a list with one ``{"w": (in, out), "b": (out,)}`` dict per layer — a plain
pytree that works with optax, ``jax.grad``, sharding and :mod:`jaxfund.checkpoint`. ``w`` is
torch's ``weight.T``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxfund import _checks, activations

__all__ = ["MLP", "hidden_activation"]

Params = list[dict[str, jax.Array]]


def hidden_activation(activation: str | Callable) -> Callable:
    """The function for a hidden-layer activation: a callable unchanged, or a name of
    :data:`jaxfund.activations.ELEMENTWISE` (function or torch class name, e.g. ``"LeakyReLU"``).

    Raises:
      ValueError: an unknown name, or one that is not an element-wise activation (softmax,
        glu, prelu, threshold, ...); the message lists the valid names.

    >>> hidden_activation("ReLU").__name__
    'relu'
    """
    if callable(activation):
        return activation
    valid = ", ".join(activations.ELEMENTWISE)
    try:
        fn = activations.get(activation)
    except ValueError:
        raise ValueError(f"unknown activation {activation!r}; valid hidden-layer activations: "
                         f"{valid}") from None
    if fn not in _ELEMENTWISE_FNS:
        raise ValueError(f"activation {activation!r} is not an element-wise activation usable "
                         f"after a hidden layer; valid hidden-layer activations: {valid}")
    return fn


_ELEMENTWISE_FNS = frozenset(activations.get(name) for name in activations.ELEMENTWISE)


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
      out_features: number of outputs (see :func:`jaxfund.tasks.output_features`).
      activation: a name of :data:`jaxfund.activations.ELEMENTWISE` (``"relu"``,
        ``"LeakyReLU"``, ...) or a callable, used after every hidden layer; or a sequence with
        one of those per hidden layer (see :func:`hidden_activation`).
    """

    in_features: int
    hidden: tuple[int, ...] = (64, 64)
    out_features: int = 1
    activation: str | Callable | Sequence[str | Callable] = "relu"

    def __post_init__(self) -> None:
        _checks.check_int(self.in_features, "in_features", low=1)
        _checks.check_int(self.out_features, "out_features", low=1)
        if isinstance(self.hidden, (str, bytes)) or not isinstance(self.hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of positive ints, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for i, width in enumerate(self.hidden):
            _checks.check_int(width, f"hidden[{i}]", low=1)
        if isinstance(self.activation, str) or callable(self.activation):
            acts = (self.activation,) * len(self.hidden)
        else:
            acts = tuple(self.activation)
            if len(acts) != len(self.hidden):
                raise ValueError(
                    f"activation has {len(acts)} entries but hidden has "
                    f"{len(self.hidden)} layers; give one activation, or one per hidden layer"
                )
            object.__setattr__(self, "activation", acts)
        object.__setattr__(self, "_activations", tuple(hidden_activation(a) for a in acts))

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
