"""torch.optim optimizers as optax gradient transformations.

Every optimizer here is a function of its hyperparameters (torch's names, argument names and
defaults) that returns an ``optax.GradientTransformation``::

    opt = jaxfund.optimizers.adamw(lr=1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)

so it composes with ``optax.chain``, ``optax.clip_by_global_norm``, ``optax.masked``,
``optax.multi_transform`` and ``optax.MultiSteps``. Each optimizer is a chain of small
transformations written once: :func:`maximize`, :func:`add_weight_decay` (torch's coupled L2
``weight_decay``), one ``scale_by_*`` direction (the moments), :func:`scale_by_lr` and
:func:`add_decoupled_weight_decay` (AdamW-style ``p *= 1 - lr*wd``). Every state is a
``NamedTuple`` with an int32 ``count`` (the number of updates applied so far).

Learning rates. ``lr`` is a float or a schedule ``count -> lr`` (any optax schedule). The
schedule is evaluated at the 0-based ``count``, which is torch's ``step - 1``: a torch
``LambdaLR(opt, lambda e: f(e) / lr)`` stepped once per optimizer step gives the same rates.
The learning rate multiplies the final direction, after momentum, as in torch (this matters for
RMSprop and SGD momentum under a schedule).

Step scalars. Bias corrections ``1 - beta**t`` are computed as ``-expm1(t * log(beta))`` with
``log(beta)`` a Python (float64) constant, RAdam's ``rho_t`` with a series that avoids the
cancellation of ``rho_inf - 2 t beta**t / (1 - beta**t)``, and NAdam's momentum factors through
``exp``. They are evaluated in float32 (float64 under ``jax.enable_x64``) and are accurate to a few
ulps (< 4e-7 relative in float32), where optax's ``1 - beta**t`` in float32 is off by ~1e-5.

Dtype policy. Moments (and every other per-parameter state) are stored in float32 for
parameters of lower precision (bfloat16, float16) and in the parameter dtype otherwise; the
arithmetic of an update runs in that state dtype and the updates are returned in the gradient
(= parameter) dtype. Scalar state (step counts, NAdam's ``mu_product``) is int32 / the default
float dtype.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxfund._checks import make_get

__all__ = [
    "NAMES",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "add_decoupled_weight_decay",
    "add_weight_decay",
    "asgd",
    "get",
    "lamb",
    "lion",
    "maximize",
    "nadam",
    "radam",
    "rmsprop",
    "rprop",
    "scale_by_lr",
    "sgd",
]

ScalarOrSchedule = float | Callable[[jax.Array], jax.Array]
PyTree = Any


# ---------------------------------------------------------------------------------------------
# Argument checks (raise at construction, naming the argument).


def _check_lr(lr: Any, name: str = "lr") -> None:
    if callable(lr):
        return
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise ValueError(f"{name} must be a float >= 0 or a schedule step -> lr, got {lr!r}")
    if not lr >= 0:
        raise ValueError(f"{name} must be >= 0, got {lr} (torch: Invalid learning rate)")


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _check_min(value: Any, name: str, low: float = 0.0) -> None:
    if not _check_real(value, name) >= low:
        raise ValueError(f"{name} must be >= {low:g}, got {value}")


def _check_unit(value: Any, name: str, *, closed: bool) -> None:
    """``value`` in ``[0, 1]`` (``closed``) or ``[0, 1)``."""
    v = _check_real(value, name)
    ok = 0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0
    if not ok:
        raise ValueError(f"{name} must be in [0, 1{']' if closed else ')'}, got {value}")


def _check_betas(betas: Any, name: str = "betas") -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        _check_unit(b, f"{name}[{i}]", closed=False)
    return float(betas[0]), float(betas[1])


# ---------------------------------------------------------------------------------------------
# Small numeric helpers shared by the transformations.


def _scalar_dtype() -> jnp.dtype:
    """float64 under ``jax.enable_x64``, float32 otherwise (torch's ``_get_scalar_dtype``)."""
    return jnp.result_type(float)


def _state_dtype(x: jax.Array) -> jnp.dtype:
    """float32 for parameters narrower than 32 bits (bf16/f16), their own dtype otherwise."""
    dtype = jnp.dtype(x.dtype)
    return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype


def _zeros(params: PyTree, fill: float = 0.0) -> PyTree:
    return jax.tree.map(lambda p: jnp.full(jnp.shape(p), fill, _state_dtype(p)), params)


def _step(count: jax.Array) -> jax.Array:
    """torch's 1-based step ``t = count + 1`` in the scalar dtype."""
    return (count + 1).astype(_scalar_dtype())


def _pow(beta: float, t: jax.Array) -> jax.Array:
    """``beta ** t`` as ``exp(t * log(beta))`` with ``log(beta)`` a float64 constant."""
    return jnp.zeros_like(t) if beta == 0.0 else jnp.exp(t * math.log(beta))


def _one_minus_pow(beta: float, t: jax.Array) -> jax.Array:
    """``1 - beta ** t`` to a few ulps: ``-expm1(t * log(beta))``."""
    return jnp.ones_like(t) if beta == 0.0 else -jnp.expm1(t * math.log(beta))


def _lr_at(lr: ScalarOrSchedule, count: jax.Array) -> jax.Array:
    return jnp.asarray(lr(count) if callable(lr) else lr, _scalar_dtype())


def _map(fn: Callable[..., tuple], n_out: int, tree: PyTree, *rest: PyTree) -> tuple:
    """One ``jax.tree.map`` of a per-leaf ``fn`` returning ``n_out`` arrays, unzipped to trees.

    All the per-leaf arithmetic of an update lives in ``fn``, so XLA fuses it into a single
    elementwise loop per leaf.
    """
    out = jax.tree.map(fn, tree, *rest)
    return tuple(jax.tree.map(lambda _, o, i=i: o[i], tree, out) for i in range(n_out))


def _new_count(count: jax.Array) -> jax.Array:
    return optax.safe_increment(count)


# ---------------------------------------------------------------------------------------------
# Reusable pieces.


class CountState(NamedTuple):
    """State of the stateless pieces: only the number of updates applied so far."""

    count: jax.Array


def _count_init(params: PyTree) -> CountState:
    del params
    return CountState(count=jnp.zeros([], jnp.int32))


def maximize() -> optax.GradientTransformation:
    """Negates the gradients: ``g -> -g`` (torch's ``maximize=True``, applied first).

    Returns:
        An ``optax.GradientTransformation`` with a :class:`CountState`.
    """

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(jnp.negative, updates), CountState(_new_count(state.count))

    return optax.GradientTransformation(_count_init, update_fn)


def add_weight_decay(weight_decay: float) -> optax.GradientTransformation:
    """Coupled L2 weight decay ``u -> u + weight_decay * p`` (torch's ``weight_decay=``).

    Placed before a direction (``scale_by_*``) it is torch's ``weight_decay`` of SGD, Adam,
    RMSprop, ... (``grad = grad.add(param, alpha=weight_decay)``); equal to
    ``optax.add_decayed_weights(weight_decay)``.

    Args:
        weight_decay: decay factor, ``>= 0``.

    Returns:
        An ``optax.GradientTransformation`` with a :class:`CountState`; ``update`` needs params.
    """
    _check_min(weight_decay, "weight_decay")

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_weight_decay needs params: call update(grads, state, params)")
        updates = jax.tree.map(
            lambda u, p: (u + weight_decay * p.astype(u.dtype)).astype(u.dtype), updates, params
        )
        return updates, CountState(_new_count(state.count))

    return optax.GradientTransformation(_count_init, update_fn)


def scale_by_lr(lr: ScalarOrSchedule) -> optax.GradientTransformation:
    """Descent step ``u -> -lr_t * u`` with ``lr_t = lr(count)`` for a schedule, else ``lr``.

    Equal to ``optax.scale_by_learning_rate(lr)``; ``count`` is 0-based (torch's ``step - 1``).

    Args:
        lr: float ``>= 0`` or schedule ``count -> lr``.

    Returns:
        An ``optax.GradientTransformation`` with a :class:`CountState`.
    """
    _check_lr(lr)

    def update_fn(updates, state, params=None):
        del params
        neg_lr = -_lr_at(lr, state.count)
        updates = jax.tree.map(lambda u: (neg_lr.astype(u.dtype) * u).astype(u.dtype), updates)
        return updates, CountState(_new_count(state.count))

    return optax.GradientTransformation(_count_init, update_fn)


def add_decoupled_weight_decay(
    lr: ScalarOrSchedule, weight_decay: float
) -> optax.GradientTransformation:
    """Decoupled weight decay ``u -> u - lr_t * weight_decay * p`` (torch AdamW's decay).

    torch does ``p *= 1 - lr * weight_decay`` before the step, i.e. adds ``-lr*wd*p`` to the
    (already lr-scaled) update, with ``p`` the parameter before the step. Place it *after*
    :func:`scale_by_lr`: ``adamw(lr, wd) == chain(adam(lr), add_decoupled_weight_decay(lr, wd))``.
    Wrap it in ``optax.masked`` to decay only some leaves.

    Args:
        lr: float or schedule, the same as the optimizer's learning rate.
        weight_decay: decay factor, ``>= 0``.

    Returns:
        An ``optax.GradientTransformation`` with a :class:`CountState`; ``update`` needs params.
    """
    _check_lr(lr)
    _check_min(weight_decay, "weight_decay")

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "add_decoupled_weight_decay needs params: call update(grads, state, params)"
            )
        decay = _lr_at(lr, state.count) * weight_decay
        updates = jax.tree.map(
            lambda u, p: (u - decay.astype(u.dtype) * p.astype(u.dtype)).astype(u.dtype),
            updates,
            params,
        )
        return updates, CountState(_new_count(state.count))

    return optax.GradientTransformation(_count_init, update_fn)


