"""Trace-time argument checks and name lookup shared by the public modules.

Every check here looks only at static information (types, shapes, dtypes, Python values), so it
costs nothing at run time and raises before XLA sees anything. Messages name the argument and
show what was seen.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_ARRAY_TYPES = (jax.Array, np.ndarray, np.generic)


def as_float_array(x: Any, name: str) -> jax.Array:
    """Returns ``x`` as a floating-point JAX array, or raises ``TypeError`` naming ``name``.

    Accepts JAX/NumPy arrays (and tracers) of a floating dtype, and Python floats.
    Rejects lists, strings, ``None``, Python ints/bools and integer or boolean arrays.
    """
    if isinstance(x, _ARRAY_TYPES):
        dtype = np.dtype(x.dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{name} must be a floating-point array, got dtype {dtype} with shape "
                f"{tuple(np.shape(x))}; cast it first, e.g. {name}.astype(jnp.float32)"
            )
        return jnp.asarray(x)
    if isinstance(x, float):
        return jnp.asarray(x)
    raise TypeError(
        f"{name} must be a floating-point jax.Array or numpy.ndarray, got {type(x).__name__}"
    )


def as_array(x: Any, name: str) -> jax.Array:
    """Returns ``x`` as a JAX array of any numeric dtype, or raises ``TypeError`` naming ``name``."""
    if isinstance(x, _ARRAY_TYPES):
        return jnp.asarray(x)
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return jnp.asarray(x)
    raise TypeError(f"{name} must be a jax.Array or numpy.ndarray, got {type(x).__name__}")


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    """Returns ``axis`` as a non-negative int in ``[0, ndim)``, or raises naming ``name``."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} is out of range for an array with {ndim} dimension(s); "
            f"expected {-ndim} <= {name} < {ndim}" if ndim else
            f"{name}={axis} is invalid for a 0-dimensional array; expected at least 1 dimension"
        )
    return int(axis) % ndim


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _check_bounds(
    value: Any, name: str, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> None:
    """``ValueError`` unless every element of ``value`` lies in the interval (NaN never does)."""
    v = np.asarray(value)
    ok = np.ones(v.shape, bool)
    if low is not None:
        ok &= v > low if low_open else v >= low
    if high is not None:
        ok &= v < high if high_open else v <= high
    if not ok.all():
        raise ValueError(
            f"{name} must be {_interval(low, high, low_open, high_open)}, got {value!r}"
        )


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Returns ``value`` as an ``int``, checking its type and range.

    Raises ``TypeError`` unless ``value`` is a Python or NumPy integer (a ``bool`` is not), and
    ``ValueError`` if it is below ``low`` or above ``high``.

    >>> check_int(3, "epochs", low=1)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    _check_bounds(value, name, low, high, False, False)
    return int(value)


def check_real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    array_ok: bool = False,
) -> Any:
    """Returns ``value`` as a ``float``, checking its type and range.

    Raises ``TypeError`` unless ``value`` is a Python or NumPy real number (a ``bool``, a string
    or ``None`` is not), and ``ValueError`` unless ``low <= value <= high`` (``<`` at a bound
    with ``low_open``/``high_open``; NaN fails any bound). With ``array_ok`` a JAX/NumPy array of
    a real dtype is accepted as well and returned unchanged; its range is checked when its values
    are known at trace time (not for a tracer under ``jit``). Activations and losses use
    ``array_ok`` for arguments that enter the arithmetic only, never a Python ``if``.

    >>> check_real(1e-3, "lr", low=0.0)
    0.001
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        _check_bounds(value, name, low, high, low_open, high_open)
        return float(value)
    if array_ok and isinstance(value, _ARRAY_TYPES) and _is_real_dtype(value.dtype):
        if not is_traced(value):
            _check_bounds(value, name, low, high, low_open, high_open)
        return value
    kind = "a real number or an array" if array_ok else "a real number"
    raise TypeError(f"{name} must be {kind}, got {value!r} of type {type(value).__name__}")


def _is_real_dtype(dtype: Any) -> bool:
    return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)


def floating_dtype(value: Any) -> Any:
    """``value`` (a dtype, its name or a type) as a floating ``jnp.dtype``; ``None`` if it is
    not one (the caller raises its own error)."""
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        return None
    return dtype if jnp.issubdtype(dtype, jnp.floating) else None


def is_traced(x: Any) -> bool:
    """True for a value only known at run time (a tracer under ``jit``, ``vmap`` or ``grad``)."""
    return isinstance(x, jax.core.Tracer)


def _concrete_bound(bound: Any) -> float | None:
    """A bound as a ``float``; None (no check) where it is a traced array."""
    if bound is None or is_traced(bound):
        return None
    return float(np.asarray(bound))


def check_hyperparameter(
    value: Any,
    name: str,
    *,
    low: Any = None,
    high: Any = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """Checks a numeric hyperparameter: a real number, or a scalar JAX/NumPy array (traced too).

    A Python or NumPy real number is returned as a ``float`` (as :func:`check_real`). A
    0-dimensional array of a real dtype is returned as a JAX array (an integer one as the default
    float dtype), so the hyperparameter can be a jit argument, a ``vmap``-ed sweep or injected by
    ``optax.inject_hyperparams``. The range ``low <= value <= high`` (``<`` with
    ``low_open``/``high_open``; NaN fails any bound) is checked whenever the value is concrete and
    skipped under tracing, where it is unknown. ``low`` and ``high`` may be such values too.
    Raises ``TypeError`` for anything else (a ``bool``, a string, ``None``, an array with a shape)
    and ``ValueError`` for a concrete value out of range.

    >>> check_hyperparameter(jnp.asarray(0.9), "momentum", low=0.0)
    Array(0.9, dtype=float32, weak_type=True)
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return check_real(value, name, low=_concrete_bound(low), high=_concrete_bound(high),
                          low_open=low_open, high_open=high_open)
    if not (isinstance(value, _ARRAY_TYPES) and _is_real_dtype(value.dtype)):
        raise TypeError(
            f"{name} must be a real number or a scalar array, got {value!r} of type "
            f"{type(value).__name__}"
        )
    if np.ndim(value) != 0:
        raise ValueError(
            f"{name} must be a scalar, got an array of shape {tuple(np.shape(value))}; to try "
            f"several values at once, jax.vmap over a scalar {name}"
        )
    value = jnp.asarray(value)
    if jnp.issubdtype(value.dtype, jnp.integer):
        value = value.astype(jnp.result_type(float))
    if not is_traced(value):
        _check_bounds(value, name, _concrete_bound(low), _concrete_bound(high), low_open,
                      high_open)
    return value


