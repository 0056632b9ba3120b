"""Models as the train steps drive them: the course's MLP, any ``apply_fn``, Flax linen and NNX.

:mod:`jaxfund.train` runs any model through one interface, :class:`Model`:
``apply(params, model_state, inputs, *, train, rng) -> (outputs, model_state)`` — the trained
parameters, the mutable non-trained state (batch-norm running statistics; ``{}`` if none), a
train/eval flag and a per-step RNG key (``None`` in evaluation). :func:`as_model` turns a plain
``apply_fn(params, x) -> outputs`` into one; :func:`from_linen` and :func:`from_nnx` adapt Flax
modules with ``Dropout`` and ``BatchNorm``.

:class:`MLP`: a multilayer perceptron as a pure ``init``/``apply`` pair, initialised like
``torch.nn.Linear``.

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
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxfund import _checks, activations

__all__ = ["MLP", "hidden_activation", "Model", "as_model", "from_linen", "from_nnx"]

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


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_mlp(sizes: tuple[int, ...], key: jax.Array, dtype: Any) -> Params:
    """:meth:`MLP.init`, one compiled program: drawn op by op, the draws and key splits of a
    small MLP took ~0.2 s in a new process (each op traced and compiled or read from the
    compilation cache on its own); the numbers are bitwise the same."""
    keys = jax.random.split(key, 2 * (len(sizes) - 1))
    params = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / math.sqrt(fan_in)
        params.append({
            "w": jax.random.uniform(keys[2 * i], (fan_in, fan_out), dtype, -bound, bound),
            "b": jax.random.uniform(keys[2 * i + 1], (fan_out,), dtype, -bound, bound),
        })
    return params


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
      dropout: probability of zeroing each hidden unit after its activation in training (torch
        ``nn.Dropout(p)``: the kept units are scaled by ``1 / (1 - p)``); 0 for none. Active
        only through the MLP's :class:`Model` (pass the MLP itself as ``apply_fn``, see
        :func:`as_model`) or ``apply(..., train=True, rng=key)``.
    """

    in_features: int
    hidden: tuple[int, ...] = (64, 64)
    out_features: int = 1
    activation: str | Callable | Sequence[str | Callable] = "relu"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _checks.check_int(self.in_features, "in_features", low=1)
        _checks.check_int(self.out_features, "out_features", low=1)
        object.__setattr__(self, "dropout", _checks.check_real(self.dropout, "dropout", low=0.0,
                                                               high=1.0, high_open=True))
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
        return _init_mlp(self.sizes, key, jnp.dtype(dtype))

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

    def apply(self, params: Params, x: jax.Array, *, train: bool = False,
              rng: jax.Array | None = None) -> jax.Array:
        """Runs the network: ``h_{i+1} = act_i(h_i @ w_i + b_i)``, no activation on the output.

        Args:
          params: parameters from :meth:`init` (or of the same structure and shapes).
          x: floating array ``(batch, in_features)`` or a single sample ``(in_features,)``.
          train, rng: with ``dropout > 0``, ``train=True`` and a key, hidden layer ``i``'s units
            are dropped with the mask ``bernoulli(fold_in(rng, i), 1 - dropout)`` and the kept
            ones scaled by ``1 / (1 - dropout)``; otherwise no dropout (evaluation).

        Returns:
          ``(batch, out_features)`` (or ``(out_features,)``) raw outputs / logits, in the
          parameters' dtype promoted with ``x``'s.

        Raises:
          ValueError: at trace time, if ``x`` has the wrong rank or feature count, or ``params``
            has the wrong structure; TypeError if ``x`` is not a floating array.
        """
        x = _checks.as_float_array(x, "x")
        self._check(params, x)
        drop = self.dropout > 0 and train and rng is not None
        h = x
        for i, (layer, act) in enumerate(zip(params[:-1], self._activations)):
            h = act(h @ layer["w"] + layer["b"])
            if drop:
                keep = jax.random.bernoulli(jax.random.fold_in(rng, i), 1.0 - self.dropout,
                                            h.shape)
                h = jnp.where(keep, h / (1.0 - self.dropout), 0).astype(h.dtype)
        return h @ params[-1]["w"] + params[-1]["b"]

    def as_model(self) -> Model:
        """The MLP as a :class:`Model` (no model state; dropout in training)."""

        def apply(params: Params, model_state: Any, x: jax.Array, *, train: bool, rng: Any):
            return self.apply(params, x, train=train, rng=rng), model_state

        return Model(apply)


