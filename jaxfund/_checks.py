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


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Raises ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_nonnegative(value: Any, name: str) -> None:
    """Raises ``ValueError`` naming ``name`` if a concrete number is negative (or NaN)."""
    if isinstance(value, numbers.Real) and not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


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

    get.__doc__ = (
        f"Returns the {kind} called ``name``.\n\n"
        f"Accepts the function name or torch's class name (case-insensitive); a callable is\n"
        f"returned unchanged. Raises ``ValueError`` listing the valid names otherwise.\n\n"
        f"Valid names: {valid}."
    )
    return get