def _chain(
    *, maximize_: bool, coupled: float, core: list, decoupled: float, lr: ScalarOrSchedule,
    scale: bool = True,
) -> optax.GradientTransformation:
    """``[maximize] -> [coupled L2] -> core... -> [-lr] -> [decoupled decay]``, skipping no-ops."""
    parts = [maximize()] if maximize_ else []
    if coupled:
        parts.append(add_weight_decay(coupled))
    parts.extend(core)
    if scale:
        parts.append(scale_by_lr(lr))
    if decoupled:
        parts.append(add_decoupled_weight_decay(lr, decoupled))
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


# ---------------------------------------------------------------------------------------------
# Directions (the per-optimizer moment updates). Each returns the direction *before* -lr.


class MomentumState(NamedTuple):
    """SGD momentum buffer ``momentum_buffer`` (torch's name) and the update count."""

    count: jax.Array
    momentum_buffer: PyTree


def _scale_by_momentum(momentum: float, dampening: float, nesterov: bool):
    """torch SGD momentum: ``buf = g`` at the first step, then ``buf = mu*buf + (1-d)*g``."""

    def init_fn(params):
        return MomentumState(jnp.zeros([], jnp.int32), _zeros(params))

    def update_fn(updates, state, params=None):
        del params
        first = state.count == 0
        keep = jnp.where(first, 0.0, momentum)
        new = jnp.where(first, 1.0, 1.0 - dampening)

        def leaf(g, b):
            gs = g.astype(b.dtype)
            b = keep.astype(b.dtype) * b + new.astype(b.dtype) * gs
            out = gs + momentum * b if nesterov else b
            return out.astype(g.dtype), b

        out, buf = _map(leaf, 2, updates, state.momentum_buffer)
        return out, MomentumState(_new_count(state.count), buf)

    return optax.GradientTransformation(init_fn, update_fn)


class AdamState(NamedTuple):
    """Adam moments: ``exp_avg``, ``exp_avg_sq`` and, for AMSGrad, ``max_exp_avg_sq``."""

    count: jax.Array
    exp_avg: PyTree
    exp_avg_sq: PyTree
    max_exp_avg_sq: PyTree


