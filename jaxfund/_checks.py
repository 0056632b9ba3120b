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
        if not isinstance(value, jax.core.Tracer):
            _check_bounds(value, name, low, high, low_open, high_open)
        return value
    kind = "a real number or an array" if array_ok else "a real number"
    raise TypeError(f"{name} must be {kind}, got {value!r} of type {type(value).__name__}")


def _is_real_dtype(dtype: Any) -> bool:
    return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)


def check_lr(lr: Any, name: str = "lr") -> Any:
    """Checks a learning rate: a real number ``>= 0`` or a schedule ``count -> lr`` (any callable).

    Raises ``TypeError`` for anything else and ``ValueError`` for a negative number. Returns a
    number as a ``float`` and a schedule unchanged.
    """
    if callable(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(
            f"{name} must be a float >= 0 or a schedule step -> lr, got {lr!r} of type "
            f"{type(lr).__name__}"
        )
    return check_real(lr, name, low=0.0)


def check_pair(value: Any, name: str) -> tuple[Any, Any]:
    """Returns ``value`` as a 2-tuple: ``TypeError`` unless a tuple or list, ``ValueError`` unless
    it has two items."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a pair (tuple), got {value!r} of type "
                        f"{type(value).__name__}")
    if len(value) != 2:
        raise ValueError(f"{name} must be a pair, got {len(value)} items: {value!r}")
    return value[0], value[1]


def check_betas(betas: Any, name: str = "betas") -> tuple[float, float]:
    """Returns ``(beta1, beta2)`` as floats, each in ``[0, 1)``, from a pair (torch's ``betas``)."""
    b1, b2 = check_pair(betas, name)
    return tuple(
        check_real(b, f"{name}[{i}]", low=0.0, high=1.0, high_open=True)
        for i, b in enumerate((b1, b2))
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