@dataclasses.dataclass(frozen=True)
class Model:
    """A model as :mod:`jaxfund.train` drives it.

    Attributes:
      apply: ``apply(params, model_state, inputs, *, train, rng) -> (outputs, model_state)``.
        ``params`` are trained; ``model_state`` is the mutable state the model updates itself
        (batch-norm running statistics; ``{}`` for none); ``train`` is a Python bool (True in a
        train step, False in evaluation: dropout off, running statistics read, not updated);
        ``rng`` is a ``jax.random`` key in a train step (derived from the seed and the step,
        see :func:`jaxfund.train.make_train_step`) and ``None`` in evaluation. ``inputs`` is
        ``x`` of an ``(x, y)`` batch, or the whole batch for any other batch pytree.
      init: optional ``init(key, inputs) -> (params, model_state)``.
    """

    apply: Callable[..., tuple[Any, Any]]
    init: Callable[[jax.Array, Any], tuple[Any, Any]] | None = None


def as_model(apply_fn: Callable | Model | MLP) -> Model:
    """``apply_fn`` as a :class:`Model`: a :class:`Model` unchanged; an :class:`MLP` as
    :meth:`MLP.as_model` (with its dropout); a plain ``apply_fn(params, inputs) -> outputs``
    (no state, no RNG, the same in training and evaluation) wrapped.

    Raises:
      TypeError: ``apply_fn`` is neither callable nor a :class:`Model`.
    """
    if isinstance(apply_fn, Model):
        return apply_fn
    if isinstance(apply_fn, MLP):
        return apply_fn.as_model()
    if not callable(apply_fn):
        raise TypeError("apply_fn must be a callable apply_fn(params, inputs) -> outputs or a "
                        f"jaxfund.models.Model, got {type(apply_fn).__name__}")

    def apply(params: Any, model_state: Any, inputs: Any, *, train: bool, rng: Any):
        del train, rng
        return apply_fn(params, inputs), model_state

    return Model(apply)


def _stream_keys(rng: jax.Array, names: Sequence[str]) -> dict[str, jax.Array]:
    """One independent key per named RNG stream, ``fold_in(rng, i)``."""
    return {name: jax.random.fold_in(rng, i) for i, name in enumerate(names)}