def _scale_by_adam(b1: float, b2: float, eps: float, amsgrad: bool):
    """torch Adam direction ``(m/bc1) / (sqrt(v or max v)/sqrt(bc2) + eps)``."""

    def init_fn(params):
        return AdamState(
            jnp.zeros([], jnp.int32), _zeros(params), _zeros(params),
            _zeros(params) if amsgrad else None,
        )

    def update_fn(updates, state, params=None):
        del params
        t = _step(state.count)
        inv_bc1 = 1.0 / _one_minus_pow(b1, t)
        inv_sqrt_bc2 = jax.lax.rsqrt(_one_minus_pow(b2, t))

        def leaf(g, m, v, vmax=None):
            gs = g.astype(m.dtype)
            m = m + (1.0 - b1) * (gs - m)
            v = b2 * v + (1.0 - b2) * (gs * gs)
            if amsgrad:
                vmax = jnp.maximum(vmax, v)
            denom = jnp.sqrt(vmax if amsgrad else v) * inv_sqrt_bc2.astype(m.dtype) + eps
            out = (m * inv_bc1.astype(m.dtype)) / denom
            return out.astype(g.dtype), m, v, vmax

        trees = (updates, state.exp_avg, state.exp_avg_sq)
        if amsgrad:
            trees += (state.max_exp_avg_sq,)
        out, m, v, vmax = _map(leaf, 4, *trees)
        return out, AdamState(_new_count(state.count), m, v, vmax if amsgrad else None)

    return optax.GradientTransformation(init_fn, update_fn)


class NAdamState(NamedTuple):
    """NAdam moments and ``mu_product`` (the product of the momentum factors ``mu_1..mu_t``)."""

    count: jax.Array
    mu_product: jax.Array
    exp_avg: PyTree
    exp_avg_sq: PyTree


def _scale_by_nadam(b1: float, b2: float, eps: float, momentum_decay: float):
    """torch NAdam direction with ``mu_t = b1 (1 - 0.5 * 0.96**(t psi))``."""
    log_096 = math.log(0.96)

    def init_fn(params):
        return NAdamState(
            jnp.zeros([], jnp.int32), jnp.ones([], _scalar_dtype()), _zeros(params),
            _zeros(params),
        )

    def mu_at(t):
        return b1 * (1.0 - 0.5 * jnp.exp(t * (momentum_decay * log_096)))

    def update_fn(updates, state, params=None):
        del params
        t = _step(state.count)
        mu, mu_next = mu_at(t), mu_at(t + 1.0)
        mu_product = state.mu_product.astype(t.dtype) * mu
        c_grad = (1.0 - mu) / (1.0 - mu_product)
        c_avg = mu_next / (1.0 - mu_product * mu_next)
        inv_sqrt_bc2 = jax.lax.rsqrt(_one_minus_pow(b2, t))

        def leaf(g, m, v):
            gs = g.astype(m.dtype)
            m = m + (1.0 - b1) * (gs - m)
            v = b2 * v + (1.0 - b2) * (gs * gs)
            denom = jnp.sqrt(v) * inv_sqrt_bc2.astype(m.dtype) + eps
            out = (c_grad.astype(m.dtype) * gs + c_avg.astype(m.dtype) * m) / denom
            return out.astype(g.dtype), m, v

        out, m, v = _map(leaf, 3, updates, state.exp_avg, state.exp_avg_sq)
        return out, NAdamState(_new_count(state.count), mu_product, m, v)

    return optax.GradientTransformation(init_fn, update_fn)


def _radam_rho(b2: float, t: jax.Array) -> jax.Array:
    """RAdam's ``rho_t = rho_inf - 2 t b2**t / (1 - b2**t)`` without cancellation.

    With ``a = -log(b2)`` and ``y = t a``: ``rho_t = (coth(a/2) - 2/a) + t g(y)`` where
    ``g(y) = 2/y - 2/expm1(y) = 1 - y/6 + y^3/360 - ...`` (a Bernoulli series, used for
    ``y < 0.5``; the direct form loses at most two bits above). ``coth(a/2) - 2/a`` is a
    float64 constant.
    """
    if b2 == 0.0:
        return jnp.ones_like(t)
    a = -math.log(b2)
    const = 1.0 / math.tanh(a / 2.0) - 2.0 / a
    y = t * a
    series = [1.0, -1.0 / 6, 0.0, 1.0 / 360, 0.0, -1.0 / 15120, 0.0, 1.0 / 604800, 0.0,
              -1.0 / 23950080, 0.0, 691.0 / 653837184000, 0.0, -1.0 / 1307674368000]
    small = jnp.polyval(jnp.asarray(series[::-1], t.dtype), y)
    y_big = jnp.maximum(y, 0.5)
    big = 2.0 / y_big - 2.0 / jnp.expm1(y_big)
    return const + t * jnp.where(y < 0.5, small, big)


def _scale_by_radam(b1: float, b2: float, eps: float):
    """torch RAdam direction: rectified ``(m/bc1) rect sqrt(bc2)/(sqrt(v)+eps)`` if rho_t > 5."""
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def init_fn(params):
        return AdamState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params), None)

    def update_fn(updates, state, params=None):
        del params
        t = _step(state.count)
        inv_bc1 = 1.0 / _one_minus_pow(b1, t)
        rho = _radam_rho(b2, t)
        rectify = rho > 5.0
        rho_safe = jnp.where(rectify, rho, 6.0)
        rect = jnp.sqrt(
            (rho_safe - 4.0) * (rho_safe - 2.0) * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_safe)
        )
        adaptive = jnp.where(rectify, rect * jnp.sqrt(_one_minus_pow(b2, t)), 0.0)

        def leaf(g, m, v):
            gs = g.astype(m.dtype)
            m = m + (1.0 - b1) * (gs - m)
            v = b2 * v + (1.0 - b2) * (gs * gs)
            scale = jnp.where(rectify, adaptive.astype(m.dtype) / (jnp.sqrt(v) + eps), 1.0)
            out = (m * inv_bc1.astype(m.dtype)) * scale
            return out.astype(g.dtype), m, v

        out, m, v = _map(leaf, 3, updates, state.exp_avg, state.exp_avg_sq)
        return out, AdamState(_new_count(state.count), m, v, None)

    return optax.GradientTransformation(init_fn, update_fn)


class RMSpropState(NamedTuple):
    """RMSprop ``square_avg``, ``grad_avg`` (centered) and ``momentum_buffer`` (momentum > 0)."""

    count: jax.Array
    square_avg: PyTree
    grad_avg: PyTree
    momentum_buffer: PyTree


