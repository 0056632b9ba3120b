"""Activation functions with ``torch.nn.functional`` names, arguments and semantics.

Every function is pure and safe under ``jit``, ``vmap`` and ``grad``. Values and gradients
follow PyTorch 2.13, including the derivative at each kink (``relu'(0) = 0``,
``leaky_relu'(0) = negative_slope``, ``hardtanh'(min_val) = hardtanh'(max_val) = 0``, ...);
where ``jnp.where``/``jnp.clip`` would give another derivative the rule is a ``jax.custom_jvp``.

Dtypes: the output dtype is the input dtype. ``bfloat16``/``float16`` inputs are computed in
``float32`` and rounded once at the end, as torch's CPU kernels do; this widening keeps
intermediate values such as ``x**3`` (gelu's tanh form) or ``6 * x`` (hardswish) from
overflowing float16. ``float32`` and ``float64`` are computed in their own precision.

Axes: ``dim`` is ``axis`` (default ``-1``), and ``prelu``'s channels are on the last axis
(JAX is channels-last; torch uses axis 1).

NaN and ±inf: values and gradients are NaN, ±inf or finite exactly where torch's are. At a NaN
input a piecewise function's gradient is what torch's formula gives when every comparison with NaN
is false (``relu'(nan) = 1``, ``leaky_relu'(nan) = negative_slope``, ``elu'(nan) = 1``,
``hardsigmoid'(nan) = 0``, ...): that is torch's answer for a 0-d tensor and for every element
of a short one. torch's SIMD loop, which handles all but the last few elements of a long tensor,
answers 0 or NaN instead for ``relu6``, ``hardtanh``, ``softshrink``, ``hardshrink``,
``elu``/``selu``/``celu`` and ``hardswish``, and gives ``gelu(inf) = nan`` in float32; we give the
one answer at every position.

Zero-size arrays work everywhere torch accepts them (an empty batch, an empty axis for the
softmax family); a 0-d ``x`` counts as 1-d for the softmax family (``axis=0`` or ``-1``), as in
torch.

Bad input raises at trace time, naming the argument: ``TypeError`` for a non-float ``x`` or an
argument of the wrong type (a string or ``None`` where a number goes), ``ValueError`` for a bad
value.

Examples assume ``import jax``, ``import jax.numpy as jnp`` and
``from jaxfund import activations``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxfund import _checks

__all__ = [
    "NAMES", "ELEMENTWISE", "get",
    "identity", "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "celu",
    "gelu", "silu", "mish", "softplus", "softsign", "hardtanh", "hardsigmoid", "hardswish",
    "logsigmoid", "tanhshrink", "softshrink", "hardshrink", "threshold", "softmax",
    "log_softmax", "softmin", "glu", "prelu", "rrelu",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _elementwise(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Checks that ``x`` is a float array, widens bf16/f16 to f32 and rounds the result back."""

    @functools.wraps(fn)
    def wrapper(x: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
        x = _checks.as_float_array(x, "x")
        y = fn(x.astype(jnp.promote_types(x.dtype, jnp.float32)), *args, **kwargs)
        return y.astype(x.dtype)

    return wrapper


# The kink rules below are written with torch's comparisons, so that a NaN input, for which every
# comparison is false, takes the branch torch takes.
@jax.custom_jvp
def _relu(x: jax.Array) -> jax.Array:
    return jnp.maximum(x, 0)


_relu.defjvps(lambda t, ans, x: jnp.where(x <= 0, 0, t))


@jax.custom_jvp
def _clamp(x: jax.Array, lo: Any, hi: Any) -> jax.Array:
    return jnp.clip(x, lo, hi)


# torch's clamp-like activations have derivative 0 at both bounds (jnp.clip would give 1/2).
_clamp.defjvps(lambda t, ans, x, lo, hi: jnp.where((x <= lo) | (x >= hi), 0, t), None, None)


def _elu(x: jax.Array, alpha: Any, input_scale: Any = 1.0) -> jax.Array:
    # The inner where keeps expm1 of large positive x (and its infinite slope) out of the graph.
    negative = jnp.where(x <= 0, x, 0.0) * input_scale
    return jnp.where(x <= 0, alpha * jnp.expm1(negative), x)


@jax.custom_jvp
def _hardsigmoid(x: jax.Array) -> jax.Array:
    return jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


_hardsigmoid.defjvps(lambda t, ans, x: jnp.where((x > -3.0) & (x < 3.0), t / 6.0, 0))


@jax.custom_jvp
def _hardswish(x: jax.Array) -> jax.Array:
    return x * (jnp.clip(x + 3.0, 0.0, 6.0) / 6.0)


# The slope is selected before it multiplies t, so that no 0 * inf reaches the gradient.
_hardswish.defjvps(
    lambda t, ans, x: t * jnp.where(x <= -3.0, 0.0, jnp.where(x < 3.0, x / 3.0 + 0.5, 1.0)))


def _softplus(x: jax.Array) -> jax.Array:
    return jnp.logaddexp(x, 0.0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _softplus_switch(x: jax.Array, beta: float, threshold: float) -> jax.Array:
    z = beta * x
    return jnp.where(z > threshold, x, _softplus(z) / beta)


@_softplus_switch.defjvp
def _softplus_switch_jvp(beta, threshold, primals, tangents):
    # The slope sigma(beta x) = exp(beta x - log(1 + e^(beta x))) is read off the output y, as
    # jax.nn.softplus does, so the backward pass needs only x and y (no log1p temporary).
    (x,), (t,) = primals, tangents
    y = _softplus_switch(x, beta, threshold)
    z = beta * x
    return y, t * jnp.where(z > threshold, 1.0, jnp.exp(z - beta * y))


def _quotient(x: jax.Array) -> jax.Array:
    return x / (1 + jnp.abs(x))


# XLA:GPU divides float32 with an approximate (not correctly rounded) instruction: on an H200,
# x / (1 + |x|) gave 1 + 2**-23 for x = 2.97e7, where torch and XLA:CPU give 1. The value is
# clamped into [-1, 1] (a no-op wherever the division rounds correctly); the tangent is the
# quotient's, as torch's autograd of its composite. (Written as y + stop_gradient(clip(y) - y),
# the clamp made XLA:CPU's forward + backward 4-5x slower than jax.nn.soft_sign's.)
@jax.custom_jvp
def _softsign(x: jax.Array) -> jax.Array:
    return jnp.clip(_quotient(x), -1, 1)


@_softsign.defjvp
def _softsign_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    y, dy = jax.jvp(_quotient, primals, tangents)
    return jnp.clip(y, -1, 1), dy


@_elementwise
def identity(x: jax.Array) -> jax.Array:
    r"""Identity, ``torch.nn.Identity``: :math:`x`. Derivative 1.

    Args:
      x: float array.

    Returns:
      ``x`` unchanged (same as ``jax.nn.identity``).

    Example:
      >>> activations.identity(jnp.array([-1.0, 0.0, 2.0]))
      Array([-1.,  0.,  2.], dtype=float32)
    """
    return x


@_elementwise
def sigmoid(x: jax.Array) -> jax.Array:
    r"""Logistic sigmoid, ``torch.sigmoid``: :math:`1 / (1 + e^{-x})`, range :math:`(0, 1)`.

    Computed with ``lax.logistic`` (no overflow for any finite ``x``); derivative
    :math:`\sigma(x)(1 - \sigma(x))`. Same as ``jax.nn.sigmoid``.

    Args:
      x: float array.

    Example:
      >>> activations.sigmoid(jnp.array([-jnp.inf, 0.0, jnp.inf]))
      Array([0. , 0.5, 1. ], dtype=float32)
      >>> round(float(activations.sigmoid(1.0)), 4)
      0.7311
    """
    return jax.lax.logistic(x)


@_elementwise
def tanh(x: jax.Array) -> jax.Array:
    r"""Hyperbolic tangent, ``torch.tanh``: range :math:`(-1, 1)`, derivative :math:`1 - \tanh^2 x`.

    Same as ``jax.nn.tanh``.

    Args:
      x: float array.

    Example:
      >>> activations.tanh(jnp.array([-jnp.inf, 0.0, jnp.inf]))
      Array([-1.,  0.,  1.], dtype=float32)
      >>> round(float(activations.tanh(1.0)), 4)
      0.7616
    """
    return jnp.tanh(x)


@_elementwise
def relu(x: jax.Array) -> jax.Array:
    r"""Rectified linear unit, ``F.relu``: :math:`\max(x, 0)`, range :math:`[0, \infty)`.

    Derivative 1 for :math:`x > 0`, 0 for :math:`x \le 0` (0 at the kink, as torch and
    ``jax.nn.relu``). NaN propagates.

    Args:
      x: float array.

    Example:
      >>> activations.relu(jnp.array([-1.0, 0.0, 2.0]))
      Array([0., 0., 2.], dtype=float32)
    """
    return _relu(x)


@_elementwise
def relu6(x: jax.Array) -> jax.Array:
    r"""ReLU capped at 6, ``F.relu6``: :math:`\min(\max(x, 0), 6)`, range :math:`[0, 6]`.

    Derivative 1 on :math:`(0, 6)` and 0 elsewhere, including both kinks 0 and 6 (as torch and
    ``jax.nn.relu6``).

    Args:
      x: float array.

    Example:
      >>> activations.relu6(jnp.array([-1.0, 3.0, 8.0]))
      Array([0., 3., 6.], dtype=float32)
    """
    return _clamp(x, 0.0, 6.0)


@_elementwise
def leaky_relu(x: jax.Array, negative_slope: float = 0.01) -> jax.Array:
    r"""Leaky ReLU, ``F.leaky_relu``: :math:`x` if :math:`x > 0` else :math:`s x`.

    :math:`s` is ``negative_slope``. Derivative 1 for :math:`x > 0` and ``negative_slope`` for
    :math:`x \le 0`, so ``leaky_relu'(0) = negative_slope`` as in torch. ``jax.nn.leaky_relu`` uses
    ``x >= 0`` and has derivative 1 at 0; values are identical.

    Args:
      x: float array.
      negative_slope: slope for non-positive inputs (any sign, as torch).

    Example:
      >>> activations.leaky_relu(jnp.array([-2.0, 0.0, 2.0]), negative_slope=0.5)
      Array([-1.,  0.,  2.], dtype=float32)
    """
    _checks.check_real(negative_slope, "negative_slope", array_ok=True)
    return jnp.where(x > 0, x, x * negative_slope)


@_elementwise
def elu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    r"""Exponential linear unit, ``F.elu``: :math:`x` if :math:`x > 0` else :math:`\alpha(e^x - 1)`.

    Range :math:`(-\alpha, \infty)` for :math:`\alpha > 0`. Derivative 1 for :math:`x > 0` and
    :math:`\alpha e^x` for :math:`x \le 0`, so ``elu'(0) = alpha`` (torch takes the left
    derivative at the kink; so does ``jax.nn.elu``).

    Args:
      x: float array.
      alpha: scale of the negative part.

    Example:
      >>> activations.elu(jnp.array([-jnp.inf, 0.0, 2.0]))
      Array([-1.,  0.,  2.], dtype=float32)
    """
    _checks.check_real(alpha, "alpha", array_ok=True)
    return _elu(x, alpha)


@_elementwise
def selu(x: jax.Array) -> jax.Array:
    r"""Scaled ELU, ``F.selu``: :math:`\lambda\,\mathrm{elu}(x, \alpha)`.

    With :math:`\alpha \approx 1.6733` and :math:`\lambda \approx 1.0507` (Klambauer et al.);
    range :math:`(-\lambda\alpha, \infty)`. Derivative :math:`\lambda` for :math:`x > 0` and
    :math:`\lambda\alpha e^x` for :math:`x \le 0` (``selu'(0) = λα ≈ 1.7581``, as torch and
    ``jax.nn.selu``).

    Args:
      x: float array.

    Example:
      >>> activations.selu(jnp.array([0.0, 1.0]))
      Array([0.      , 1.050701], dtype=float32)
    """
    return _SELU_SCALE * _elu(x, _SELU_ALPHA)


@_elementwise
def celu(x: jax.Array, alpha: float = 1.0) -> jax.Array:
    r"""Continuously differentiable ELU, ``F.celu``.

    :math:`x` if :math:`x > 0` else :math:`\alpha(e^{x/\alpha} - 1)`;
    range :math:`(-\alpha, \infty)` for :math:`\alpha > 0`.

    Derivative 1 for :math:`x > 0` and :math:`e^{x/\alpha}` for :math:`x \le 0`
    (``celu'(0) = 1``). Same as ``jax.nn.celu``.

    Args:
      x: float array.
      alpha: nonzero scale (torch raises for 0, so do we: ``ValueError``).

    Example:
      >>> activations.celu(jnp.array([-jnp.inf, 0.0, 2.0]), alpha=2.0)
      Array([-2.,  0.,  2.], dtype=float32)
    """
    alpha = _checks.check_real(alpha, "alpha", array_ok=True)
    if isinstance(alpha, float) and alpha == 0:
        raise ValueError("alpha must be nonzero for celu (it divides x), got 0")
    return _elu(x, alpha, 1.0 / alpha)


@_elementwise
def gelu(x: jax.Array, approximate: str = "none") -> jax.Array:
    r"""Gaussian error linear unit, ``F.gelu``: :math:`x\,\Phi(x)`.

    ``approximate="none"`` (torch's default): :math:`\tfrac{x}{2}\,\mathrm{erfc}(-x/\sqrt 2)`,
    the exact form (erfc rather than ``1 + erf`` keeps precision for negative x).
    ``approximate="tanh"``: :math:`\tfrac{x}{2}(1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))`.
    Range :math:`[\approx -0.17, \infty)`; smooth, ``gelu'(0) = 1/2``. ``jax.nn.gelu`` defaults to
    ``approximate=True`` (the tanh form): use ``jax.nn.gelu(x, approximate=False)`` for torch's
    default.

    Args:
      x: float array.
      approximate: ``"none"`` or ``"tanh"``.

    Example:
      >>> activations.gelu(jnp.array([0.0, 10.0]))
      Array([ 0., 10.], dtype=float32)
      >>> round(float(activations.gelu(1.0)), 4)
      0.8413
      >>> round(float(activations.gelu(1.0, approximate="tanh")), 4)
      0.8412
    """
    _checks.check_choice(approximate, "approximate", ("none", "tanh"))
    if approximate == "none":
        return 0.5 * x * jax.lax.erfc(-x * math.sqrt(0.5))
    # tanh(...) is exactly ±1 beyond |x| = 10 in every float dtype; clipping there keeps x**3 and
    # its derivative finite for huge finite |x| (torch's gradient is NaN at 3e38). The clip's
    # slope does not matter there (tanh' is exactly 0), so it is the one-select _clamp, not
    # jnp.clip. ±inf passes unclipped, so that gelu'(±inf) is NaN (inf * 0), as in torch.
    # x * (0.5 * (1 + tanh)) equals 0.5 * x * (1 + tanh) (scaling by 0.5 is exact) and lets XLA
    # fuse the product into the reduction instead of writing 0.5 * x as a full-size temporary.
    xc = jnp.where(jnp.isinf(x), x, _clamp(x, -10.0, 10.0))
    return x * (0.5 * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (xc + 0.044715 * xc**3))))


