"""Loss functions with ``torch.nn.functional`` names, arguments and reductions.

Every loss is a pure function of arrays, safe under ``jit``, ``vmap`` and ``grad``. Names,
argument names and defaults follow ``torch.nn.functional`` (torch 2.13) with three changes:

* ``dim`` is ``axis`` and **classes live on the last axis** (optax/NumPy layout): torch's
  ``(N, C, d1, ...)`` input is ``(N, d1, ..., C)`` here, with ``(N, d1, ...)`` targets.
* the deprecated ``size_average``/``reduce`` arguments are gone.
* ``ctc_loss`` is batch-major: ``log_probs`` is ``(N, T, C)`` (torch: ``(T, N, C)``).

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"`` with torch's exact meaning
(``"batchmean"`` too for :func:`kl_div`): see each docstring for what ``"mean"`` divides by.

Shapes, dtypes and static arguments are checked at trace time; a mistake raises ``ValueError`` or
``TypeError`` naming the argument and showing the shapes. Class-index targets are checked for
range when they are concrete; under ``jit`` an out-of-range label makes that element's loss NaN.
A hyperparameter of the wrong type (a string or ``None`` where a number goes) is a ``TypeError``.

Examples assume ``import jax.numpy as jnp`` and ``from jaxfund import losses``.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfund import _checks

__all__ = [
    "NAMES",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_embedding_loss",
    "cross_entropy",
    "ctc_loss",
    "dice_loss",
    "gaussian_nll_loss",
    "get",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "pairwise_distance",
    "poisson_nll_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------------------------
# Shared helpers


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    """Applies torch's ``"mean"`` (over all elements), ``"sum"`` or ``"none"`` reduction."""
    if reduction == "mean":
        return jnp.mean(loss)
    if reduction == "sum":
        return jnp.sum(loss)
    return loss


def _weighted_mean(loss: jax.Array, weight: jax.Array, reduction: str) -> jax.Array:
    """CE/NLL reduction: ``"mean"`` is ``Σ loss / Σ weight`` (NaN when every weight is 0)."""
    if reduction == "mean":
        return jnp.sum(loss) / jnp.sum(weight)
    return _reduce(loss, reduction)


def _check_reduction(reduction: Any, choices: tuple[str, ...] = _REDUCTIONS) -> str:
    return _checks.check_choice(reduction, "reduction", choices)


def _check_same_shape(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the same shape as {name_a}: got {name_a}.shape={a.shape} and "
            f"{name_b}.shape={b.shape}"
        )


def _broadcast_shapes(**arrays: Any) -> tuple[int, ...]:
    """The shape the named arrays (or shapes) broadcast to (NumPy rules, as torch); ``ValueError``
    naming them otherwise."""
    shapes = {k: tuple(getattr(a, "shape", a)) for k, a in arrays.items()}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        seen = ", ".join(f"{k}.shape={v}" for k, v in shapes.items())
        raise ValueError(f"{', '.join(arrays)} must broadcast together, got {seen}") from None


def _check_same_ndim(**arrays: jax.Array) -> None:
    """torch's rule for the margin-ranking and triplet losses: one rank, shapes broadcast."""
    if len({a.ndim for a in arrays.values()}) > 1:
        seen = ", ".join(f"{k}.shape={a.shape}" for k, a in arrays.items())
        raise ValueError(f"{', '.join(arrays)} must have the same number of dimensions, got {seen}")
    _broadcast_shapes(**arrays)


def _promoted(x: Any, name: str, like: jax.Array, *, boolean: bool = True) -> jax.Array:
    """``x`` cast to ``like``'s float dtype, as torch promotes a target, a second input or a weight
    of a float, integer or (``boolean``) bool dtype; other dtypes are a ``TypeError``."""
    x = _checks.as_array(x, name)
    kinds = (jnp.floating, jnp.integer, *((jnp.bool_,) if boolean else ()))
    if not any(jnp.issubdtype(x.dtype, k) for k in kinds):
        allowed = "floating-point, integer" + (" or bool" if boolean else "")
        raise TypeError(f"{name} must have a {allowed} dtype, got {x.dtype} with shape {x.shape}")
    return x.astype(like.dtype)