def _scale_by_rmsprop(alpha: float, eps: float, momentum: float, centered: bool):
    """torch RMSprop direction ``g / (sqrt(sq [- ga^2]) + eps)``, then momentum on it."""

    def init_fn(params):
        return RMSpropState(
            jnp.zeros([], jnp.int32), _zeros(params), _zeros(params) if centered else None,
            _zeros(params) if momentum else None,
        )

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, sq, ga=None, buf=None):
            gs = g.astype(sq.dtype)
            sq = alpha * sq + (1.0 - alpha) * (gs * gs)
            if centered:
                ga = ga + (1.0 - alpha) * (gs - ga)
                avg = jnp.sqrt(sq - ga * ga) + eps
            else:
                avg = jnp.sqrt(sq) + eps
            out = gs / avg
            if momentum:
                buf = momentum * buf + out
                out = buf
            return out.astype(g.dtype), sq, ga, buf

        trees = [updates, state.square_avg]
        trees.append(state.grad_avg if centered else jax.tree.map(lambda _: None, updates))
        if momentum:
            trees.append(state.momentum_buffer)
        out, sq, ga, buf = _map(leaf, 4, *trees)
        return out, RMSpropState(
            _new_count(state.count), sq, ga if centered else None, buf if momentum else None
        )

    return optax.GradientTransformation(init_fn, update_fn)


class AdagradState(NamedTuple):
    """Adagrad's running sum of squared gradients ``sum``."""

    count: jax.Array
    sum: PyTree


def _scale_by_adagrad(initial_accumulator_value: float, eps: float):
    """torch Adagrad direction ``g / (sqrt(sum) + eps)`` with ``sum += g^2``."""

    def init_fn(params):
        return AdagradState(jnp.zeros([], jnp.int32), _zeros(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, s):
            gs = g.astype(s.dtype)
            s = s + gs * gs
            return (gs / (jnp.sqrt(s) + eps)).astype(g.dtype), s

        out, s = _map(leaf, 2, updates, state.sum)
        return out, AdagradState(_new_count(state.count), s)

    return optax.GradientTransformation(init_fn, update_fn)


class AdamaxState(NamedTuple):
    """Adamax ``exp_avg`` and infinity norm ``exp_inf``."""

    count: jax.Array
    exp_avg: PyTree
    exp_inf: PyTree


def _scale_by_adamax(b1: float, b2: float, eps: float):
    """torch Adamax direction ``(m/bc1) / u`` with ``u = max(b2 u, |g| + eps)``."""

    def init_fn(params):
        return AdamaxState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

    def update_fn(updates, state, params=None):
        del params
        inv_bc1 = 1.0 / _one_minus_pow(b1, _step(state.count))

        def leaf(g, m, u):
            gs = g.astype(m.dtype)
            m = m + (1.0 - b1) * (gs - m)
            u = jnp.maximum(b2 * u, jnp.abs(gs) + eps)
            return ((m * inv_bc1.astype(m.dtype)) / u).astype(g.dtype), m, u

        out, m, u = _map(leaf, 3, updates, state.exp_avg, state.exp_inf)
        return out, AdamaxState(_new_count(state.count), m, u)

    return optax.GradientTransformation(init_fn, update_fn)


class AdadeltaState(NamedTuple):
    """Adadelta ``square_avg`` (of gradients) and ``acc_delta`` (of steps)."""

    count: jax.Array
    square_avg: PyTree
    acc_delta: PyTree


def _scale_by_adadelta(rho: float, eps: float):
    """torch Adadelta direction ``sqrt(acc + eps) / sqrt(sq + eps) * g``."""

    def init_fn(params):
        return AdadeltaState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, sq, acc):
            gs = g.astype(sq.dtype)
            sq = rho * sq + (1.0 - rho) * (gs * gs)
            delta = jnp.sqrt(acc + eps) / jnp.sqrt(sq + eps) * gs
            acc = rho * acc + (1.0 - rho) * (delta * delta)
            return delta.astype(g.dtype), sq, acc

        out, sq, acc = _map(leaf, 3, updates, state.square_avg, state.acc_delta)
        return out, AdadeltaState(_new_count(state.count), sq, acc)

    return optax.GradientTransformation(init_fn, update_fn)


class LionState(NamedTuple):
    """Lion momentum ``exp_avg``."""

    count: jax.Array
    exp_avg: PyTree


def _scale_by_lion(b1: float, b2: float):
    """Lion direction ``sign(b1 m + (1-b1) g)``, then ``m = b2 m + (1-b2) g``."""

    def init_fn(params):
        return LionState(jnp.zeros([], jnp.int32), _zeros(params))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, m):
            gs = g.astype(m.dtype)
            out = jnp.sign((1.0 - b1) * gs + b1 * m)
            return out.astype(g.dtype), (1.0 - b2) * gs + b2 * m

        out, m = _map(leaf, 2, updates, state.exp_avg)
        return out, LionState(_new_count(state.count), m)

    return optax.GradientTransformation(init_fn, update_fn)


# Complete steps (they already include the learning rate).


class RpropState(NamedTuple):
    """Rprop previous gradient ``prev`` and per-element ``step_size``."""

    count: jax.Array
    prev: PyTree
    step_size: PyTree


def _rprop_step(lr: ScalarOrSchedule, etas: tuple[float, float], step_sizes: tuple[float, float]):
    eta_minus, eta_plus = etas
    low, high = step_sizes

    def init_fn(params):
        lr0 = float(lr(0)) if callable(lr) else lr
        return RpropState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params, lr0))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, prev, size):
            gs = g.astype(prev.dtype)
            sign = jnp.sign(gs * prev)
            factor = jnp.where(sign > 0, eta_plus, jnp.where(sign < 0, eta_minus, 1.0))
            size = jnp.clip(size * factor.astype(size.dtype), low, high)
            gs = jnp.where(sign < 0, 0.0, gs).astype(prev.dtype)
            return (-jnp.sign(gs) * size).astype(g.dtype), gs, size

        out, prev, size = _map(leaf, 3, updates, state.prev, state.step_size)
        return out, RpropState(_new_count(state.count), prev, size)

    return optax.GradientTransformation(init_fn, update_fn)


class ASGDState(NamedTuple):
    """ASGD's averaged parameters ``ax`` (torch's ``state["ax"]``) after ``count`` steps."""

    count: jax.Array
    ax: PyTree