@_elementwise
def silu(x: jax.Array) -> jax.Array:
    r"""Sigmoid linear unit (swish), ``F.silu``: :math:`x\,\sigma(x)`.

    Range :math:`[\approx -0.28, \infty)`. Smooth, ``silu'(0) = 1/2``. Same as ``jax.nn.silu``.

    Args:
      x: float array.

    Example:
      >>> activations.silu(jnp.array([0.0, 100.0]))
      Array([  0., 100.], dtype=float32)
      >>> round(float(activations.silu(1.0)), 4)
      0.7311
    """
    return x * jax.lax.logistic(x)


@_elementwise
def mish(x: jax.Array) -> jax.Array:
    r"""Mish, ``F.mish``: :math:`x \tanh(\mathrm{softplus}(x))`.

    Range :math:`[\approx -0.31, \infty)`. softplus is ``logaddexp(x, 0)``, so nothing overflows.
    Smooth, ``mish'(0) = 0.6``. Same as ``jax.nn.mish``.

    Args:
      x: float array.

    Example:
      >>> activations.mish(jnp.array([0.0, 100.0]))
      Array([  0., 100.], dtype=float32)
      >>> round(float(activations.mish(1.0)), 4)
      0.8651
    """
    return x * jnp.tanh(_softplus(x))