def from_linen(module: Any, *, rng_streams: Sequence[str] = ("dropout",),
               train_kwargs: Callable[[bool], dict] | None = None,
               inputs: Callable[[Any], Any] | None = None) -> Model:
    """A Flax linen module as a :class:`Model`.

    ``params`` is the ``"params"`` collection; ``model_state`` every other collection of the
    module's variables (``{"batch_stats": ...}`` with ``nn.BatchNorm``), updated in training
    with ``mutable=[its collections]``. In training the module gets
    ``rngs={stream: key, ...}`` for every name of ``rng_streams`` (independent keys from the
    step's key); in evaluation no RNG.

    Args:
      module: a ``flax.linen.Module``.
      rng_streams: the RNG streams the module draws from in training (``nn.Dropout`` uses
        ``"dropout"``).
      train_kwargs: ``train_kwargs(train) -> dict`` of keyword arguments for the module call,
        e.g. ``lambda train: {"deterministic": not train}``. Default: ``{"train": train}`` if
        the module's ``__call__`` has a ``train`` parameter (the Flax examples' convention),
        else nothing.
      inputs: ``inputs(batch) -> module input`` for a batch that is not an ``(x, y)`` pair,
        e.g. ``lambda batch: batch["image"]``; default the batch itself.

    Returns:
      a :class:`Model` whose ``init(key, inputs)`` returns ``(params, model_state)``.

    Example::

        model = models.from_linen(CNN())        # CNN.__call__(self, x, train: bool)
        params, model_state = model.init(jax.random.key(0), x[:1])
        state = train.TrainState.create(params, tx, model_state)
        result = train.fit(state, (x, y), apply_fn=model, tx=tx, ...)
    """
    if not (hasattr(module, "apply") and hasattr(module, "init")):
        raise TypeError(f"module must be a flax.linen.Module, got {type(module).__name__}")
    rng_streams = tuple(rng_streams)
    if train_kwargs is None:
        takes_train = "train" in inspect.signature(module.__call__).parameters

        def train_kwargs(train: bool) -> dict:
            return {"train": train} if takes_train else {}

    select = (lambda batch: batch) if inputs is None else inputs

    def init(key: jax.Array, batch: Any) -> tuple[Any, Any]:
        rngs = {"params": key, **_stream_keys(jax.random.fold_in(key, 1), rng_streams)}
        variables = dict(module.init(rngs, select(batch), **train_kwargs(False)))
        params = variables.pop("params", {})
        return params, variables

    def apply(params: Any, model_state: Any, batch: Any, *, train: bool, rng: Any):
        variables = {"params": params, **model_state}
        kwargs = train_kwargs(train)
        if train and rng is not None:
            kwargs["rngs"] = _stream_keys(rng, rng_streams)
        if train and model_state:
            outputs, updated = module.apply(variables, select(batch), mutable=list(model_state),
                                            **kwargs)
            return outputs, {**model_state, **updated}
        return module.apply(variables, select(batch), **kwargs), model_state

    return Model(apply, init)


def from_nnx(module: Any, *,
             inputs: Callable[[Any], Any] | None = None) -> tuple[Model, Any, Any]:
    """A Flax NNX module as a :class:`Model`, with its current params and model state.

    The module is split (``nnx.split``) into its graph, its ``nnx.Param`` variables (``params``),
    its RNG state and every other variable (``model_state``: ``nnx.BatchStat`` running
    statistics, ...), each as a pure dict of arrays. ``apply`` merges them into a fresh module
    per call, sets it to ``.train()`` or ``.eval()``, and in training gives every RNG stream of
    the module (e.g. its ``nnx.Dropout``'s) a new key from the step's key, so the masks are
    reproducible from the seed and the step; the RNG state is not carried. To put trained values
    back into the module: ``nnx.update(module, state.params, state.model_state)``.

    Args:
      module: an initialised ``flax.nnx.Module`` (e.g. ``CNN(rngs=nnx.Rngs(0))``).
      inputs: as in :func:`from_linen`.

    Returns:
      ``(model, params, model_state)``.
    """
    from flax import nnx  # heavy: only for NNX users

    if not isinstance(module, nnx.Module):
        raise TypeError(f"module must be a flax.nnx.Module, got {type(module).__name__}")
    graphdef, params, rng_state, model_state = nnx.split(module, nnx.Param, nnx.RngState, ...)
    params, rng_state, model_state = (nnx.to_pure_dict(s)
                                      for s in (params, rng_state, model_state))
    select = (lambda batch: batch) if inputs is None else inputs

    def fresh_rngs(rng: jax.Array) -> Any:
        leaves, treedef = jax.tree.flatten(rng_state)
        return jax.tree.unflatten(treedef, [
            jax.random.fold_in(rng, i) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
            else jnp.zeros_like(leaf) for i, leaf in enumerate(leaves)])

    def apply(params: Any, model_state: Any, batch: Any, *, train: bool, rng: Any):
        rngs = fresh_rngs(rng) if train and rng is not None else rng_state
        instance = nnx.merge(graphdef, params, rngs, model_state)
        if train:
            instance.train()
        else:
            instance.eval()
        outputs = instance(select(batch))
        if not train:
            return outputs, model_state
        *_, updated = nnx.split(instance, nnx.Param, nnx.RngState, ...)
        return outputs, nnx.to_pure_dict(updated)

    return Model(apply), params, model_state