def _asgd_step(lr: ScalarOrSchedule, lambd: float, alpha: float, t0: float):
    def init_fn(params):
        return ASGDState(jnp.zeros([], jnp.int32), _zeros(params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("asgd needs params: call update(grads, state, params)")
        step = state.count.astype(_scalar_dtype())
        lr_t = _lr_at(lr, state.count)
        eta = lr_t / (1.0 + lambd * lr_t * step) ** alpha
        mu = 1.0 / jnp.maximum(1.0, step - t0)
        shrink = lambd * eta

        def leaf(g, p, ax):
            gs, ps = g.astype(ax.dtype), p.astype(ax.dtype)
            u = (-shrink.astype(ax.dtype) * ps - eta.astype(ax.dtype) * gs).astype(g.dtype)
            new_p = (p + u).astype(p.dtype).astype(ax.dtype)
            ax = jnp.where(mu == 1.0, new_p, ax + (new_p - ax) * mu.astype(ax.dtype))
            return u, ax

        out, ax = _map(leaf, 2, updates, params, state.ax)
        return out, ASGDState(_new_count(state.count), ax)

    return optax.GradientTransformation(init_fn, update_fn)


class AdafactorState(NamedTuple):
    """Adafactor second moments: ``row_var``/``col_var`` for ndim >= 2, ``variance`` else.

    Leaves that are not factored hold ``None`` in ``row_var``/``col_var`` and vice versa.
    """

    count: jax.Array
    row_var: PyTree
    col_var: PyTree
    variance: PyTree


def _adafactor_step(lr: ScalarOrSchedule, beta2_decay: float, eps1: float | None, eps2: float,
                    d: float):
    def init_fn(params):
        def rows(p):
            if jnp.ndim(p) < 2:
                return None
            return jnp.zeros(jnp.shape(p)[:-1] + (1,), _state_dtype(p))

        def cols(p):
            if jnp.ndim(p) < 2:
                return None
            return jnp.zeros(jnp.shape(p)[:-2] + (1, jnp.shape(p)[-1]), _state_dtype(p))

        def full(p):
            return None if jnp.ndim(p) > 1 else jnp.zeros(jnp.shape(p), _state_dtype(p))

        return AdafactorState(
            jnp.zeros([], jnp.int32), jax.tree.map(rows, params), jax.tree.map(cols, params),
            jax.tree.map(full, params),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("adafactor needs params: call update(grads, state, params)")
        t = _step(state.count)
        weight = jnp.exp(beta2_decay * jnp.log(t))
        rho = jnp.minimum(_lr_at(lr, state.count), jax.lax.rsqrt(t))

        def leaf(g, p, row, col, var):
            dtype = _state_dtype(p)
            gs, ps = g.astype(dtype), p.astype(dtype)
            e1 = jnp.finfo(p.dtype).eps if eps1 is None else eps1
            w = weight.astype(dtype)
            sq = gs * gs
            if p.ndim > 1:
                row = row + w * (jnp.mean(sq, axis=-1, keepdims=True) - row)
                col = col + w * (jnp.mean(sq, axis=-2, keepdims=True) - col)
                row_mean = jnp.maximum(jnp.mean(row, axis=-2, keepdims=True), e1)
                estimate = row * col / row_mean
            else:
                var = var + w * (sq - var)
                estimate = var
            scaled = jax.lax.rsqrt(jnp.maximum(estimate, e1 * e1)) * gs
            size = max(p.size, 1)
            p_rms = jnp.sqrt(jnp.sum(ps * ps) / size)
            step = jnp.maximum(eps2, p_rms) * rho.astype(dtype)
            denom = jnp.maximum(1.0, jnp.sqrt(jnp.sum(scaled * scaled) / size) / d)
            return (-(step / denom) * scaled).astype(g.dtype), row, col, var

        out, row, col, var = _map(
            leaf, 4, updates, params, state.row_var, state.col_var, state.variance
        )
        return out, AdafactorState(_new_count(state.count), row, col, var)

    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------------------------
# Optimizers (torch.optim names, argument names and defaults).


def sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Stochastic gradient descent with momentum (``torch.optim.SGD``).

    ``g += wd p``; ``buf = g`` at the first step, then ``buf = momentum buf + (1 - dampening) g``;
    ``d = g + momentum buf`` (nesterov) or ``buf``; ``p -= lr d``. The first step is never
    dampened, as in torch.

    optax: without dampening, ``sgd(lr, momentum, 0, wd, nesterov) ==
    optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum or None, nesterov))``
    (also with a schedule: both apply lr after the momentum). Dampening has no optax
    equivalent (``optax.trace`` would dampen the first step too).

    Args:
        lr: learning rate (float ``>= 0`` or schedule ``count -> lr``).
        momentum: momentum factor ``>= 0``.
        dampening: dampening of the momentum, ``>= 0``.
        weight_decay: coupled L2 penalty ``>= 0``.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    _check_lr(lr)
    _check_min(momentum, "momentum")
    _check_min(dampening, "dampening")
    _check_min(weight_decay, "weight_decay")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"nesterov=True requires momentum > 0 and dampening == 0, got momentum={momentum}, "
            f"dampening={dampening} (torch: Nesterov momentum requires a momentum and zero "
            "dampening)"
        )
    core = [_scale_by_momentum(momentum, dampening, nesterov)] if momentum else []
    return _chain(maximize_=maximize, coupled=weight_decay, core=core, decoupled=0.0, lr=lr)


def _adam_like_checks(lr, betas, eps, weight_decay) -> tuple[float, float]:
    _check_lr(lr)
    _check_min(eps, "eps")
    b1, b2 = _check_betas(betas)
    _check_min(weight_decay, "weight_decay")
    return b1, b2


def adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> optax.GradientTransformation:
    """Adam (``torch.optim.Adam``), with torch's AMSGrad and coupled or decoupled decay.

    ``m = lerp(m, g, 1-b1)``, ``v = b2 v + (1-b2) g^2``, ``p -= lr (m/bc1) /
    (sqrt(v)/sqrt(bc2) + eps)`` with ``bc_i = 1 - b_i^t``. ``amsgrad``: ``v`` in the
    denominator is replaced by the running max of the *raw* ``v``, still divided by the current
    ``sqrt(bc2)`` (torch's variant). ``weight_decay`` is coupled L2 (``g += wd p``) unless
    ``decoupled_weight_decay`` (then ``p *= 1 - lr wd`` first, as AdamW).

    optax: ``adam(lr, (b1, b2), eps, wd) == optax.chain(optax.add_decayed_weights(wd),
    optax.adam(lr, b1, b2, eps))`` (optax's f32 bias corrections are off by ~1e-5 relative;
    ours are accurate). torch's AMSGrad has no optax equivalent: ``optax.amsgrad`` takes the max
    over bias-corrected ``v`` (or, with ``bias_correction_nu=False``, applies none).

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to the denominator, ``>= 0``.
        weight_decay: decay factor ``>= 0``.
        amsgrad: torch's AMSGrad.
        maximize: ascend instead of descend.
        decoupled_weight_decay: AdamW-style decay.

    Returns:
        An ``optax.GradientTransformation``.
    """
    b1, b2 = _adam_like_checks(lr, betas, eps, weight_decay)
    return _chain(
        maximize_=maximize,
        coupled=0.0 if decoupled_weight_decay else weight_decay,
        core=[_scale_by_adam(b1, b2, eps, amsgrad)],
        decoupled=weight_decay if decoupled_weight_decay else 0.0,
        lr=lr,
    )


def adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """AdamW (``torch.optim.AdamW``): Adam with decoupled decay ``p *= 1 - lr wd`` first.

    Same as ``adam(..., decoupled_weight_decay=True)``; torch's default ``weight_decay=1e-2``
    (optax's ``adamw`` defaults to 1e-4).

    optax: ``adamw(lr, (b1, b2), eps, wd) == optax.adamw(lr, b1, b2, eps, weight_decay=wd)``
    (torch/jaxfund compute ``p(1 - lr wd) - lr u``, optax ``p - lr(u + wd p)``: equal up to
    rounding). No optax equivalent with ``amsgrad=True`` (see :func:`adam`). To decay only some
    leaves use ``optax.multi_transform`` with ``adamw``/``adam``, or
    ``optax.chain(adam(lr), optax.masked(add_decoupled_weight_decay(lr, wd), mask))``.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to the denominator, ``>= 0``.
        weight_decay: decoupled decay factor ``>= 0``.
        amsgrad: torch's AMSGrad.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                decoupled_weight_decay=True)


def nadam(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """NAdam (``torch.optim.NAdam``) with torch's momentum schedule.

    ``mu_t = b1 (1 - 0.5 * 0.96^(t momentum_decay))``, ``P_t = mu_1 ... mu_t``;
    ``p -= lr [(1-mu_t)/(1-P_t) g + mu_{t+1}/(1-P_t mu_{t+1}) m] / (sqrt(v/bc2) + eps)``.
    ``mu_product`` is kept in the state (float32, float64 under x64, as torch) with each factor
    computed accurately.

    optax: only with the schedule switched off (``momentum_decay`` huge, so ``mu_t == b1``):
    ``nadam(lr, momentum_decay=1e12) == optax.nadam(lr)`` and with
    ``decoupled_weight_decay=True, weight_decay=wd`` ``== optax.nadamw(lr, weight_decay=wd)``.
    torch's default schedule (``momentum_decay=4e-3``) has no optax equivalent.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to the denominator, ``>= 0``.
        weight_decay: decay factor ``>= 0`` (coupled unless ``decoupled_weight_decay``).
        momentum_decay: ``psi >= 0`` of the momentum schedule.
        decoupled_weight_decay: AdamW-style decay.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    b1, b2 = _adam_like_checks(lr, betas, eps, weight_decay)
    _check_min(momentum_decay, "momentum_decay")
    return _chain(
        maximize_=maximize,
        coupled=0.0 if decoupled_weight_decay else weight_decay,
        core=[_scale_by_nadam(b1, b2, eps, momentum_decay)],
        decoupled=weight_decay if decoupled_weight_decay else 0.0,
        lr=lr,
    )


def radam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Rectified Adam (``torch.optim.RAdam``).

    ``rho_inf = 2/(1-b2) - 1``, ``rho_t = rho_inf - 2 t b2^t / bc2``; if ``rho_t > 5``:
    ``p -= lr (m/bc1) rect_t sqrt(bc2) / (sqrt(v) + eps)`` with
    ``rect_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))``, else
    ``p -= lr m/bc1``. ``eps`` is added to the raw ``sqrt(v)`` as torch. ``rho_t`` is computed
    without cancellation (accurate to ~1 ulp in float32).

    optax: no exact equivalent. ``optax.radam(lr, b1, b2, eps)`` (with
    ``optax.add_decayed_weights(wd)`` before it for coupled decay) adds ``eps`` to the
    bias-corrected ``sqrt(v/bc2)`` and computes ``rho_t`` in float32 with cancellation
    (``rect`` off by ~1% at t=6); it is equal only in exact arithmetic with ``eps=0``.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to ``sqrt(v)``, ``>= 0``.
        weight_decay: decay factor ``>= 0`` (coupled unless ``decoupled_weight_decay``).
        decoupled_weight_decay: AdamW-style decay.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    b1, b2 = _adam_like_checks(lr, betas, eps, weight_decay)
    return _chain(
        maximize_=maximize,
        coupled=0.0 if decoupled_weight_decay else weight_decay,
        core=[_scale_by_radam(b1, b2, eps)],
        decoupled=weight_decay if decoupled_weight_decay else 0.0,
        lr=lr,
    )