def check_lr(lr: Any, name: str = "lr") -> Any:
    """Checks a learning rate: a finite real number ``>= 0``, a scalar array (traced too) or a
    schedule ``count -> lr`` (any callable).

    Raises ``TypeError`` for anything else and ``ValueError`` for a negative or non-finite number
    (an array's value is checked where it is concrete, see :func:`check_hyperparameter`). Returns a
    number as a ``float``, an array as a JAX array and a schedule unchanged; a schedule's values
    are checked by :func:`check_lr_value` as they are used.
    """
    if callable(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (numbers.Real, *_ARRAY_TYPES)):
        raise TypeError(
            f"{name} must be a float >= 0, a scalar array or a schedule step -> lr, got {lr!r} "
            f"of type {type(lr).__name__}"
        )
    lr = check_hyperparameter(lr, name, low=0.0)
    check_lr_value(lr, name)
    return lr


def check_lr_value(lr: Any, name: str = "lr", count: Any = None) -> None:
    """``ValueError`` if a concrete learning rate (a schedule's value at ``count``) is negative,
    infinite or NaN; nothing for a traced one (under ``jit`` it is unknown until run time)."""
    if is_traced(lr) or is_traced(count):
        return
    value = np.asarray(lr)
    if not (np.isfinite(value).all() and (value >= 0).all()):
        at = "" if count is None else f" (the schedule's value at count {np.asarray(count)})"
        raise ValueError(f"{name} must be finite and >= 0, got {lr!r}{at}")


def check_pair(value: Any, name: str) -> tuple[Any, Any]:
    """Returns ``value`` as a 2-tuple: ``TypeError`` unless a tuple, list or 1-d array,
    ``ValueError`` unless it has two items."""
    if isinstance(value, _ARRAY_TYPES) and np.ndim(value) == 1:
        value = tuple(value)
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a pair (tuple), got {value!r} of type "
                        f"{type(value).__name__}")
    if len(value) != 2:
        raise ValueError(f"{name} must be a pair, got {len(value)} items: {value!r}")
    return value[0], value[1]