def _check_broadcast(w: jax.Array, shape: tuple[int, ...], name: str, to: str) -> None:
    try:
        out = np.broadcast_shapes(w.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(
            f"{name} with shape {w.shape} does not broadcast to {to}.shape={tuple(shape)}"
        )


def _optional_float(x: Any, name: str, like: jax.Array) -> jax.Array | None:
    return None if x is None else _checks.as_float_array(x, name).astype(like.dtype)


def _concrete(x: jax.Array) -> np.ndarray | None:
    """Returns ``x`` as a NumPy array when its values are known at trace time, else ``None``."""
    if isinstance(x, jax.core.Tracer):
        return None
    return np.asarray(x)


def _index_target(target: Any, name: str = "target") -> jax.Array:
    target = _checks.as_array(target, name)
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise TypeError(
            f"{name} holds class indices here and must have an integer dtype, got "
            f"{target.dtype} with shape {target.shape}; use {name}.astype(jnp.int32)"
        )
    return target


def _check_labels(target: jax.Array, num_classes: int, ignore_index: int | None) -> jax.Array:
    """Returns a mask of valid labels; raises ``ValueError`` on concrete out-of-range labels."""
    values = _concrete(target)
    if values is not None:
        bad = (values < 0) | (values >= num_classes)
        if ignore_index is not None:
            bad &= values != ignore_index
        if bad.any():
            extra = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
            raise ValueError(
                f"target has label(s) {sorted(set(values[bad].tolist()))[:8]} outside the valid "
                f"range [0, {num_classes}){extra}"
            )
    ok = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        ok = ok | (target == ignore_index)
    return ok


def _nan_unless(ok: jax.Array, dtype: Any) -> jax.Array:
    """0 where ``ok``, NaN elsewhere: added to a loss so bad labels cannot give a finite value."""
    return jnp.where(ok, 0.0, jnp.nan).astype(dtype)


def _abs(x: jax.Array) -> jax.Array:
    """``|x|`` whose derivative at 0 is ``sign(0) = 0``, as torch's ``l1_loss``."""
    return x * jnp.sign(x)


def _torch_sign(x: jax.Array) -> jax.Array:
    """torch's ``sign``/``sgn`` of a real array: ``(x > 0) - (x < 0)``, so 0 at NaN."""
    return (x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)


@jax.custom_jvp
def _l1(x: jax.Array) -> jax.Array:
    """``|x|`` as torch's ``l1_loss``: its derivative is torch's ``sign``, 0 at 0 and at NaN."""
    return jnp.abs(x)


@_l1.defjvp
def _l1_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return _l1(x), _torch_sign(x) * dx


@jax.custom_jvp
def _clamp_min0(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` as torch's ``clamp_min``: NaN stays NaN; derivative 1 where ``x >= 0`` (so at
    0), 0 below and at NaN."""
    return jnp.where(x < 0, jnp.zeros_like(x), x)


@_clamp_min0.defjvp
def _clamp_min0_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return _clamp_min0(x), jnp.where(x >= 0, dx, jnp.zeros_like(dx))


def _hinge(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` with derivative 0 at ``x == 0`` (torch's margin kernels test ``x > 0``, so a
    NaN term is dropped, as there)."""
    return jnp.where(x > 0, x, jnp.zeros_like(x))


# ----------------------------------------------------------------------------------------------
# Regression


def _pointwise_weighted(
    loss: jax.Array, weight: Any, input: jax.Array, reduction: str, normalize: bool
) -> jax.Array:
    """Torch 2.13's optional element ``weight`` for mse/l1/huber (same shape as ``input``)."""
    if weight is None:
        return _reduce(loss, reduction)
    w = _promoted(weight, "weight", input, boolean=False)
    _check_same_shape(input, w, "input", "weight")
    loss = loss * w
    if normalize:
        return _weighted_mean(loss, w, reduction)
    return _reduce(loss, reduction)


def _input_and_target(
    input: Any,
    target: Any,
    reduction: str,
    *,
    integer: bool = False,
    boolean: bool = False,
    broadcast: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """Checks a float ``input``, its ``target`` (cast to ``input``'s dtype) and ``reduction``.

    As torch, per loss: ``integer``/``boolean`` targets are promoted instead of refused, and with
    ``broadcast`` the two broadcast together instead of having one shape.
    """
    input = _checks.as_float_array(input, "input")
    if integer:
        target = _promoted(target, "target", input, boolean=boolean)
    else:
        target = _checks.as_float_array(target, "target").astype(input.dtype)
    if broadcast:
        _broadcast_shapes(input=input, target=target)
    else:
        _check_same_shape(input, target, "input", "target")
    _check_reduction(reduction)
    return input, target


def _where_small(d: jax.Array, bound: Any, diff: jax.Array) -> jax.Array:
    """``diff`` where ``d < bound``, else 0: the quadratic branch of huber/smooth L1 must not see
    an infinite ``diff``, whose zero-weighted gradient would be NaN (torch's is ``±bound``)."""
    return jnp.where(d < bound, diff, jnp.zeros_like(diff))


def mse_loss(
    input: jax.Array, target: jax.Array, reduction: str = "mean", weight: jax.Array | None = None
) -> jax.Array:
    """Mean squared error ``l = w·(x - y)²`` (``torch.nn.functional.mse_loss``).

    Args:
      input, target: float arrays of the same shape; an integer or bool ``target`` is promoted
        to ``input``'s dtype (torch). Unlike torch, which warns and broadcasts a target of
        another shape, that is a ``ValueError`` here (deliberate): ``(N, 1)`` predictions
        against ``(N,)`` targets would silently give an ``(N, N)`` loss. The same holds for
        :func:`l1_loss`, :func:`huber_loss` and :func:`smooth_l1_loss`.
      reduction: ``"mean"`` (``Σ w·l / Σ w``; the plain mean when ``weight`` is None),
        ``"sum"`` or ``"none"``.
      weight: optional per-element weight of ``input``'s shape (torch 2.13's ``weight``).

    Returns the reduced loss. optax: ``squared_error(x, y)`` is the unreduced value;
    ``optax.l2_loss`` is **half** of it.

    Example:
      >>> losses.mse_loss(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0]))
      Array(2., dtype=float32)
    """
    input, target = _input_and_target(input, target, reduction, integer=True, boolean=True)
    return _pointwise_weighted(jnp.square(input - target), weight, input, reduction, True)


def l1_loss(
    input: jax.Array, target: jax.Array, reduction: str = "mean", weight: jax.Array | None = None
) -> jax.Array:
    """Mean absolute error ``l = w·|x - y|`` (``torch.nn.functional.l1_loss``).

    The derivative at ``x == y`` is 0 (torch's ``sign``, also 0 at NaN). ``"mean"`` is
    ``Σ w·l / Σ w`` (plain mean without ``weight``). An integer target is promoted; shapes must
    match (see :func:`mse_loss`). optax has no L1 loss.

    Example:
      >>> losses.l1_loss(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0]))
      Array(1., dtype=float32)
    """
    input, target = _input_and_target(input, target, reduction, integer=True)
    return _pointwise_weighted(_l1(input - target), weight, input, reduction, True)


def huber_loss(
    input: jax.Array,
    target: jax.Array,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: jax.Array | None = None,
) -> jax.Array:
    """Huber loss (``torch.nn.functional.huber_loss``).

    ``l = 0.5·d²`` if ``|d| < delta`` else ``delta·(|d| - 0.5·delta)``, with ``d = x - y``.
    ``delta > 0``. With ``weight``, ``"mean"`` is ``mean(w·l)`` (torch 2.13; unlike mse/l1 it is
    not normalised by ``Σ w``). Equals ``optax.losses.huber_loss(x, y, delta=delta)`` unreduced.

    Example:
      >>> losses.huber_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none")
      Array([0.125, 2.5  ], dtype=float32)
    """
    input, target = _input_and_target(input, target, reduction, integer=True, boolean=True)
    _checks.check_real(delta, "delta", low=0.0, low_open=True, array_ok=True)
    d = _abs(input - target)
    quadratic = _where_small(d, delta, input - target)
    loss = jnp.where(d < delta, 0.5 * jnp.square(quadratic), delta * (d - 0.5 * delta))
    return _pointwise_weighted(loss, weight, input, reduction, False)


def smooth_l1_loss(
    input: jax.Array, target: jax.Array, reduction: str = "mean", beta: float = 1.0
) -> jax.Array:
    """Smooth L1 loss (``torch.nn.functional.smooth_l1_loss``).

    ``l = 0.5·d²/beta`` if ``|d| < beta`` else ``|d| - 0.5·beta``; ``beta = 0`` is exactly L1.
    ``beta >= 0``. Equals ``huber_loss(..., delta=beta) / beta``.

    Example:
      >>> losses.smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none")
      Array([0.125, 2.5  ], dtype=float32)
    """
    input, target = _input_and_target(input, target, reduction, integer=True, boolean=True)
    beta = _checks.check_real(beta, "beta", low=0.0)
    if beta == 0:
        return _reduce(_l1(input - target), reduction)
    d = _abs(input - target)
    quadratic = _where_small(d, beta, input - target)
    loss = jnp.where(d < beta, 0.5 * jnp.square(quadratic) / beta, d - 0.5 * beta)
    return _reduce(loss, reduction)


def poisson_nll_loss(
    input: jax.Array,
    target: jax.Array,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> jax.Array:
    """Poisson negative log-likelihood (``torch.nn.functional.poisson_nll_loss``).

    ``l = exp(x) - y·x`` when ``log_input`` (``x`` is the log-rate), else ``x - y·log(x + eps)``.
    ``full`` adds Stirling's term ``y·log y - y + 0.5·log(2πy)`` except where ``y <= 1`` (so a NaN
    target gives NaN, as torch). ``input`` and ``target`` broadcast together; an integer or bool
    target is promoted to ``input``'s dtype. ``"mean"`` averages over all (broadcast) elements.

    Example:
      >>> losses.poisson_nll_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 3.0]))
      Array(1., dtype=float32)
    """
    input, target = _input_and_target(
        input, target, reduction, integer=True, boolean=True, broadcast=True
    )
    _checks.check_real(eps, "eps", low=0.0, array_ok=True)
    if log_input:
        loss = jnp.exp(input) - target * input
    else:
        loss = input - target * jnp.log(input + eps)
    if full:
        small = target <= 1
        safe = jnp.where(small, jnp.ones_like(target), target)
        stirling = safe * jnp.log(safe) - safe + 0.5 * jnp.log(2 * math.pi * safe)
        loss = loss + jnp.where(small, jnp.zeros_like(stirling), stirling)
    return _reduce(loss, reduction)


def gaussian_nll_loss(
    input: jax.Array,
    target: jax.Array,
    var: jax.Array | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> jax.Array:
    """Gaussian negative log-likelihood (``torch.nn.functional.gaussian_nll_loss``).

    ``l = 0.5·(log v + (x - y)²/v)`` (+ ``0.5·log 2π`` when ``full``), ``v = max(var, eps)``.
    As in torch the clamp is invisible to the gradient (straight-through) and NaN stays NaN.
    ``target`` (float, or integer promoted to ``input``'s dtype) broadcasts with ``input``, e.g.
    ``(N, 1)`` or ``(D,)`` against ``(N, D)``. ``var`` is a float, an array of ``input``'s shape, of
    ``input.shape[:-1]`` (one fewer dim, homoscedastic over the last axis), or of ``input``'s rank
    where the dimensions that differ from ``input``'s are one dimension of size 1 (torch's rule).
    Negative ``var`` raises when concrete. ``"mean"`` averages over all (broadcast) elements.

    Example:
      >>> losses.gaussian_nll_loss(jnp.array([1.0, 3.0]), jnp.array([1.0, 1.0]), 1.0)
      Array(1., dtype=float32)
    """
    input, target = _input_and_target(input, target, reduction, integer=True, broadcast=True)
    if isinstance(var, numbers.Real):
        var = jnp.full_like(input, _checks.check_real(var, "var", low=0.0))
    var = _checks.as_float_array(var, "var").astype(input.dtype)
    if var.shape != input.shape:
        if var.shape == input.shape[:-1]:
            var = var[..., None]
        elif not (
            var.ndim == input.ndim
            and sum(v for v, x in zip(var.shape, input.shape) if v != x) == 1
        ):
            raise ValueError(
                f"var has shape {var.shape}; expected input.shape={input.shape}, "
                f"input.shape[:-1]={input.shape[:-1]}, or input's shape with one dimension 1"
            )
    _broadcast_shapes(input=input, target=target, var=var)
    values = _concrete(var)
    if values is not None and (values < 0).any():
        raise ValueError("var has negative entries")
    _checks.check_real(eps, "eps", low=0.0, array_ok=True)
    v = _clamp_straight_through(var, eps)
    loss = 0.5 * (jnp.log(v) + jnp.square(input - target) / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


@jax.custom_jvp
def _clamp_straight_through(x: jax.Array, low: Any) -> jax.Array:
    """``max(x, low)`` (NaN stays NaN) whose derivative in ``x`` is 1: torch clamps ``var`` in
    place under ``no_grad``."""
    return jnp.maximum(x, low)


@_clamp_straight_through.defjvp
def _clamp_straight_through_jvp(primals, tangents):
    return _clamp_straight_through(*primals), tangents[0]


# ----------------------------------------------------------------------------------------------
# Binary classification


def _clamped_log(x: jax.Array) -> jax.Array:
    return jnp.maximum(jnp.log(x), -100.0)


# torch clamps p(1-p) in the BCE backward at the float32 value of 1e-12 in every dtype.
_BCE_EPS = float(np.float32(1e-12))


@jax.custom_jvp
def _bce(p: jax.Array, y: jax.Array) -> jax.Array:
    return -(y * _clamped_log(p) + (1 - y) * _clamped_log(1 - p))


@_bce.defjvp
def _bce_jvp(primals, tangents):
    p, y = primals
    dp, dy = tangents
    out = _bce(p, y)
    grad_p = (p - y) / jnp.maximum(p * (1 - p), _BCE_EPS)
    grad_y = jnp.log1p(-p) - jnp.log(p)
    return out, grad_p * dp + grad_y * dy


def binary_cross_entropy(
    input: jax.Array,
    target: jax.Array,
    weight: jax.Array | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Binary cross-entropy on probabilities (``torch.nn.functional.binary_cross_entropy``).

    ``l = -w·(y·max(log p, -100) + (1 - y)·max(log(1 - p), -100))``. As torch, the gradient in
    ``p`` is ``w·(p - y) / max(p(1 - p), 1e-12)`` (finite at p ∈ {0, 1}: p=1, y=0 gives loss
    ``100·w`` and gradient ``1e12·w``), and in ``y`` it is ``w·(log(1 - p) - log p)``.

    Args:
      input: probabilities ``p`` in [0, 1]; target: same shape, in [0, 1] (soft labels allowed).
      weight: broadcastable to ``input``. ``"mean"`` is ``mean(w·l)``, not ``/Σ w``.

    optax has no BCE on probabilities (``sigmoid_binary_cross_entropy`` takes logits).

    Example:
      >>> losses.binary_cross_entropy(jnp.array([1.0]), jnp.array([0.0]))  # log clamped at -100
      Array(100., dtype=float32)
      >>> round(float(losses.binary_cross_entropy(jnp.array([0.5]), jnp.array([1.0]))), 4)
      0.6931
    """
    input, target = _input_and_target(input, target, reduction)
    loss = _bce(input, target)
    if weight is not None:
        w = _promoted(weight, "weight", input, boolean=False)
        _check_broadcast(w, input.shape, "weight", "input")
        loss = loss * w
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input: jax.Array,
    target: jax.Array,
    weight: jax.Array | None = None,
    reduction: str = "mean",
    pos_weight: jax.Array | None = None,
) -> jax.Array:
    """Binary cross-entropy on logits (``torch.nn.functional.binary_cross_entropy_with_logits``).

    ``l = -w·(pw·y·log σ(x) + (1 - y)·log σ(-x))``, computed as
    ``(1 - y)·x - (1 + (pw - 1)·y)·log σ(x)`` with ``log_sigmoid`` (finite for any finite x).
    ``pos_weight`` broadcasts over the last (class) axis, ``weight`` to ``input``. ``"mean"``
    averages over all elements. With ``pw = w = 1`` it equals
    ``optax.losses.sigmoid_binary_cross_entropy`` (which has no ``weight``/``pos_weight``).

    Example:
      >>> loss = losses.binary_cross_entropy_with_logits(jnp.array([0.0]), jnp.array([1.0]))
      >>> round(float(loss), 4)
      0.6931
      >>> losses.binary_cross_entropy_with_logits(jnp.array([100.0]), jnp.array([0.0]))
      Array(100., dtype=float32)
    """
    input, target = _input_and_target(input, target, reduction)
    log_sig = jax.nn.log_sigmoid(input)
    if pos_weight is None:
        loss = (1 - target) * input - log_sig
    else:
        pw = _promoted(pos_weight, "pos_weight", input, boolean=False)
        _check_broadcast(pw, input.shape, "pos_weight", "input")
        loss = (1 - target) * input - (1 + (pw - 1) * target) * log_sig
    if weight is not None:
        w = _promoted(weight, "weight", input, boolean=False)
        _check_broadcast(w, input.shape, "weight", "input")
        loss = loss * w
    return _reduce(loss, reduction)


def soft_margin_loss(input: jax.Array, target: jax.Array, reduction: str = "mean") -> jax.Array:
    """Two-class logistic loss ``l = log(1 + exp(-y·x))`` (``F.soft_margin_loss``), y ∈ {-1, 1}.

    Computed as ``softplus(-y·x)``: finite for any finite x, where torch's ``log1p(exp(·))``
    overflows to ``inf`` once ``-y·x`` exceeds ~88 (f32) or ~709 (f64); for the same reason the
    gradient at ``-y·x = +inf`` is its limit ``-y`` where torch's is NaN. ``target`` (float,
    integer or bool, promoted to ``input``'s dtype) broadcasts to ``input``'s shape.

    Example:
      >>> round(float(losses.soft_margin_loss(jnp.array([0.0, 100.0]), jnp.array([1.0, 1.0]))), 4)
      0.3466
    """
    input = _checks.as_float_array(input, "input")
    target = _promoted(target, "target", input)
    _check_broadcast(target, input.shape, "target", "input")
    _check_reduction(reduction)
    return _reduce(jax.nn.softplus(-target * input), reduction)


def multilabel_soft_margin_loss(
    input: jax.Array,
    target: jax.Array,
    weight: jax.Array | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Multi-label one-versus-all logistic loss (``F.multilabel_soft_margin_loss``).

    ``l_n = -(1/C)·Σ_c w_c·(y_c·log σ(x_c) + (1 - y_c)·log σ(-x_c))`` over the last axis (C
    classes), with 0/1 (or soft) targets; an integer target is promoted to ``input``'s dtype.
    ``input``, ``target`` and ``weight`` broadcast together (the sum is over ``input``'s last
    axis, as torch). ``"mean"`` averages ``l_n`` over the remaining (batch) elements.

    Example:
      >>> loss = losses.multilabel_soft_margin_loss(jnp.zeros((1, 3)), jnp.array([[1.0, 0.0, 1.0]]))
      >>> round(float(loss), 4)
      0.6931
    """
    input, target = _input_and_target(input, target, reduction, integer=True, broadcast=True)
    if input.ndim == 0:
        raise ValueError("input must have a class axis (at least 1 dimension), got a scalar")
    loss = -(target * jax.nn.log_sigmoid(input) + (1 - target) * jax.nn.log_sigmoid(-input))
    if weight is not None:
        w = _promoted(weight, "weight", input, boolean=False)
        _broadcast_shapes(input=input, target=target, weight=w)
        loss = loss * w
    return _reduce(jnp.sum(loss, axis=input.ndim - 1) / input.shape[-1], reduction)


def sigmoid_focal_loss(
    inputs: jax.Array,
    targets: jax.Array,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> jax.Array:
    """Focal loss on logits (``torchvision.ops.sigmoid_focal_loss``; note ``reduction="none"``).

    ``l = α_t·(1 - p_t)^γ·BCE_logits(x, y)`` with ``p = σ(x)``, ``p_t = p·y + (1 - p)(1 - y)``,
    ``α_t = α·y + (1 - α)(1 - y)``; a negative ``alpha`` disables the α weighting. ``gamma >= 0``.
    optax's ``sigmoid_focal_loss`` defaults to ``alpha=None`` (no weighting); with the same
    alpha the values agree.

    Example:
      >>> losses.sigmoid_focal_loss(jnp.array([100.0, -100.0]), jnp.array([1.0, 0.0]))
      Array([0., 0.], dtype=float32)
      >>> loss = losses.sigmoid_focal_loss(jnp.array([0.0]), jnp.array([1.0]), alpha=-1.0)
      >>> round(float(loss[0]), 4)
      0.1733
    """
    inputs, targets = _input_and_target(inputs, targets, reduction)
    _checks.check_real(gamma, "gamma", low=0.0, array_ok=True)
    alpha = _checks.check_real(alpha, "alpha")
    p = jax.nn.sigmoid(inputs)
    ce = (1 - targets) * inputs - jax.nn.log_sigmoid(inputs)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------------------------
# Multi-class classification


def _class_weight(weight: Any, num_classes: int, like: jax.Array) -> jax.Array | None:
    w = _optional_float(weight, "weight", like)
    if w is not None and w.shape != (num_classes,):
        raise ValueError(
            f"weight must have shape ({num_classes},), one entry per class, got {w.shape}"
        )
    return w


def _pick(logp: jax.Array, target: jax.Array, valid: jax.Array) -> jax.Array:
    """``logp[..., target]``; NaN where ``valid`` is False."""
    safe = jnp.where(valid, target, 0)
    picked = jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return jnp.where(valid, picked, jnp.nan)


def _nll_from_logp(
    logp: jax.Array,
    target: jax.Array,
    weight: jax.Array | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float = 0.0,
    pick: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Index-target NLL (+ torch's label smoothing) on class-last log-probabilities.

    ``pick(target, valid)`` returns ``logp[..., target]`` (NaN where not ``valid``); by default
    it gathers from ``logp``.
    """
    num_classes = logp.shape[-1]
    if target.shape != logp.shape[:-1]:
        raise ValueError(
            f"target with class indices must have the input's shape without the class axis: "
            f"input.shape={logp.shape} (classes last) needs target.shape={logp.shape[:-1]}, "
            f"got {target.shape}"
        )
    target = _index_target(target)
    if num_classes == 0:
        if target.size:
            raise ValueError(
                f"input has no classes (a class axis of size 0), so no label in target "
                f"(shape {target.shape}) is valid"
            )
        empty = jnp.zeros(target.shape, logp.dtype)
        return _weighted_mean(empty, empty, reduction)
    ok = _check_labels(target, num_classes, ignore_index)
    keep = target != ignore_index
    in_range = ok & keep
    nan_if_bad = _nan_unless(ok, logp.dtype)
    w_y = jnp.ones_like(logp[..., 0]) if weight is None else weight[jnp.where(in_range, target, 0)]
    w_y = jnp.where(keep, w_y, 0.0) + nan_if_bad
    picked = _pick(logp, target, in_range) if pick is None else pick(target, in_range)
    nll = -jnp.where(keep, picked, 0.0)
    loss = w_y * nll
    if label_smoothing > 0:
        wlogp = logp if weight is None else logp * weight
        smooth = -jnp.where(keep, jnp.sum(wlogp, axis=-1), 0.0)
        loss = (1 - label_smoothing) * loss + (label_smoothing / num_classes) * smooth
    return _weighted_mean(loss, w_y, reduction)


def _class_last(input: jax.Array, axis: int) -> jax.Array:
    if input.ndim == 0:
        raise ValueError("input must have a class axis (at least 1 dimension), got a scalar")
    return jnp.moveaxis(input, _checks.normalize_axis(axis, input.ndim), -1)


def cross_entropy(
    input: jax.Array,
    target: jax.Array,
    weight: jax.Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """Softmax cross-entropy on logits (``torch.nn.functional.cross_entropy``).

    Input is ``(..., C)`` logits (classes on ``axis``, default last: ``(N, d1, ..., C)`` or
    unbatched ``(C,)``). Two kinds of target:

    * **class indices**, integer, shape = input's without the class axis:
      ``l_n = -w_{y_n}·log_softmax(x_n)[y_n]``; ``ignore_index`` elements give 0 and drop out
      of the mean. ``"mean"`` is ``Σ l_n / Σ w_{y_n}`` over non-ignored n (NaN if all are
      ignored, as torch). With ``label_smoothing=ε``:
      ``l_n = (1-ε)·w_{y_n}·nll_n + (ε/C)·(-Σ_c w_c·logp_{n,c})``, same denominator.
    * **probabilities**, float, same shape as input: ``l_n = -Σ_c w_c·y'_{n,c}·logp_{n,c}``
      with ``y' = (1-ε)·y + ε/C``; ``"mean"`` divides by the number of rows (not ``Σ w``).

    Out-of-range labels raise ``ValueError`` when concrete; under ``jit`` they give NaN.

    optax: ``softmax_cross_entropy_with_integer_labels`` (no weight/ignore_index/smoothing;
    label -100 gives NaN and -1 silently wraps to the last class) and ``softmax_cross_entropy``
    (probability targets) agree without weights after ``.mean()``.

    Example:
      >>> logits = jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> round(float(losses.cross_entropy(logits, jnp.array([0, 1]))), 4)
      0.6931
      >>> round(float(losses.cross_entropy(logits, jnp.array([0, -100]))), 4)  # mean of 1 row
      0.6931
    """
    input = _checks.as_float_array(input, "input")
    _check_reduction(reduction)
    label_smoothing = _checks.check_real(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    ignore_index = _checks.check_int(ignore_index, "ignore_index")
    logits = _class_last(input, axis)
    logp = jax.nn.log_softmax(logits, axis=-1)
    num_classes = logits.shape[-1]
    weight = _class_weight(weight, num_classes, input)
    target = _checks.as_array(target, "target")
    if target.shape == input.shape:
        if not jnp.issubdtype(target.dtype, jnp.floating):
            raise TypeError(
                f"target has input's shape {target.shape}, so it holds class probabilities "
                f"and must be floating point, got {target.dtype}"
            )
        if ignore_index >= 0:
            raise ValueError("ignore_index is not supported with probability targets")
        probs = _class_last(target.astype(input.dtype), axis)
        if label_smoothing > 0:
            probs = (1 - label_smoothing) * probs + label_smoothing / num_classes
        wlogp = logp if weight is None else logp * weight
        loss = -jnp.sum(probs * wlogp, axis=-1)
        if reduction == "mean" and num_classes == 0:  # torch divides by input.size / C = 0 / 0
            return jnp.full((), jnp.nan, loss.dtype)
        return _reduce(loss, reduction)
    def pick(target: jax.Array, valid: jax.Array) -> jax.Array:
        # ``logp[target]`` with log_softmax's own ops, ``(logits[target] - max) - lse``: it
        # gathers from ``logits`` and never materialises ``logp``, one pass fewer over the (N, C)
        # array forward and backward (same values).
        row_max = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
        lse = jnp.log(jnp.sum(jnp.exp(logits - row_max[..., None]), axis=-1))
        return (_pick(logits, target, valid) - row_max) - lse

    return _nll_from_logp(logp, target, weight, ignore_index, reduction, label_smoothing, pick)


def nll_loss(
    input: jax.Array,
    target: jax.Array,
    weight: jax.Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    axis: int = -1,
) -> jax.Array:
    """Negative log-likelihood on log-probabilities (``torch.nn.functional.nll_loss``).

    ``l_n = -w_{y_n}·input_n[y_n]`` with integer targets of input's shape without the class
    axis (default last). ``"mean"`` is ``Σ l_n / Σ w_{y_n}`` over non-ignored n (NaN if all are
    ignored). Out-of-range labels raise when concrete and give NaN under ``jit``. optax has no
    NLL loss.

    Example:
      >>> losses.nll_loss(jnp.array([[-1.0, -2.0], [-3.0, -4.0]]), jnp.array([0, 1]))
      Array(2.5, dtype=float32)
    """
    input = _checks.as_float_array(input, "input")
    _check_reduction(reduction)
    ignore_index = _checks.check_int(ignore_index, "ignore_index")
    logp = _class_last(input, axis)
    weight = _class_weight(weight, logp.shape[-1], input)
    target = _checks.as_array(target, "target")
    return _nll_from_logp(logp, target, weight, ignore_index, reduction)


def _margin_rows(input: jax.Array) -> jax.Array:
    """torch's multi-class margin input as ``(N, C)`` rows: an ``(N, C)`` matrix with ``C >= 1``
    (``N`` may be 0), a non-empty ``(C,)`` vector or a scalar (one class)."""
    if input.ndim > 2 or input.shape[-1:] == (0,):
        raise ValueError(
            f"input must be (N, C) with C >= 1, a non-empty (C,) vector or a scalar, "
            f"got shape {input.shape}"
        )
    return input if input.ndim == 2 else input.reshape(1, input.size)


def multi_margin_loss(
    input: jax.Array,
    target: jax.Array,
    p: int = 1,
    margin: float = 1.0,
    weight: jax.Array | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """Multi-class hinge loss (``torch.nn.functional.multi_margin_loss``).

    ``l_n = (1/C)·Σ_{i≠y} w_y·max(0, margin - x_y + x_i)^p`` for ``(N, C)`` input (a ``(C,)``
    vector or a scalar is one row) and integer targets with N elements, of shape ``(N,)`` or
    ``()`` (``"none"`` returns the target's shape). ``p`` ∈ {1, 2}; ``margin`` any real. As in
    torch the gradient at the hinge is 0 and a term that is NaN (not > 0) is dropped.
    ``"mean"`` averages over N (not weighted); on an empty batch it is NaN and ``"sum"`` is 0
    (torch 2.13 returns uninitialised memory for both).
    optax's ``multiclass_hinge_loss`` is a different (Crammer-Singer, max over i) loss.

    Example:
      >>> losses.multi_margin_loss(jnp.array([[2.0, 0.0, 1.5, 1.5]]), jnp.array([0]))
      Array(0.25, dtype=float32)
    """
    input = _checks.as_float_array(input, "input")
    target = _index_target(target)
    _check_reduction(reduction)
    p = _checks.check_int(p, "p", low=1, high=2)
    _checks.check_real(margin, "margin", array_ok=True)
    rows = _margin_rows(input)
    n, num_classes = rows.shape
    if target.ndim > 1 or target.size != n:
        raise ValueError(
            f"target must have shape ({n},) or, for one row, (): {n} label(s) for "
            f"input.shape={input.shape}, got target.shape={target.shape}"
        )
    labels = target.reshape(n)
    weight = _class_weight(weight, num_classes, input)
    ok = _check_labels(labels, num_classes, None)
    z = margin - _pick(rows, labels, ok)[:, None] + rows
    h = _hinge(z)
    if p == 2:
        h = h * h
    if weight is not None:
        h = jnp.where(z > 0, h * weight[jnp.where(ok, labels, 0)][:, None], 0.0)
    not_y = jnp.arange(num_classes) != labels[:, None]
    loss = jnp.sum(jnp.where(not_y, h, 0.0), axis=-1) / num_classes + _nan_unless(ok, h.dtype)
    return _reduce(loss.reshape(target.shape), reduction)


def multilabel_margin_loss(
    input: jax.Array, target: jax.Array, reduction: str = "mean"
) -> jax.Array:
    """Multi-label hinge loss (``torch.nn.functional.multilabel_margin_loss``).

    ``target`` (integer, same shape as input ``(N, C)``; C elements for a ``(C,)`` vector or a
    scalar input) lists the positive classes and ends at the first ``-1``.
    ``l_n = Σ_j Σ_{i ∉ targets} max(0, 1 - (x_{y_j} - x_i)) / C``. As in torch the gradient at
    the hinge is 0 and a NaN term is dropped. ``"mean"`` averages over N; on an empty batch it
    is NaN (torch 2.13 returns uninitialised memory).

    Example:
      >>> target = jnp.array([[0, -1, 1, 1]])  # class 0; the list ends at -1
      >>> losses.multilabel_margin_loss(jnp.array([[2.0, 0.0, 1.5, 0.5]]), target)
      Array(0.125, dtype=float32)
    """
    input = _checks.as_float_array(input, "input")
    target = _index_target(target)
    _check_reduction(reduction)
    rows = _margin_rows(input)
    num_classes = rows.shape[1]
    if input.ndim == 2:
        _check_same_shape(input, target, "input", "target")
    elif target.ndim > 1 or target.size != num_classes:
        raise ValueError(
            f"target must have {num_classes} element(s) in at most 1 dimension for "
            f"input.shape={input.shape}, got target.shape={target.shape}"
        )
    out_shape = input.shape[:-1] if input.ndim == 2 else ()
    input, target = rows, target.reshape(rows.shape)
    listed = jnp.cumprod(target != -1, axis=-1).astype(bool)
    ok = _check_labels(jnp.where(listed, target, 0), num_classes, None)
    safe = jnp.where(listed & ok, target, 0)
    is_target = jnp.any(
        listed[..., :, None] & (safe[..., :, None] == jnp.arange(num_classes)), axis=-2
    )
    x_y = jnp.take_along_axis(input, safe, axis=-1)
    z = _hinge(1 - x_y[..., :, None] + input[..., None, :])
    pair = listed[..., :, None] & ~is_target[..., None, :]
    loss = jnp.sum(jnp.where(pair, z, 0.0), axis=(-2, -1)) / num_classes
    loss = loss + _nan_unless(jnp.all(ok | ~listed, axis=-1), loss.dtype)
    return _reduce(loss.reshape(out_shape), reduction)


def kl_div(
    input: jax.Array, target: jax.Array, reduction: str = "mean", log_target: bool = False
) -> jax.Array:
    """Kullback-Leibler divergence with log-prob input (``torch.nn.functional.kl_div``).

    Pointwise ``y·(log y - x)`` (0 where ``y = 0``), or ``exp(t)·(t - x)`` with ``log_target``.
    ``input`` and ``target`` broadcast together. ``"mean"`` divides the sum by the **number of
    elements** (torch's default, which it warns about); ``"batchmean"`` divides by
    ``input.shape[0]`` (the mathematically right KL mean).
    optax ``kl_divergence(x, y)`` sums over the last axis: its ``.mean()`` is ``"batchmean"``
    for 2-D input; ``kl_divergence_with_log_targets`` is ``log_target=True``.

    Example:
      >>> p, q = jnp.array([[0.25, 0.75]]), jnp.array([[0.5, 0.5]])
      >>> round(float(losses.kl_div(jnp.log(p), q, reduction="batchmean")), 4)
      0.1438
    """
    input, target = _input_and_target(input, target, "none", broadcast=True)
    _check_reduction(reduction, (*_REDUCTIONS, "batchmean"))
    if log_target:
        loss = jnp.exp(target) * (target - input)
    else:
        loss = jax.scipy.special.xlogy(target, target) - target * input
    if reduction == "batchmean":
        return jnp.sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------------------------
# Embeddings and metric learning


def pairwise_distance(
    x1: jax.Array, x2: jax.Array, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> jax.Array:
    """``‖x1 - x2 + eps‖_p`` over the last axis (``torch.nn.functional.pairwise_distance``).

    ``x1`` and ``x2`` broadcast together (``x2`` may be an integer array, promoted to ``x1``'s
    dtype); a scalar is a vector of one element. ``p`` is any real, as torch: ``(Σ|d|^p)^(1/p)``,
    with ``p = 0`` the number of nonzero ``d``, ``p = ±inf`` the largest/smallest ``|d|``. The
    gradient is torch's (0 where ``d == 0`` for ``p < 1``, 0 at a zero distance, split between
    ties for ``p = ±inf``, 0 for ``p = 0``).

    Example:
      >>> losses.pairwise_distance(jnp.array([[3.0, 0.0]]), jnp.array([[0.0, 4.0]]), eps=0.0)
      Array([5.], dtype=float32)
    """
    x1 = _checks.as_float_array(x1, "x1")
    x2 = _promoted(x2, "x2", x1, boolean=False)
    _broadcast_shapes(x1=x1, x2=x2)
    p = _checks.check_real(p, "p")
    _checks.check_real(eps, "eps", array_ok=True)
    return _pairwise_distance(x1, x2, p, eps, keepdim)


def _pairwise_distance(
    x1: jax.Array, x2: jax.Array, p: float, eps: float, keepdim: bool = False
) -> jax.Array:
    d = x1 - x2 + eps
    if d.ndim == 0:
        return _pnorm(d[None], p, False)
    if p == 1:
        return jnp.sum(_l1(d), axis=-1, keepdims=keepdim)
    return _pnorm(d, p, keepdim)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _pnorm(d: jax.Array, p: float, keepdim: bool) -> jax.Array:
    """``‖d‖_p`` over the last axis for any real ``p``, as ``torch.linalg.vector_norm``."""
    a = jnp.abs(d)
    if p == 0:
        return jnp.sum(a != 0, axis=-1, keepdims=keepdim).astype(d.dtype)
    if p == 2:
        return jnp.sqrt(jnp.sum(a * a, axis=-1, keepdims=keepdim))
    if math.isinf(p):
        return (jnp.max if p > 0 else jnp.min)(a, axis=-1, keepdims=keepdim)
    return jnp.sum(a**p, axis=-1, keepdims=keepdim) ** (1.0 / p)


@_pnorm.defjvp
def _pnorm_jvp(p, keepdim, primals, tangents):
    """torch's ``norm_backward``, term by term, as the partial derivatives ``w`` of the norm."""
    (d,), (dd,) = primals, tangents
    norm = _pnorm(d, p, True)
    a, sign, zero = jnp.abs(d), _torch_sign(d), jnp.zeros_like(d)
    if p == 0:
        w = zero
    elif p == 2:
        w = jnp.where(norm == 0, zero, d / norm)
    elif math.isinf(p):
        mask = ((a == norm) | jnp.isnan(a)).astype(d.dtype)
        w = sign * mask / jnp.sum(mask, axis=-1, keepdims=True)
    elif p < 1:
        w = sign * jnp.where(d == 0, zero, a ** (p - 1)) * norm ** (1 - p)
    elif p < 2:
        w = jnp.where(norm == 0, zero, sign * a ** (p - 1) / norm ** (p - 1))
    else:
        w = jnp.where(norm == 0, zero, d * a ** (p - 2) / norm ** (p - 1))
    out = norm if keepdim else norm[..., 0]
    return out, jnp.sum(w * dd, axis=-1, keepdims=keepdim)


def _triplet(
    anchor: Any,
    positive: Any,
    negative: Any,
    distance: Callable[[jax.Array, jax.Array], jax.Array],
    margin: float,
    swap: bool,
    reduction: str,
) -> jax.Array:
    anchor = _checks.as_float_array(anchor, "anchor")
    positive = _promoted(positive, "positive", anchor, boolean=False)
    negative = _promoted(negative, "negative", anchor, boolean=False)
    if len({anchor.ndim, positive.ndim, negative.ndim}) > 1:
        raise ValueError(
            f"anchor, positive and negative must have the same number of dimensions, got "
            f"{anchor.shape}, {positive.shape} and {negative.shape}"
        )
    _check_reduction(reduction)
    _checks.check_real(margin, "margin", low=0.0, low_open=True, array_ok=True)
    d_pos = distance(anchor, positive)
    d_neg = distance(anchor, negative)
    if swap:
        d_neg = jnp.minimum(d_neg, distance(positive, negative))
    return _reduce(_clamp_min0(margin + d_pos - d_neg), reduction)


def triplet_margin_loss(
    anchor: jax.Array,
    positive: jax.Array,
    negative: jax.Array,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
) -> jax.Array:
    """Triplet margin loss (``torch.nn.functional.triplet_margin_loss``).

    ``l = max(d(a, pos) - d(a, neg) + margin, 0)`` with ``d = pairwise_distance(·, ·, p, eps)``
    (eps is added to the difference); ``swap`` uses ``min(d(a, neg), d(pos, neg))``.
    ``margin > 0`` (torch); ``p`` any real (see :func:`pairwise_distance`). The three inputs
    have one rank and broadcast together (``(N, D)``, ``(D,)``, ...; ``positive``/``negative``
    may be integer arrays, promoted); ``"mean"`` averages over the distances.
    optax's ``triplet_margin_loss`` puts eps inside the sum and takes no ``|·|``: it agrees
    only for p=2 (to ~eps) and is wrong for other p; it has no ``swap``.

    Example:
      >>> a, pos, neg = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[0.0, 1.0]])
      >>> losses.triplet_margin_loss(a, pos, neg, eps=0.0)
      Array(5., dtype=float32)
    """
    p = _checks.check_real(p, "p")
    _checks.check_real(eps, "eps", array_ok=True)
    _broadcast_shapes(anchor=anchor, positive=positive, negative=negative)
    return _triplet(
        anchor,
        positive,
        negative,
        lambda a, b: _pairwise_distance(a, b, p, eps),
        margin,
        swap,
        reduction,
    )


def triplet_margin_with_distance_loss(
    anchor: jax.Array,
    positive: jax.Array,
    negative: jax.Array,
    *,
    distance_function: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> jax.Array:
    """Triplet loss with any distance (``F.triplet_margin_with_distance_loss``).

    ``distance_function(x1, x2)`` returns one distance per row (default
    :func:`pairwise_distance`, p=2, eps=1e-6). ``margin > 0``. The inputs have one rank (torch).
    See :func:`triplet_margin_loss`.

    Example:
      >>> a, pos, neg = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[0.0, 1.0]])
      >>> l1 = lambda x, y: jnp.sum(jnp.abs(x - y), axis=-1)
      >>> losses.triplet_margin_with_distance_loss(a, pos, neg, distance_function=l1)
      Array(7., dtype=float32)
    """
    return _triplet(
        anchor,
        positive,
        negative,
        pairwise_distance if distance_function is None else distance_function,
        margin,
        swap,
        reduction,
    )


def cosine_embedding_loss(
    input1: jax.Array,
    input2: jax.Array,
    target: jax.Array,
    margin: float = 0.0,
    reduction: str = "mean",
) -> jax.Array:
    """Cosine embedding loss (``torch.nn.functional.cosine_embedding_loss``).

    ``cos = x1·x2 / sqrt((‖x1‖² + 1e-12)(‖x2‖² + 1e-12))`` over the last axis;
    ``l = 1 - cos`` where ``y = 1``, ``max(0, cos - margin)`` where ``y = -1`` (0 otherwise;
    NaN propagates as in torch). ``margin`` is any real (torch's). Inputs ``(N, D)`` with an
    ``(N,)`` target, or ``(D,)`` with a scalar one; as torch, ``input1``, ``input2`` and the
    target's rows broadcast (``(1, D)`` against ``(N, D)``, a ``(1,)`` target), and ``input2``
    may be an integer array (promoted).
    optax has only ``cosine_similarity`` (eps clips the squared norms instead of adding 1e-12).

    Example:
      >>> x1, x2 = jnp.array([[1.0, 0.0], [1.0, 0.0]]), jnp.array([[0.0, 1.0], [1.0, 0.0]])
      >>> losses.cosine_embedding_loss(x1, x2, jnp.array([1, -1]), reduction="none")
      Array([1., 1.], dtype=float32)
    """
    input1 = _checks.as_float_array(input1, "input1")
    input2 = _promoted(input2, "input2", input1, boolean=False)
    target = _checks.as_array(target, "target")
    if target.ndim > 1 or input1.ndim != target.ndim + 1 or input2.ndim != target.ndim + 1:
        raise ValueError(
            f"expected input1/input2 of shape (N, D) with a target of shape (N,), or (D,) with a "
            f"target of shape (), got input1.shape={input1.shape}, input2.shape={input2.shape}, "
            f"target.shape={target.shape}"
        )
    rows = _broadcast_shapes(input1=input1, input2=input2)[:-1]
    _broadcast_shapes(**{"target": target, "the rows of input1/input2": rows})
    _check_reduction(reduction)
    _checks.check_real(margin, "margin", array_ok=True)
    dot = jnp.sum(input1 * input2, axis=-1)
    sq1 = jnp.sum(input1 * input1, axis=-1) + 1e-12
    sq2 = jnp.sum(input2 * input2, axis=-1) + 1e-12
    cos = dot / jnp.sqrt(sq1 * sq2)
    loss = jnp.where(target == 1, 1 - cos, 0.0) + jnp.where(
        target == -1, _clamp_min0(cos - margin), 0.0
    )
    return _reduce(loss, reduction)


def margin_ranking_loss(
    input1: jax.Array,
    input2: jax.Array,
    target: jax.Array,
    margin: float = 0.0,
    reduction: str = "mean",
) -> jax.Array:
    """Margin ranking loss ``l = max(0, -y·(x1 - x2) + margin)`` (``F.margin_ranking_loss``).

    ``y`` ∈ {-1, 1} says which input should rank higher. As torch, the three arrays have one
    rank and broadcast together (``(N, D)`` with ``(N, 1)`` or ``(1, D)``), ``input2`` and
    ``target`` may be integer arrays (promoted), ``margin`` is any real, NaN propagates and the
    derivative at the kink is ``clamp_min``'s (1).

    Example:
      >>> x1, x2 = jnp.array([1.0, 1.0]), jnp.array([0.0, 3.0])
      >>> losses.margin_ranking_loss(x1, x2, jnp.array([1.0, 1.0]), reduction="none")
      Array([0., 2.], dtype=float32)
    """
    input1 = _checks.as_float_array(input1, "input1")
    input2 = _promoted(input2, "input2", input1, boolean=False)
    target = _promoted(target, "target", input1, boolean=False)
    _check_same_ndim(input1=input1, input2=input2, target=target)
    _check_reduction(reduction)
    _checks.check_real(margin, "margin", array_ok=True)
    return _reduce(_clamp_min0(-target * (input1 - input2) + margin), reduction)


def hinge_embedding_loss(
    input: jax.Array, target: jax.Array, margin: float = 1.0, reduction: str = "mean"
) -> jax.Array:
    """Hinge embedding loss (``torch.nn.functional.hinge_embedding_loss``).

    ``l = x`` where ``y = 1`` and ``max(0, margin - x)`` where ``y = -1`` (torch adds both terms
    for other labels). ``input`` is usually a distance. As torch, ``input`` and ``target`` (any
    numeric or bool dtype) broadcast together, ``margin`` is any real and NaN propagates.
    ``optax.hinge_loss`` is a different loss (``max(0, 1 - y·x)``).

    Example:
      >>> distance, target = jnp.array([0.25, 0.25]), jnp.array([1.0, -1.0])
      >>> losses.hinge_embedding_loss(distance, target, reduction="none")
      Array([0.25, 0.75], dtype=float32)
    """
    input = _checks.as_float_array(input, "input")
    target = _checks.as_array(target, "target")
    _broadcast_shapes(input=input, target=target)
    _check_reduction(reduction)
    _checks.check_real(margin, "margin", array_ok=True)
    loss = jnp.where(target != 1, _clamp_min0(margin - input), 0.0) + jnp.where(
        target != -1, input, 0.0
    )
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------------------------
# Segmentation


def dice_loss(
    input: jax.Array,
    target: jax.Array,
    smooth: float = 1.0,
    per_class: bool = False,
    reduction: str = "mean",
) -> jax.Array:
    """Soft Dice loss on probabilities (no torch counterpart; MONAI-style definition).

    Per sample ``n`` (axis 0): ``1 - (2·Σ p·t + smooth) / (Σ p + Σ t + smooth)`` with sums over
    all non-batch axes. With ``per_class=True`` the classes are the last axis: the Dice is
    computed per class over the axes between batch and class, then averaged over classes.
    ``reduction`` acts over the batch (``"none"`` returns shape ``(N,)``).

    Equals ``optax.losses.dice_loss(p, t, smooth=smooth/2, apply_softmax=False)`` (optax's
    ``smooth`` enters both numerator and denominator doubled, so it is half the usual one;
    optax is always per class and applies softmax/sigmoid unless ``apply_softmax=False``).

    Example:
      >>> losses.dice_loss(jnp.array([[1.0, 0.0, 0.0]]), jnp.array([[1.0, 1.0, 1.0]]), smooth=0.0)
      Array(0.5, dtype=float32)
    """
    input = _checks.as_float_array(input, "input")
    target = _checks.as_float_array(target, "target").astype(input.dtype)
    _check_same_shape(input, target, "input", "target")
    _check_reduction(reduction)
    _checks.check_real(smooth, "smooth", low=0.0, array_ok=True)
    if input.ndim < 2:
        raise ValueError(f"input must be (N, ...) with at least 2 dimensions, got {input.shape}")
    axes = tuple(range(1, input.ndim - 1 if per_class else input.ndim))
    inter = jnp.sum(input * target, axis=axes)
    total = jnp.sum(input, axis=axes) + jnp.sum(target, axis=axes)
    loss = 1 - (2 * inter + smooth) / (total + smooth)
    if per_class:
        loss = jnp.mean(loss, axis=-1)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------------------------
# Sequences


def _ctc_extended(targets: jax.Array, blank: int) -> jax.Array:
    """Targets interleaved with blanks: ``(N, S)`` -> ``(N, 2S + 1)``."""
    n, s = targets.shape
    ext = jnp.full((n, 2 * s + 1), blank, dtype=targets.dtype)
    return ext.at[:, 1::2].set(targets)


def ctc_loss(
    log_probs: jax.Array,
    targets: jax.Array,
    input_lengths: jax.Array,
    target_lengths: jax.Array,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> jax.Array:
    """Connectionist Temporal Classification loss (``torch.nn.functional.ctc_loss``).

    ``-log Σ_{alignments π → y} Π_t p_t(π_t)``, computed exactly by the forward algorithm in
    log space (``lax.scan`` over time; autodiff gives the gradient).

    Args:
      log_probs: ``(N, T, C)`` log-probabilities, **batch-major** (torch: ``(T, N, C)``).
      targets: ``(N, S)`` integer labels padded to length S (padding is ignored), never blank.
      input_lengths, target_lengths: ``(N,)`` integers, ``<= T`` and ``<= S``.
      blank: the blank class index.
      reduction: ``"mean"`` divides each loss by its target length (at least 1) and averages
        over the batch (torch); ``"sum"``; ``"none"`` gives ``(N,)``.
      zero_infinity: replace infinite losses (impossible alignments) by 0, with zero gradient.

    Matches ``optax.losses.ctc_loss`` (logits + paddings, per sequence, no reduction) given
    ``log_softmax`` logits; optax returns ~1e5 instead of ``inf`` for impossible alignments.

    Example:
      >>> log_probs = jnp.log(jnp.full((1, 2, 2), 0.5))
      >>> loss = losses.ctc_loss(log_probs, jnp.array([[1]]), jnp.array([2]), jnp.array([1]))
      >>> round(float(loss), 4)
      0.2877
    """
    log_probs = _checks.as_float_array(log_probs, "log_probs")
    targets = _index_target(targets, "targets")
    input_lengths = _index_target(input_lengths, "input_lengths")
    target_lengths = _index_target(target_lengths, "target_lengths")
    _check_reduction(reduction)
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must be (N, T, C), got shape {log_probs.shape}")
    n, t_max, num_classes = log_probs.shape
    if targets.ndim != 2 or targets.shape[0] != n:
        raise ValueError(f"targets must be (N, S) with N={n}, got shape {targets.shape}")
    for name, arr in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    blank = _checks.check_int(blank, "blank", low=0, high=num_classes - 1)
    s_max = targets.shape[1]
    concrete = [_concrete(a) for a in (targets, input_lengths, target_lengths)]
    if all(c is not None for c in concrete):
        labels, il, tl = concrete
        if ((il < 0) | (il > t_max)).any() or ((tl < 0) | (tl > s_max)).any():
            raise ValueError(
                f"input_lengths must be in [0, {t_max}] and target_lengths in [0, {s_max}]; "
                f"got {il.tolist()} and {tl.tolist()}"
            )
        in_use = np.arange(s_max) < tl[:, None]
        if (in_use & ((labels < 0) | (labels >= num_classes) | (labels == blank))).any():
            raise ValueError(
                f"targets must be labels in [0, {num_classes}) other than blank={blank} "
                f"within target_lengths"
            )
    used = jnp.arange(s_max) < target_lengths[:, None]
    label_ok = (targets >= 0) & (targets < num_classes) & (targets != blank)
    bad_label = jnp.any(used & ~label_ok, axis=1)
    bad_length = (input_lengths < 0) | (input_lengths > t_max)
    bad_length = bad_length | (target_lengths < 0) | (target_lengths > s_max)

    dtype = log_probs.dtype
    neg = jnp.asarray(-0.1 * jnp.finfo(dtype).max, dtype)
    ext = _ctc_extended(jnp.where(used & label_ok, targets, blank), blank)
    length = ext.shape[1]
    lp_ext = jnp.take_along_axis(log_probs, ext[:, None, :], axis=2)  # (N, T, L)
    skip = jnp.concatenate(
        [jnp.zeros((n, 2), bool), (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])], axis=1
    )
    alpha0 = jnp.full((n, length), neg, dtype)
    alpha0 = alpha0.at[:, 0].set(lp_ext[:, 0, 0])
    if length > 1:
        alpha0 = alpha0.at[:, 1].set(jnp.where(target_lengths > 0, lp_ext[:, 0, 1], neg))

    def shift(a: jax.Array, k: int) -> jax.Array:
        return jnp.concatenate([jnp.full((n, k), neg, dtype), a[:, :-k]], axis=1)

    def step(alpha: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        lp_t, t = inputs
        a1 = shift(alpha, 1)
        a2 = jnp.where(skip, shift(alpha, 2), neg)
        m = jnp.maximum(jnp.maximum(alpha, a1), a2)
        total = m + jnp.log(jnp.exp(alpha - m) + jnp.exp(a1 - m) + jnp.exp(a2 - m)) + lp_t
        new = jnp.maximum(total, neg)
        return jnp.where((t < input_lengths)[:, None], new, alpha), None

    xs = (jnp.moveaxis(lp_ext, 1, 0)[1:], jnp.arange(1, t_max))
    alpha, _ = jax.lax.scan(step, alpha0, xs)
    last = jnp.take_along_axis(alpha, (2 * target_lengths)[:, None], axis=1)[:, 0]
    before = jnp.take_along_axis(alpha, jnp.maximum(2 * target_lengths - 1, 0)[:, None], 1)[:, 0]
    before = jnp.where(target_lengths > 0, before, neg)
    log_lik = jnp.logaddexp(last, before)
    empty = jnp.where(target_lengths == 0, jnp.zeros((), dtype), neg)
    log_lik = jnp.where(input_lengths == 0, empty, log_lik)
    impossible = log_lik < 0.5 * neg
    inf_value = 0.0 if zero_infinity else jnp.inf
    loss = jnp.where(impossible, inf_value, -log_lik)
    loss = jnp.where(bad_label | bad_length, jnp.nan, loss).astype(dtype)
    if reduction == "mean":
        return jnp.mean(loss / jnp.maximum(target_lengths, 1).astype(dtype))
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------------------------
# Name lookup

_TABLE: dict[str, Callable[..., jax.Array]] = {
    f.__name__: f
    for f in (
        mse_loss,
        l1_loss,
        huber_loss,
        smooth_l1_loss,
        poisson_nll_loss,
        gaussian_nll_loss,
        binary_cross_entropy,
        binary_cross_entropy_with_logits,
        soft_margin_loss,
        multilabel_soft_margin_loss,
        sigmoid_focal_loss,
        cross_entropy,
        nll_loss,
        multi_margin_loss,
        multilabel_margin_loss,
        kl_div,
        cosine_embedding_loss,
        triplet_margin_loss,
        triplet_margin_with_distance_loss,
        margin_ranking_loss,
        hinge_embedding_loss,
        dice_loss,
        ctc_loss,
    )
}

NAMES: tuple[str, ...] = tuple(_TABLE)

get = _checks.make_get(
    "loss",
    _TABLE,
    {
        "BCELoss": "binary_cross_entropy",
        "bce": "binary_cross_entropy",
        "BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
        "bce_with_logits": "binary_cross_entropy_with_logits",
        "KLDivLoss": "kl_div",
        "NLLLoss": "nll_loss",
        "MAELoss": "l1_loss",
        "CTCLoss": "ctc_loss",
        "FocalLoss": "sigmoid_focal_loss",
        "SigmoidFocalLoss": "sigmoid_focal_loss",
    },
    strip_suffix="loss",
)