def rmsprop(
    lr: ScalarOrSchedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """RMSprop (``torch.optim.RMSprop``), eps outside the square root.

    ``g += wd p``, ``sq = alpha sq + (1-alpha) g^2``, ``avg = sqrt(sq [- ga^2]) + eps`` (``ga``
    the running mean of ``g`` when ``centered``); ``buf = momentum buf + g/avg`` and
    ``p -= lr buf`` (or ``p -= lr g/avg`` without momentum). lr multiplies after the momentum,
    so schedules match torch.

    optax: for a constant lr ``rmsprop(lr, alpha, eps, wd, momentum, centered) ==
    optax.chain(optax.add_decayed_weights(wd), optax.rmsprop(lr, decay=alpha, eps=eps,
    eps_in_sqrt=False, centered=centered, momentum=momentum or None))`` (optax's defaults
    ``decay=0.9, eps_in_sqrt=True`` differ). With a schedule and momentum optax applies lr
    *before* the momentum trace, which is not torch.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        alpha: smoothing constant in ``[0, 1]``.
        eps: added to the denominator, ``>= 0``.
        weight_decay: coupled L2 penalty ``>= 0``.
        momentum: momentum factor ``>= 0``.
        centered: normalise by the estimated variance of the gradient.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    _check_lr(lr)
    _check_unit(alpha, "alpha", closed=True)
    _check_min(eps, "eps")
    _check_min(weight_decay, "weight_decay")
    _check_min(momentum, "momentum")
    return _chain(
        maximize_=maximize, coupled=weight_decay,
        core=[_scale_by_rmsprop(alpha, eps, momentum, centered)], decoupled=0.0, lr=lr,
    )


def adagrad(
    lr: ScalarOrSchedule = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Adagrad (``torch.optim.Adagrad``), eps outside the square root.

    ``g += wd p``, ``s += g^2``, ``p -= lr_t / (1 + (t-1) lr_decay) * g / (sqrt(s) + eps)``
    with ``s`` starting at ``initial_accumulator_value``.

    optax: no exact equivalent; optax puts eps inside the root (``g * rsqrt(s + eps)``, 0
    where ``s == 0``) and defaults to ``initial_accumulator_value=0.1, eps=1e-7``. Closest:
    ``optax.chain(optax.add_decayed_weights(wd), optax.adagrad(lambda c: lr/(1 + c*lr_decay),
    initial_accumulator_value=a0, eps=0.0))``, equal when torch's eps is negligible.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        lr_decay: ``>= 0``, the lr is divided by ``1 + count * lr_decay``.
        weight_decay: coupled L2 penalty ``>= 0``.
        initial_accumulator_value: start of the sum of squares, ``>= 0``.
        eps: added to the denominator, ``>= 0``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    _check_lr(lr)
    _check_min(lr_decay, "lr_decay")
    _check_min(weight_decay, "weight_decay")
    _check_min(initial_accumulator_value, "initial_accumulator_value")
    _check_min(eps, "eps")
    if lr_decay:
        def decayed(count):
            return _lr_at(lr, count) / (1.0 + count.astype(_scalar_dtype()) * lr_decay)
    else:
        decayed = lr
    return _chain(
        maximize_=maximize, coupled=weight_decay,
        core=[_scale_by_adagrad(initial_accumulator_value, eps)], decoupled=0.0, lr=decayed,
    )


def adamax(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Adamax (``torch.optim.Adamax``): Adam with the infinity norm.

    ``g += wd p``, ``m = lerp(m, g, 1-b1)``, ``u = max(b2 u, |g| + eps)``,
    ``p -= lr/bc1 * m/u``.

    optax: ``adamax(lr, (b1, b2), eps, wd) == optax.chain(optax.add_decayed_weights(wd),
    optax.adamax(lr, b1, b2, eps))``.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to ``|g|``, ``>= 0``.
        weight_decay: coupled L2 penalty ``>= 0``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    b1, b2 = _adam_like_checks(lr, betas, eps, weight_decay)
    return _chain(
        maximize_=maximize, coupled=weight_decay, core=[_scale_by_adamax(b1, b2, eps)],
        decoupled=0.0, lr=lr,
    )


def adadelta(
    lr: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Adadelta (``torch.optim.Adadelta``).

    ``g += wd p``, ``sq = rho sq + (1-rho) g^2``, ``d = sqrt(acc + eps)/sqrt(sq + eps) g``,
    ``acc = rho acc + (1-rho) d^2``, ``p -= lr d``.

    optax: ``adadelta(lr, rho, eps, wd) == optax.adadelta(lr, rho, eps, wd)``; always pass the
    learning rate to optax (``learning_rate=None`` there does gradient *ascent* in 0.2.8).

    Args:
        lr: learning rate (float ``>= 0`` or schedule), default 1.0 as torch.
        rho: decay of the running averages, in ``[0, 1]``.
        eps: added inside both square roots, ``>= 0``.
        weight_decay: coupled L2 penalty ``>= 0``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    _check_lr(lr)
    _check_unit(rho, "rho", closed=True)
    _check_min(eps, "eps")
    _check_min(weight_decay, "weight_decay")
    return _chain(
        maximize_=maximize, coupled=weight_decay, core=[_scale_by_adadelta(rho, eps)],
        decoupled=0.0, lr=lr,
    )


def rprop(
    lr: ScalarOrSchedule = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Resilient backpropagation (``torch.optim.Rprop``).

    Per element, ``s = sign(g * prev)``; the step size is multiplied by ``eta_plus`` (s > 0),
    ``eta_minus`` (s < 0) or 1 and clipped to ``step_sizes``; where ``s < 0`` the gradient is
    set to 0; ``p -= sign(g) * step_size`` and ``prev = g``. ``lr`` is only the initial step
    size (a schedule is evaluated once, at count 0, as torch reads the group lr only at the
    first step).

    optax: no equivalent (optax has no Rprop).

    Args:
        lr: initial step size (float ``>= 0`` or schedule).
        etas: ``(eta_minus, eta_plus)`` with ``0 < eta_minus < 1 < eta_plus``.
        step_sizes: ``(min, max)`` step size, ``0 <= min <= max``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    _check_lr(lr)
    if not isinstance(etas, (tuple, list)) or len(etas) != 2:
        raise ValueError(f"etas must be a pair (eta_minus, eta_plus), got {etas!r}")
    if not 0.0 < _check_real(etas[0], "etas[0]") < 1.0 < _check_real(etas[1], "etas[1]"):
        raise ValueError(f"etas must satisfy 0 < eta_minus < 1 < eta_plus, got {tuple(etas)}")
    if not isinstance(step_sizes, (tuple, list)) or len(step_sizes) != 2:
        raise ValueError(f"step_sizes must be a pair (min, max), got {step_sizes!r}")
    low, high = (_check_real(s, f"step_sizes[{i}]") for i, s in enumerate(step_sizes))
    if not 0.0 <= low <= high:
        raise ValueError(f"step_sizes must satisfy 0 <= min <= max, got {tuple(step_sizes)}")
    core = [_rprop_step(lr, (float(etas[0]), float(etas[1])), (low, high))]
    return _chain(maximize_=maximize, coupled=0.0, core=core, decoupled=0.0, lr=lr, scale=False)


def asgd(
    lr: ScalarOrSchedule = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Averaged SGD (``torch.optim.ASGD``).

    At step ``t`` (1-based): ``eta_t = lr / (1 + lambd lr (t-1))^alpha``,
    ``mu_t = 1 / max(1, t - 1 - t0)``; ``g += wd p``, ``p = p (1 - lambd eta_t) - eta_t g``,
    ``ax = ax + mu_t (p - ax)`` (a copy of ``p`` while ``mu_t == 1``). With a schedule, ``lr``
    is ``lr(count)`` at the current step (torch uses the previous step's lr in ``eta``).

    The averaged parameters are in the state: ``optax.tree_utils.tree_get(state, "ax")``
    (the :class:`ASGDState` field ``ax``), updated to the parameters after this step.

    optax: no equivalent.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        lambd: decay term ``>= 0``.
        alpha: power for the eta update, ``>= 0``.
        t0: step at which averaging starts, ``>= 0``.
        weight_decay: coupled L2 penalty ``>= 0``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``; ``update`` needs params.
    """
    _check_lr(lr)
    _check_min(lambd, "lambd")
    _check_min(alpha, "alpha")
    _check_min(t0, "t0")
    _check_min(weight_decay, "weight_decay")
    core = [_asgd_step(lr, float(lambd), float(alpha), float(t0))]
    return _chain(
        maximize_=maximize, coupled=weight_decay, core=core, decoupled=0.0, lr=lr, scale=False
    )


def adafactor(
    lr: ScalarOrSchedule = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Adafactor as ``torch.optim.Adafactor`` defines it.

    At step ``t``: ``w = t^beta2_decay``; for ndim >= 2 the second moment is factored over the
    last two axes: ``row = lerp(row, mean(g^2, -1), w)``, ``col = lerp(col, mean(g^2, -2), w)``,
    ``V = row col / max(mean(row, -2), eps1)``; otherwise ``V = lerp(V, g^2, w)``.
    ``u = g / sqrt(max(V, eps1^2))``, ``step = max(eps2, rms(p)) * min(lr, 1/sqrt(t))``,
    ``p *= 1 - lr wd`` (decoupled), ``p -= step / max(1, rms(u)/d) * u``. ``eps1=None`` means
    the machine epsilon of the parameter dtype.

    optax: no equivalent. ``optax.adafactor`` follows Shazeer & Stern with a different decay
    (``1 - (t+1)^-0.8``), lr not capped by ``1/sqrt(t)``, eps ``1e-30`` and factoring only dims
    of size >= 128.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        beta2_decay: ``<= 0``, the decay exponent of the second-moment weight.
        eps: ``(eps1, eps2)``; eps1 ``>= 0`` or None, eps2 ``>= 0``.
        d: update clipping threshold ``>= 1``.
        weight_decay: decoupled decay ``>= 0``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``; ``update`` needs params.
    """
    _check_lr(lr)
    if not _check_real(beta2_decay, "beta2_decay") <= 0.0:
        raise ValueError(f"beta2_decay must be <= 0, got {beta2_decay}")
    if not isinstance(eps, (tuple, list)) or len(eps) != 2:
        raise ValueError(f"eps must be a pair (eps1 or None, eps2), got {eps!r}")
    if eps[0] is not None:
        _check_min(eps[0], "eps[0]")
    _check_min(eps[1], "eps[1]")
    _check_min(d, "d", 1.0)
    _check_min(weight_decay, "weight_decay")
    eps1 = None if eps[0] is None else float(eps[0])
    core = [_adafactor_step(lr, float(beta2_decay), eps1, float(eps[1]), float(d))]
    return _chain(
        maximize_=maximize, coupled=0.0, core=core, decoupled=weight_decay, lr=lr, scale=False
    )


def lion(
    lr: ScalarOrSchedule = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 1e-3,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """Lion (Chen et al. 2023); torch has none. Same as ``optax.lion``.

    ``c = b1 m + (1-b1) g``, ``p -= lr (sign(c) + wd p)``, ``m = b2 m + (1-b2) g``.

    optax: ``lion(lr, (b1, b2), wd) == optax.lion(lr, b1, b2, weight_decay=wd)``; the defaults
    ``betas=(0.9, 0.99)`` and ``weight_decay=1e-3`` are optax's, ``lr=1e-4`` the paper's
    suggestion (optax has no default lr).

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        weight_decay: decoupled decay ``>= 0``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    _check_lr(lr)
    b1, b2 = _check_betas(betas)
    _check_min(weight_decay, "weight_decay")
    return _chain(
        maximize_=maximize, coupled=0.0, core=[_scale_by_lion(b1, b2)], decoupled=weight_decay,
        lr=lr,
    )


def lamb(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """LAMB (You et al. 2020); torch has none. Same as ``optax.lamb``.

    ``u = adam_direction + wd p``; per leaf ``r = ||p|| / ||u||`` (1 if either is 0);
    ``p -= lr r u``.

    optax: ``lamb(lr, (b1, b2), eps, wd) == optax.lamb(lr, b1, b2, eps, weight_decay=wd)``
    (defaults are optax's; ``lr=1e-3`` as torch's Adam). Our Adam bias corrections are the
    accurate ones.

    Args:
        lr: learning rate (float ``>= 0`` or schedule).
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to the Adam denominator, ``>= 0``.
        weight_decay: decay added to the direction before the trust ratio, ``>= 0``.
        maximize: ascend instead of descend.

    Returns:
        An ``optax.GradientTransformation``.
    """
    b1, b2 = _adam_like_checks(lr, betas, eps, weight_decay)
    core = [_scale_by_adam(b1, b2, eps, False)]
    if weight_decay:
        core.append(add_weight_decay(weight_decay))
    core.append(optax.scale_by_trust_ratio())
    return _chain(maximize_=maximize, coupled=0.0, core=core, decoupled=0.0, lr=lr)


_TABLE = {
    "sgd": sgd,
    "adam": adam,
    "adamw": adamw,
    "nadam": nadam,
    "radam": radam,
    "rmsprop": rmsprop,
    "adagrad": adagrad,
    "adamax": adamax,
    "adadelta": adadelta,
    "rprop": rprop,
    "asgd": asgd,
    "adafactor": adafactor,
    "lion": lion,
    "lamb": lamb,
}

NAMES: tuple[str, ...] = tuple(_TABLE)

get = make_get("optimizer", _TABLE)