@_elementwise
def softplus(x: jax.Array, beta: float = 1.0, threshold: float = 20.0) -> jax.Array:
    r"""Softplus, ``F.softplus``: :math:`\tfrac{1}{\beta}\log(1 + e^{\beta x})`.

    Linear, :math:`x`, where :math:`\beta x > \mathrm{threshold}` (torch's switch).

    Range :math:`(0, \infty)` for :math:`\beta > 0`. Derivative :math:`\sigma(\beta x)` for
    :math:`\beta x \le \mathrm{threshold}` and exactly 1 above it (torch's switch; at
    :math:`\beta x = \mathrm{threshold}` the log form is used). ``log(1 + e^z)`` is computed as
    ``logaddexp(z, 0)``, so any ``threshold`` is safe. The slope is computed from the output,
    :math:`\exp(\beta x - \beta y)` (as ``jax.nn.softplus`` does), which saves a full-size
    temporary; it is exact for ``beta`` a power of two and within 6e-15 relative in float64
    otherwise. ``jax.nn.softplus`` has no ``beta`` or
    ``threshold``: it equals ``beta=1`` without the linear switch (differences below 2.1e-9,
    visible in float64 only).

    Args:
      x: float array.
      beta: nonzero scale (torch returns inf for 0; we raise ``ValueError``).
      threshold: above ``beta * x > threshold`` the function is linear.

    Example:
      >>> activations.softplus(jnp.array([-jnp.inf, 30.0]))
      Array([ 0., 30.], dtype=float32)
      >>> round(float(activations.softplus(0.0)), 4)
      0.6931
    """
    beta = _checks.check_real(beta, "beta", array_ok=True)
    _checks.check_real(threshold, "threshold", array_ok=True)
    if isinstance(beta, float) and beta == 0:
        raise ValueError("beta must be nonzero for softplus (it divides the result), got 0")
    return _softplus_switch(x, beta, threshold)