def check_betas(betas: Any, name: str = "betas") -> tuple[Any, Any]:
    """Returns ``(beta1, beta2)``, each in ``[0, 1)``, from a pair (torch's ``betas``); each a
    ``float`` or a scalar array (see :func:`check_hyperparameter`)."""
    b1, b2 = check_pair(betas, name)
    return tuple(
        check_hyperparameter(b, f"{name}[{i}]", low=0.0, high=1.0, high_open=True)
        for i, b in enumerate((b1, b2))
    )


def check_grads(grads: Any, like: Any = None, like_name: str = "params") -> None:
    """Trace-time check of an optimizer's gradients (shapes and dtypes only: free at run time).

    Every leaf of ``grads`` must be a floating-point array (an integer gradient would be cast and
    its update truncated). Given ``like`` (the params, or a state tree that ``init`` built from
    them), ``grads`` must have its tree structure and, leaf by leaf, its shapes (a ``(1,)``
    gradient would otherwise broadcast over a ``(3,)`` parameter silently). Raises ``TypeError``
    or ``ValueError`` naming the leaf and showing what was seen.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(grads)
    for path, g in leaves:
        dtype = getattr(g, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            seen = (f"dtype {np.dtype(dtype)} with shape {tuple(np.shape(g))}" if dtype is not None
                    else f"{type(g).__name__} {g!r}")
            raise TypeError(
                f"grads{jax.tree_util.keystr(path)} must be a floating-point array, got {seen}; "
                "differentiate a float loss with respect to float params"
            )
    if like is None:
        return
    like_leaves, like_def = jax.tree_util.tree_flatten_with_path(like)
    if like_def != treedef:
        raise ValueError(
            f"grads and {like_name} have different tree structures: grads {treedef}, "
            f"{like_name} {like_def}"
        )
    for (path, g), (_, p) in zip(leaves, like_leaves):
        if np.shape(g) != np.shape(p):
            key = jax.tree_util.keystr(path)
            raise ValueError(
                f"grads{key} has shape {tuple(np.shape(g))} but {like_name}{key} has shape "
                f"{tuple(np.shape(p))}; each gradient must have its parameter's shape"
            )


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Returns ``value`` if it is one of the strings ``choices``.

    Raises ``TypeError`` if ``value`` is not a string and ``ValueError`` if it is another string.
    """
    valid = ", ".join(map(repr, choices))
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a string, one of {valid}; got {value!r} of type "
            f"{type(value).__name__}"
        )
    if value not in choices:
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def _canonical(name: str, suffix: str) -> str:
    key = re.sub(r"[\s_\-]", "", name).lower()
    if suffix and key.endswith(suffix) and key != suffix:
        key = key[: -len(suffix)]
    return key


def make_get(
    kind: str,
    table: Mapping[str, Callable],
    aliases: Mapping[str, str] | None = None,
    *,
    strip_suffix: str = "",
) -> Callable[[str], Callable]:
    """Builds a ``get(name)`` for a module.

    ``table`` maps public function names to functions. A name is matched case-insensitively with
    underscores removed (and ``strip_suffix`` dropped, e.g. ``"loss"``), so both the function
    name (``"leaky_relu"``) and torch's class name (``"LeakyReLU"``) resolve. ``aliases`` maps
    extra spellings (e.g. ``"BCELoss"``) to public names.
    """
    index: dict[str, str] = {_canonical(n, strip_suffix): n for n in table}
    for alias, target in (aliases or {}).items():
        if target not in table:
            raise KeyError(f"alias {alias!r} points to unknown {kind} {target!r}")
        index[_canonical(alias, strip_suffix)] = target
    valid = ", ".join(sorted(table))

    def get(name: str) -> Callable:
        if callable(name):
            return name
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        key = _canonical(name, strip_suffix)
        if key not in index:
            raise ValueError(f"unknown {kind} {name!r}; valid names: {valid}")
        return table[index[key]]

    # ``get`` belongs to the module of its functions, so doctest finds it there with its example.
    module = next(iter(table.values())).__module__
    example = next(iter(aliases or {}), None) or next(iter(table)).upper()
    get.__module__, get.__qualname__ = module, "get"
    get.__doc__ = (
        f"Returns the {kind} called ``name``.\n\n"
        f"Accepts the function name or torch's class name (case-insensitive); a callable is\n"
        f"returned unchanged. Raises ``ValueError`` listing the valid names otherwise.\n\n"
        f"Valid names: {valid}.\n\n"
        f"Example:\n"
        f"    >>> {module.rsplit('.', 1)[-1]}.get({example!r}).__name__\n"
        f"    {get(example).__name__!r}\n"
    )
    return get