@_elementwise
def softsign(x: jax.Array) -> jax.Array:
    r"""Softsign, ``F.softsign``: :math:`x / (1 + |x|)`, range :math:`(-1, 1)`.

    Derivative :math:`1 / (1 + |x|)^2` (1 at 0). Same as ``jax.nn.soft_sign``.

    Args:
      x: float array.

    Example:
      >>> activations.softsign(jnp.array([-1.0, 0.0, 3.0]))
      Array([-0.5 ,  0.  ,  0.75], dtype=float32)
    """
    return _softsign(x)


@_elementwise
def hardtanh(x: jax.Array, min_val: float = -1.0, max_val: float = 1.0) -> jax.Array:
    r"""Hard tanh, ``F.hardtanh``: :math:`\min(\max(x, \mathrm{min\_val}), \mathrm{max\_val})`.

    Derivative 1 strictly inside :math:`(\mathrm{min\_val}, \mathrm{max\_val})` and 0 elsewhere,
    including at both bounds (torch). ``jax.nn.hard_tanh`` is fixed to :math:`[-1, 1]` and has
    derivative 1 at :math:`\pm 1`; values are identical.

    Args:
      x: float array.
      min_val, max_val: the bounds; ``min_val > max_val`` raises ``ValueError`` (as torch).

    Example:
      >>> activations.hardtanh(jnp.array([-2.0, 0.5, 2.0]))
      Array([-1. ,  0.5,  1. ], dtype=float32)
    """
    min_val = _checks.check_real(min_val, "min_val", array_ok=True)
    max_val = _checks.check_real(max_val, "max_val", array_ok=True)
    if isinstance(min_val, float) and isinstance(max_val, float) and min_val > max_val:
        raise ValueError(f"min_val cannot be greater than max_val, got {min_val} > {max_val}")
    return _clamp(x, min_val, max_val)


@_elementwise
def hardsigmoid(x: jax.Array) -> jax.Array:
    r"""Hard sigmoid, ``F.hardsigmoid``: :math:`\mathrm{relu6}(x + 3) / 6`, range :math:`[0, 1]`.

    Derivative :math:`1/6` on :math:`(-3, 3)`, 0 elsewhere including the kinks :math:`\pm 3`
    (torch and ``jax.nn.hard_sigmoid``) and at NaN (torch). Torch's backward multiplies by a
    float32 ``1/6`` even for float64 tensors (relative error 3e-8); we use the exact ``1/6``.

    Args:
      x: float array.

    Example:
      >>> activations.hardsigmoid(jnp.array([-3.0, 0.0, 3.0]))
      Array([0. , 0.5, 1. ], dtype=float32)
    """
    return _hardsigmoid(x)


@_elementwise
def hardswish(x: jax.Array) -> jax.Array:
    r"""Hard swish, ``F.hardswish``: :math:`x\,\mathrm{relu6}(x + 3) / 6`.

    Range :math:`[-3/8, \infty)`. Derivative 0 for :math:`x \le -3`, :math:`x/3 + 1/2` on
    :math:`(-3, 3)`, 1 for :math:`x \ge 3` (torch's values at the kinks: 0 at -3, 1 at 3; same as
    ``jax.nn.hard_swish``), and 1 at NaN (torch). Computed as ``x * (relu6(x + 3) / 6)``, which
    stays finite up to the dtype's maximum where torch's ``x * relu6(x + 3) / 6`` overflows.

    Args:
      x: float array.

    Example:
      >>> activations.hardswish(jnp.array([-1.5, 0.0, 3.0]))
      Array([-0.375,  0.   ,  3.   ], dtype=float32)
    """
    return _hardswish(x)


@_elementwise
def logsigmoid(x: jax.Array) -> jax.Array:
    r"""Log-sigmoid, ``F.logsigmoid``: :math:`\log\sigma(x) = -\mathrm{softplus}(-x)`.

    Range :math:`(-\infty, 0)`. Derivative :math:`\sigma(-x)`. Stable for all finite ``x``. Same as
    ``jax.nn.log_sigmoid``.

    Args:
      x: float array.

    Example:
      >>> activations.logsigmoid(jnp.array([-100.0]))
      Array([-100.], dtype=float32)
      >>> round(float(activations.logsigmoid(0.0)), 4)
      -0.6931
    """
    return -_softplus(-x)


@_elementwise
def tanhshrink(x: jax.Array) -> jax.Array:
    r"""Tanh shrink, ``F.tanhshrink``: :math:`x - \tanh x`. Derivative :math:`\tanh^2 x`.

    Args:
      x: float array.

    Example:
      >>> activations.tanhshrink(jnp.array([0.0, 100.0]))
      Array([ 0., 99.], dtype=float32)
      >>> round(float(activations.tanhshrink(1.0)), 4)
      0.2384
    """
    return x - jnp.tanh(x)


@_elementwise
def softshrink(x: jax.Array, lambd: float = 0.5) -> jax.Array:
    r"""Soft shrinkage, ``F.softshrink``: :math:`\mathrm{sign}(x)\max(|x| - \lambda, 0)`.

    :math:`x - \lambda` if :math:`x > \lambda`, :math:`x + \lambda` if :math:`x < -\lambda`,
    else 0.

    Derivative 1 for :math:`|x| > \lambda`, 0 for :math:`|x| \le \lambda` (0 at the kinks
    :math:`\pm\lambda`, as torch; 1 at NaN, as torch).

    Args:
      x: float array.
      lambd: threshold, must be ``>= 0`` (torch raises for a negative one; ``ValueError``).

    Example:
      >>> activations.softshrink(jnp.array([-2.0, 0.25, 2.0]))
      Array([-1.5,  0. ,  1.5], dtype=float32)
    """
    _checks.check_real(lambd, "lambd", low=0.0, array_ok=True)
    dead = (x >= -lambd) & (x <= lambd)
    return jnp.where(dead, x * 0, jnp.where(x > lambd, x - lambd, x + lambd))


@_elementwise
def hardshrink(x: jax.Array, lambd: float = 0.5) -> jax.Array:
    r"""Hard shrinkage, ``F.hardshrink``: :math:`x` if :math:`|x| > \lambda` else 0.

    Derivative 1 for :math:`|x| > \lambda` and 0 for :math:`|x| \le \lambda` (0 at
    :math:`\pm\lambda`, as torch). A negative ``lambd`` is accepted, as torch does, and gives
    the identity.

    Args:
      x: float array.
      lambd: threshold.

    Example:
      >>> activations.hardshrink(jnp.array([-2.0, 0.25, 2.0]))
      Array([-2.,  0.,  2.], dtype=float32)
    """
    _checks.check_real(lambd, "lambd", array_ok=True)
    return jnp.where((x >= -lambd) & (x <= lambd), 0.0, x)


@_elementwise
def threshold(x: jax.Array, threshold: float, value: float) -> jax.Array:
    r"""Threshold, ``F.threshold``: :math:`x` if :math:`x > \mathrm{threshold}` else ``value``.

    Derivative 1 for :math:`x > \mathrm{threshold}` and 0 otherwise (0 at the threshold).

    Args:
      x: float array.
      threshold: the cut.
      value: replacement for :math:`x \le \mathrm{threshold}`.

    Example:
      >>> activations.threshold(jnp.array([-1.0, 0.5, 2.0]), threshold=1.0, value=-5.0)
      Array([-5., -5.,  2.], dtype=float32)
    """
    _checks.check_real(threshold, "threshold", array_ok=True)
    _checks.check_real(value, "value", array_ok=True)
    return jnp.where(x <= threshold, value, x)


def _softmax_input(x: Any, dtype: Any) -> jax.Array:
    """``x`` for the softmax family: a float array, or with a ``dtype`` also a bool or integer
    array (torch casts those to ``dtype`` too)."""
    if dtype is None:
        return _checks.as_float_array(x, "x")
    x = _checks.as_array(x, "x")
    if not any(jnp.issubdtype(x.dtype, kind) for kind in (jnp.bool_, jnp.integer, jnp.floating)):
        raise TypeError(
            f"x must be a bool, integer or floating-point array to be cast to dtype, got dtype "
            f"{x.dtype} with shape {x.shape}; take the real part first if that is what you mean "
            f"(torch drops the imaginary part with a warning, JAX's cast would drop it silently)"
        )
    return x


def _cast(x: Any, dtype: Any) -> jax.Array:
    """``x`` cast to ``dtype`` before the operation, as torch's ``dtype=``; ``None`` keeps it."""
    x = _softmax_input(x, dtype)
    if dtype is None:
        return x
    target = _checks.floating_dtype(dtype)
    if target is None:
        raise TypeError(
            f"dtype must be a floating-point dtype such as jnp.float32, or None; got {dtype!r} "
            f"(torch has no integer or complex softmax either)"
        )
    return x.astype(target)


def _softmax_axis(x: jax.Array, axis: Any) -> int:
    """``axis`` as an int in ``[0, ndim)``; a 0-d ``x`` counts as 1-d (axis 0 or -1), as torch."""
    try:
        return _checks.normalize_axis(axis, max(x.ndim, 1), "axis")
    except ValueError:
        if x.ndim:
            raise
        raise ValueError(
            f"axis={axis} is out of range for a 0-dimensional x, which counts as 1-d as in torch; "
            f"expected axis=0 or axis=-1"
        ) from None


@_elementwise
def _along_axis(x: jax.Array, axis: Any, kernel: Callable[..., jax.Array]) -> jax.Array:
    axis = _softmax_axis(x, axis)
    return kernel(x.reshape(x.shape or (1,)), axis).reshape(x.shape)


def _shifted(x: jax.Array, axis: int) -> jax.Array:
    # The maximum is a constant shift (no gradient). initial=-inf, the identity of max, lets an
    # empty axis reduce to an empty result instead of raising.
    return x - jax.lax.stop_gradient(jnp.max(x, axis, keepdims=True, initial=-jnp.inf))


def _softmax(x: jax.Array, axis: int) -> jax.Array:
    e = jnp.exp(_shifted(x, axis))
    return e / jnp.sum(e, axis, keepdims=True)


def _log_softmax(x: jax.Array, axis: int) -> jax.Array:
    shifted = _shifted(x, axis)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis, keepdims=True))


def softmax(x: jax.Array, axis: int = -1, *, dtype: Any = None) -> jax.Array:
    r"""Softmax, ``F.softmax(x, dim=axis, dtype=dtype)``: :math:`e^{x_i} / \sum_j e^{x_j}`.

    Normalizes along ``axis``. Range :math:`[0, 1]`, sums to 1. Shifted by the (constant)
    maximum, so no overflow. Same as ``jax.nn.softmax``. A row holding NaN or :math:`+\infty`,
    or only :math:`-\infty`, gives NaN, as in torch. A 0-d ``x`` counts as 1-d (``axis`` 0 or
    -1; the result is 1), and an empty ``x`` gives an empty result, as in torch.

    torch's ``dim`` has no default, ours is ``axis=-1``. torch's ``dim=None`` (deprecated; it
    picks axis 0 or 1 from the rank) is refused: pass the axis.

    Args:
      x: float array; with a ``dtype``, a bool or integer array is accepted too. A complex ``x``
        is refused (``TypeError``): torch casts it, dropping the imaginary part with a warning,
        but JAX's cast would drop it silently.
      axis: the axis that is normalized.
      dtype: if given, ``x`` is cast to this floating dtype first and the result has it (torch's
        ``dtype``; float64 needs ``jax_enable_x64``, as everywhere in JAX).

    Example:
      >>> activations.softmax(jnp.array([[0.0, 0.0], [1.0, 1.0]]))
      Array([[0.5, 0.5],
             [0.5, 0.5]], dtype=float32)
      >>> activations.softmax(jnp.array([0, 0], jnp.int32), dtype=jnp.bfloat16)
      Array([0.5, 0.5], dtype=bfloat16)
      >>> activations.softmax(jnp.array(3.0), axis=0)
      Array(1., dtype=float32)
    """
    return _along_axis(_cast(x, dtype), axis, _softmax)


def log_softmax(x: jax.Array, axis: int = -1, *, dtype: Any = None) -> jax.Array:
    r"""Log-softmax, ``F.log_softmax(x, dim=axis, dtype=dtype)``: :math:`x_i - \log\sum_j e^{x_j}`.

    Range :math:`(-\infty, 0]`. Stable (max-shifted log-sum-exp). Same as ``jax.nn.log_softmax``.
    NaN, 0-d and empty ``x``, ``axis`` and ``dtype`` as in :func:`softmax` (a 0-d ``x`` gives 0).

    Args:
      x: float array; with a ``dtype``, a bool or integer array is accepted too.
      axis: the axis that is normalized.
      dtype: if given, ``x`` is cast to this floating dtype first and the result has it.

    Example:
      >>> activations.log_softmax(jnp.array([0.0, -jnp.inf]))
      Array([  0., -inf], dtype=float32)
    """
    return _along_axis(_cast(x, dtype), axis, _log_softmax)


def softmin(x: jax.Array, axis: int = -1, *, dtype: Any = None) -> jax.Array:
    r"""Softmin, ``F.softmin(x, dim=axis, dtype=dtype)``: :math:`\mathrm{softmax}(-x)`.

    Normalizes along ``axis``. NaN, 0-d and empty ``x``, ``axis`` and ``dtype`` as in
    :func:`softmax`; like torch, ``x`` is negated before the cast, so a bool ``x`` is refused
    (``TypeError``).

    Args:
      x: float array; with a ``dtype``, an integer array is accepted too.
      axis: the axis that is normalized.
      dtype: if given, ``-x`` is cast to this floating dtype first and the result has it.

    Example:
      >>> activations.softmin(jnp.array([1.0, 1.0, 1.0, 1.0]))
      Array([0.25, 0.25, 0.25, 0.25], dtype=float32)
    """
    x = _softmax_input(x, dtype)
    if x.dtype == jnp.bool_:
        raise TypeError(
            "x must not be boolean for softmin: it negates x before the cast to dtype, as torch "
            "does, and a boolean array has no negation; cast it first"
        )
    return softmax(-x, axis, dtype=dtype)


@_elementwise
def glu(x: jax.Array, axis: int = -1) -> jax.Array:
    r"""Gated linear unit, ``F.glu(x, dim=axis)``: :math:`a \otimes \sigma(b)`.

    ``x = [a, b]`` is split in halves along ``axis``.

    The output has half the length of ``x`` along ``axis``. Same as ``jax.nn.glu``.

    Args:
      x: float array whose length along ``axis`` is even (otherwise ``ValueError``).
      axis: the axis that is split in halves.

    Example:
      >>> activations.glu(jnp.array([1.0, 2.0, 0.0, 0.0]))
      Array([0.5, 1. ], dtype=float32)
    """
    axis = _checks.normalize_axis(axis, x.ndim, "axis")
    if x.shape[axis] % 2:
        raise ValueError(
            f"glu halves x along axis={axis}, whose length {x.shape[axis]} is odd; "
            f"x has shape {x.shape}"
        )
    a, b = jnp.split(x, 2, axis)
    return a * jax.lax.logistic(b)


@_elementwise
def prelu(x: jax.Array, weight: jax.Array, axis: int = -1) -> jax.Array:
    r"""Parametric ReLU, ``F.prelu``: :math:`x` if :math:`x > 0` else :math:`w_c x`.

    ``weight`` holds one slope, or one per channel along ``axis``. **Channels are the last axis
    by default** (JAX channels-last); torch uses axis 1 (pass ``axis=1`` for NCHW data) and
    treats a 1-D input as a single channel. Derivative :math:`w_c` for :math:`x \le 0`
    (``prelu'(0) = w``, as torch) and 1 above; the gradient with respect to ``weight`` is the
    sum of the non-positive ``x`` of each channel. The result has ``x``'s dtype.

    Args:
      x: float array.
      weight: float array with 1 element or ``x.shape[axis]`` elements.
      axis: the channel axis.

    Example:
      >>> activations.prelu(jnp.array([[-2.0, 3.0], [1.0, -4.0]]), jnp.array([0.25, 0.5]))
      Array([[-0.5,  3. ],
             [ 1. , -2. ]], dtype=float32)
    """
    weight = _checks.as_float_array(weight, "weight")
    channels = x.shape[_checks.normalize_axis(axis, x.ndim, "axis")] if x.ndim else 1
    if weight.size == 1:
        weight = weight.reshape(())
    elif weight.ndim != 1 or weight.size != channels:
        raise ValueError(
            f"weight must have 1 element or one per channel; got weight of shape "
            f"{weight.shape} for x of shape {x.shape} with {channels} channel(s) on axis={axis}"
        )
    else:
        weight = jnp.expand_dims(weight, [d for d in range(x.ndim) if d != axis % x.ndim])
    # weight multiplies x only where x <= 0 (or NaN), so +inf puts no inf * 0 into its gradient.
    return jnp.where(x > 0, x, weight.astype(x.dtype) * jnp.where(x > 0, 0.0, x))


@_elementwise
def rrelu(
    x: jax.Array,
    lower: float = 1.0 / 8.0,
    upper: float = 1.0 / 3.0,
    *,
    key: jax.Array | None = None,
) -> jax.Array:
    r"""Randomized leaky ReLU, ``F.rrelu``: :math:`x` if :math:`x > 0` else :math:`a x`.

    Without ``key`` (torch's ``training=False``) the slope is :math:`a = (l + u)/2`, i.e.
    ``leaky_relu(x, (lower + upper) / 2)``. With a ``key`` (torch's ``training=True``) each
    element draws its own :math:`a \sim U(\mathrm{lower}, \mathrm{upper})` from
    ``jax.random.uniform``. Derivative 1 for :math:`x > 0` and :math:`a` for :math:`x \le 0`
    (torch's convention at 0 in both modes). At NaN the derivative is :math:`a` without a key and
    1 with one, as torch's two kernels give.

    Args:
      x: float array.
      lower, upper: slope bounds; ``lower > upper`` raises ``ValueError`` (as torch).
      key: a ``jax.random`` key for training mode, or ``None`` for the deterministic slope.

    Example:
      >>> activations.rrelu(jnp.array([-1.0, 2.0]), lower=0.25, upper=0.25)
      Array([-0.25,  2.  ], dtype=float32)
      >>> activations.rrelu(jnp.array([-1.0, 2.0]), key=jax.random.key(0)).shape
      (2,)
    """
    lower = _checks.check_real(lower, "lower", array_ok=True)
    upper = _checks.check_real(upper, "upper", array_ok=True)
    if isinstance(lower, float) and isinstance(upper, float) and lower > upper:
        raise ValueError(f"lower must be <= upper, got lower={lower} > upper={upper}")
    if key is None:
        return jnp.where(x > 0, x, x * ((lower + upper) / 2))
    slope = jax.random.uniform(key, x.shape, x.dtype, lower, upper)
    return jnp.where(x <= 0, x * slope, x)


NAMES: tuple[str, ...] = tuple(
    name for name in __all__ if name not in ("NAMES", "ELEMENTWISE", "get"))

# Valid hidden-layer activations: element-wise, and callable as ``f(x)`` with the defaults.
# Not here: softmax, log_softmax, softmin (normalise along an axis), glu (halves an axis),
# prelu (needs a learned weight) and threshold (its threshold and value have no default).
ELEMENTWISE: tuple[str, ...] = tuple(
    name for name in NAMES
    if name not in ("softmax", "log_softmax", "softmin", "glu", "prelu", "threshold"))

get = _checks.make_get(
    "activation",
    {name: globals()[name] for name in NAMES},
    aliases={"swish": "silu", "hard_silu": "hardswish"},
)
