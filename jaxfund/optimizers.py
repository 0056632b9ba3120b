"""torch.optim optimizers as optax gradient transformations.

Every optimizer here is a function of its hyperparameters (torch's names, argument names and
defaults) that returns an ``optax.GradientTransformation``::

    opt = jaxfund.optimizers.adamw(lr=1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)

so it composes with ``optax.chain``, ``optax.clip_by_global_norm``, ``optax.masked``,
``optax.multi_transform`` and ``optax.MultiSteps``.

Building blocks. Each optimizer is a chain of small public transformations, as in optax:
:func:`maximize`, :func:`add_weight_decay` (torch's coupled L2 ``weight_decay``), one direction
``scale_by_*`` (the moments: :func:`scale_by_momentum`, :func:`scale_by_adam`,
:func:`scale_by_nadam`, :func:`scale_by_radam`, :func:`scale_by_rmsprop`,
:func:`scale_by_adagrad`, :func:`scale_by_adamax`, :func:`scale_by_adadelta`,
:func:`scale_by_lion`, with torch's argument names and defaults), :func:`scale_by_lr` and
:func:`add_decoupled_weight_decay` (AdamW-style ``p *= 1 - lr*wd``). A chain built from them by
hand equals the optimizer exactly, e.g. ``optax.chain(add_weight_decay(wd), scale_by_adam(),
scale_by_lr(lr)) == adam(lr, weight_decay=wd)``. Rprop, ASGD and Adafactor are complete steps
that include the learning rate (it is not a plain factor there), so they have no public
direction. The stateless pieces (:func:`maximize`, :func:`add_weight_decay`) hold an
``optax.EmptyState``; every other state is a ``NamedTuple`` with an int32 ``count`` (the number
of updates applied so far). Hyperparameters are checked at construction: ``TypeError`` for a
wrong type, ``ValueError`` for a wrong value, naming the argument.

Array and traced hyperparameters. Every numeric hyperparameter (``lr``, each of ``betas``,
``eps``, ``weight_decay``, ``momentum``, ``dampening``, ``alpha``, ``rho``, ``lr_decay``, ...) may
also be a scalar JAX array, traced included: a ``jit`` argument, a ``jax.vmap``-ed sweep
(``jax.vmap(lambda lr: run(adam(lr)))(lrs)`` equals one run per ``lr``) or
``optax.inject_hyperparams(optimizers.adamw)(lr=1e-3, weight_decay=0.1)`` (the flags ``nesterov``,
``amsgrad``, ``centered``, ``maximize`` and ``decoupled_weight_decay`` stay static; tuples such as
``betas`` are static there too). Ranges are checked where the value is concrete and skipped under
tracing. An array hyperparameter keeps its piece of the chain even when it is zero (a Python
``0.0`` leaves it out), so the state's structure never depends on a traced value; the update is
the one torch computes. A float32 array is rounded before scalars such as ``1 - alpha`` are formed
(a Python float is not), so RMSprop, Adadelta or NAdam fed float32 arrays differ from the
Python-float run in the last bits; float64 arrays give the same run. ``inject_hyperparams`` stores
the hyperparameters in the params' dtype (bfloat16 params: a bfloat16 ``lr``); pass
``hyperparam_dtype=jnp.float32`` for low-precision params.

Gradients. ``update`` checks at trace time (for free) that the gradients are floating point and
have the params' tree structure and shapes, or without params the shapes of the state ``init``
built: a ``(1,)`` gradient for a ``(3,)`` parameter raises instead of broadcasting.

Learning rates. ``lr`` is a float, a scalar array or a schedule ``count -> lr`` (any optax
schedule). The schedule is evaluated at the 0-based ``count``, which is torch's ``step - 1``: a
torch ``LambdaLR(opt, lambda e: f(e) / lr)`` stepped once per optimizer step gives the same rates.
The learning rate multiplies the final direction, after momentum, as in torch (this matters for
RMSprop and SGD momentum under a schedule). A negative or non-finite learning rate is refused
(``ValueError``) wherever it is concrete: a constant, or a schedule's value in an eager ``update``.
Under ``jit`` a schedule's value is a tracer and is used as it is: a negative rate steps up the
gradient, a NaN or infinite one makes the params NaN. Clip a schedule that can leave ``[0, inf)``,
e.g. ``lambda c: jnp.maximum(schedule(c), 0.0)``.

Step scalars. Bias corrections ``1 - beta**t`` are computed as ``-expm1(t * log(beta))`` with
``log(beta)`` a Python (float64) constant (an array ``beta`` is only known to its own precision),
RAdam's ``rho_t`` with a series that avoids the cancellation of
``rho_inf - 2 t beta**t / (1 - beta**t)``, and NAdam's momentum factors through ``exp``. They are
evaluated in float32 (float64 under ``jax.enable_x64``) and are accurate to a few ulps (< 4e-7
relative in float32), where optax's ``1 - beta**t`` in float32 is off by ~1e-5.

Dtype policy. Moments (and every other per-parameter state) are stored in float32 for
parameters of lower precision (bfloat16, float16) and in the parameter dtype otherwise; the
arithmetic of an update runs in that state dtype and the updates are returned in the gradient
(= parameter) dtype. Scalar state (step counts, NAdam's ``mu_product``) is int32 / the default
float dtype.

Examples assume ``import jax.numpy as jnp``, ``import optax`` and
``from jaxfund import optimizers``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxfund import _checks
from jaxfund._lbfgs import LBFGSState, lbfgs

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
    "first_order",
    "get",
    "lamb",
    "lbfgs",
    "LBFGSState",
    "lion",
    "maximize",
    "nadam",
    "radam",
    "rmsprop",
    "rprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_lion",
    "scale_by_lr",
    "scale_by_momentum",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rmsprop",
    "sgd",
]

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]
PyTree = Any


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


def _one_minus_pow(beta: float | jax.Array, t: jax.Array) -> jax.Array:
    """``1 - beta ** t`` to a few ulps: ``-expm1(t * log(beta))``.

    ``log(beta)`` is a float64 constant for a Python ``beta``; an array ``beta`` (traced, say) is
    only known in its own precision, so its logarithm is taken there (``beta = 0`` gives
    ``-expm1(-inf) = 1``).
    """
    if isinstance(beta, float):
        return jnp.ones_like(t) if beta == 0.0 else -jnp.expm1(t * math.log(beta))
    return -jnp.expm1(t * jnp.log(beta))


def _lr_at(lr: ScalarOrSchedule, count: jax.Array | int) -> jax.Array:
    """The learning rate at ``count`` in the scalar dtype. A schedule's value is refused where it
    is concrete and negative or non-finite (eagerly); under ``jit`` it is a tracer and is used as
    it is."""
    if callable(lr):
        value = lr(count)
        _checks.check_lr_value(value, "lr", count)
        return jnp.asarray(value, _scalar_dtype())
    return jnp.asarray(lr, _scalar_dtype())


def _is_zero(x: float | jax.Array) -> bool:
    """True for a Python zero only. A hyperparameter given as an array may be traced, so the
    transformations (and the state's structure) must not depend on its value: it keeps its piece
    even when it is zero, and the piece computes what torch computes without it."""
    return isinstance(x, float) and x == 0.0


def _like(x: float | jax.Array, dtype: jnp.dtype) -> float | jax.Array:
    """A hyperparameter (or a scalar derived from one) for arithmetic in ``dtype``: a Python
    float unchanged (weakly typed, rounded once where it meets the array, as always), an array
    cast to ``dtype`` (so a float64 hyperparameter does not promote a float32 state)."""
    return x if isinstance(x, float) else x.astype(dtype)


def _select(cond: bool | jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``a if cond else b`` for a Python condition, ``jnp.where`` for an array one."""
    if isinstance(cond, bool):
        return a if cond else b
    return jnp.where(cond, a, b)


_hyper = _checks.check_hyperparameter


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
# Reusable pieces. Each public piece checks its arguments and returns the transformation of its
# private constructor; the optimizers check their arguments once and call the private
# constructors (through ``_chain``), so nothing is checked twice.


class CountState(NamedTuple):
    """State of the pieces that read the step: the number of updates applied so far."""

    count: jax.Array


def _count_init(params: PyTree) -> CountState:
    del params
    return CountState(count=jnp.zeros([], jnp.int32))


def _maximize() -> optax.GradientTransformation:
    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(jnp.negative, updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def maximize() -> optax.GradientTransformation:
    """Negates the gradients: ``g -> -g`` (torch's ``maximize=True``, applied first).

    Returns:
        An ``optax.GradientTransformation`` with an ``optax.EmptyState``.

    Example:
        >>> tx = optimizers.maximize()
        >>> updates, state = tx.update(jnp.array([1.0, -2.0]), tx.init(jnp.zeros(2)))
        >>> updates
        Array([-1.,  2.], dtype=float32)
    """
    return _maximize()


def _add_weight_decay(weight_decay: float) -> optax.GradientTransformation:
    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_weight_decay needs params: call update(grads, state, params)")
        updates = jax.tree.map(
            lambda u, p: (u + _like(weight_decay, u.dtype) * p.astype(u.dtype)).astype(u.dtype),
            updates, params,
        )
        return updates, state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def add_weight_decay(weight_decay: float) -> optax.GradientTransformation:
    """Coupled L2 weight decay ``u -> u + weight_decay * p`` (torch's ``weight_decay=``).

    Placed before a direction (``scale_by_*``) it is torch's ``weight_decay`` of SGD, Adam,
    RMSprop, ... (``grad = grad.add(param, alpha=weight_decay)``); equal to
    ``optax.add_decayed_weights(weight_decay)``.

    Args:
        weight_decay: decay factor, ``>= 0``.

    Returns:
        An ``optax.GradientTransformation`` with an ``optax.EmptyState``; ``update`` needs
        params.

    Example:
        >>> tx = optimizers.add_weight_decay(0.5)
        >>> params = jnp.array([1.0, 2.0])
        >>> updates, state = tx.update(jnp.zeros(2), tx.init(params), params)
        >>> updates
        Array([0.5, 1. ], dtype=float32)
    """
    return _add_weight_decay(_hyper(weight_decay, "weight_decay", low=0.0))


def _scale_by_lr(lr: ScalarOrSchedule) -> optax.GradientTransformation:
    def update_fn(updates, state, params=None):
        del params
        neg_lr = -_lr_at(lr, state.count)
        updates = jax.tree.map(lambda u: (neg_lr.astype(u.dtype) * u).astype(u.dtype), updates)
        return updates, CountState(_new_count(state.count))

    return optax.GradientTransformation(_count_init, update_fn)


def scale_by_lr(lr: ScalarOrSchedule) -> optax.GradientTransformation:
    """Descent step ``u -> -lr_t * u`` with ``lr_t = lr(count)`` for a schedule, else ``lr``.

    Equal to ``optax.scale_by_learning_rate(lr)``; ``count`` is 0-based (torch's ``step - 1``).

    Args:
        lr: float ``>= 0`` or schedule ``count -> lr``.

    Returns:
        An ``optax.GradientTransformation`` with a :class:`CountState`.

    Example:
        >>> tx = optimizers.scale_by_lr(0.5)
        >>> updates, state = tx.update(jnp.array([1.0, -2.0]), tx.init(jnp.zeros(2)))
        >>> updates
        Array([-0.5,  1. ], dtype=float32)
    """
    return _scale_by_lr(_checks.check_lr(lr))


def _add_decoupled_weight_decay(
    lr: ScalarOrSchedule, weight_decay: float
) -> optax.GradientTransformation:
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
        An ``optax.GradientTransformation`` with a :class:`CountState` (a schedule reads the
        count); ``update`` needs params.

    Example:
        >>> tx = optimizers.add_decoupled_weight_decay(0.5, 0.5)
        >>> params = jnp.array([1.0, 2.0])
        >>> updates, state = tx.update(jnp.zeros(2), tx.init(params), params)
        >>> updates
        Array([-0.25, -0.5 ], dtype=float32)
    """
    return _add_decoupled_weight_decay(*_lr_and_decay(lr, weight_decay))


def _lr_and_decay(lr: Any, weight_decay: Any) -> tuple[ScalarOrSchedule, float]:
    """An optimizer's checked ``lr`` and ``weight_decay``."""
    return _checks.check_lr(lr), _hyper(weight_decay, "weight_decay", low=0.0)


def _chain(
    *directions: optax.GradientTransformation,
    lr: ScalarOrSchedule,
    maximize: bool = False,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    scale: bool = True,
) -> optax.GradientTransformation:
    """``[maximize] -> [coupled L2] -> directions -> [-lr] -> [decoupled decay]``, no no-ops.

    The arguments are already checked. ``weight_decay`` is coupled (torch's L2, before the
    directions) unless ``decoupled`` (AdamW's, after the step); ``scale=False`` for directions
    that already include the learning rate. A Python zero ``weight_decay`` leaves its piece out;
    an array one keeps it (see :func:`_is_zero`). The gradients are checked against the params
    first (:func:`_checked`).
    """
    parts = [_maximize()] if maximize else []
    if not _is_zero(weight_decay) and not decoupled:
        parts.append(_add_weight_decay(weight_decay))
    parts.extend(directions)
    if scale:
        parts.append(_scale_by_lr(lr))
    if not _is_zero(weight_decay) and decoupled:
        parts.append(_add_decoupled_weight_decay(lr, weight_decay))
    return _checked(parts[0] if len(parts) == 1 else optax.chain(*parts))


def _checked(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """``tx`` whose ``update`` first checks the gradients: floating point and, given params, of
    their structure and shapes (:func:`_checks.check_grads`; static, so free at run time). The
    state is ``tx``'s."""
    inner = optax.with_extra_args_support(tx)

    def update_fn(updates, state, params=None, **extra_args):
        _checks.check_grads(updates, params)
        return inner.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)


# ---------------------------------------------------------------------------------------------
# Directions (the per-optimizer moment updates, as ``optax.scale_by_adam``...). Each returns the
# direction *before* -lr: ``optax.chain(add_weight_decay(wd), scale_by_adam(), scale_by_lr(lr))``
# is ``adam(lr, weight_decay=wd)``.


class MomentumState(NamedTuple):
    """SGD momentum buffer ``momentum_buffer`` (torch's name) and the update count."""

    count: jax.Array
    momentum_buffer: PyTree


def _momentum_args(momentum: Any, dampening: Any, nesterov: bool) -> tuple[Any, Any]:
    momentum = _hyper(momentum, "momentum", low=0.0)
    dampening = _hyper(dampening, "dampening", low=0.0)
    if _checks.is_traced(momentum) or _checks.is_traced(dampening):
        return momentum, dampening
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"nesterov=True requires momentum > 0 and dampening == 0, got momentum={momentum}, "
            f"dampening={dampening} (torch: Nesterov momentum requires a momentum and zero "
            "dampening)"
        )
    return momentum, dampening


def scale_by_momentum(
    momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False
) -> optax.GradientTransformation:
    """SGD's momentum direction (``torch.optim.SGD``), before the learning rate.

    ``buf = g`` at the first step (never dampened), then ``buf = momentum buf + (1 - dampening)
    g``; the direction is ``g + momentum buf`` (``nesterov``) or ``buf``. ``momentum=0`` is
    the identity (torch keeps no buffer then).

    Args:
        momentum: momentum factor ``>= 0``.
        dampening: dampening of the momentum, ``>= 0``.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).

    Returns:
        An ``optax.GradientTransformation`` with a :class:`MomentumState`.

    Example:
        >>> tx = optimizers.scale_by_momentum(0.5)
        >>> state = tx.init(jnp.zeros(2))
        >>> for _ in range(2):
        ...     updates, state = tx.update(jnp.array([1.0, -2.0]), state)
        >>> updates
        Array([ 1.5, -3. ], dtype=float32)
    """
    momentum, dampening = _momentum_args(momentum, dampening, nesterov)

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
            out = gs + _like(momentum, b.dtype) * b if nesterov else b
            return _select(momentum == 0, gs, out).astype(g.dtype), b

        _checks.check_grads(updates, state.momentum_buffer, "state.momentum_buffer")
        out, buf = _map(leaf, 2, updates, state.momentum_buffer)
        return out, MomentumState(_new_count(state.count), buf)

    return optax.GradientTransformation(init_fn, update_fn)


class AdamState(NamedTuple):
    """Adam moments: ``exp_avg``, ``exp_avg_sq`` and, for AMSGrad, ``max_exp_avg_sq``."""

    count: jax.Array
    exp_avg: PyTree
    exp_avg_sq: PyTree
    max_exp_avg_sq: PyTree


def _eps(eps: Any) -> float | jax.Array:
    return _hyper(eps, "eps", low=0.0)


def scale_by_adam(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, amsgrad: bool = False
) -> optax.GradientTransformation:
    """Adam's direction (``torch.optim.Adam``), before the learning rate.

    ``m = lerp(m, g, 1-b1)``, ``v = b2 v + (1-b2) g^2``; the direction is
    ``(m/bc1) / (sqrt(v)/sqrt(bc2) + eps)`` with ``bc_i = 1 - b_i^t``. ``amsgrad``: ``v`` in the
    denominator is the running max of the *raw* ``v`` (torch's variant).

    Args:
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to the denominator, ``>= 0``.
        amsgrad: torch's AMSGrad.

    Returns:
        An ``optax.GradientTransformation`` with an :class:`AdamState`.

    Example (the first direction is ``sign(g)``, up to eps):
        >>> tx = optimizers.scale_by_adam()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> [round(u, 4) for u in updates.tolist()]
        [1.0, -1.0]
    """
    b1, b2 = _checks.check_betas(betas)
    eps = _eps(eps)

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
            c1, b2_, c2, eps_ = (_like(x, m.dtype) for x in (1.0 - b1, b2, 1.0 - b2, eps))
            m = m + c1 * (gs - m)
            v = b2_ * v + c2 * (gs * gs)
            if amsgrad:
                vmax = jnp.maximum(vmax, v)
            denom = jnp.sqrt(vmax if amsgrad else v) * inv_sqrt_bc2.astype(m.dtype) + eps_
            out = (m * inv_bc1.astype(m.dtype)) / denom
            return out.astype(g.dtype), m, v, vmax

        _checks.check_grads(updates, state.exp_avg, "state.exp_avg")
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


def scale_by_nadam(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, momentum_decay: float = 4e-3
) -> optax.GradientTransformation:
    """NAdam's direction (``torch.optim.NAdam``) with torch's momentum schedule.

    ``mu_t = b1 (1 - 0.5 * 0.96^(t momentum_decay))``, ``P_t = mu_1 ... mu_t``; the direction
    is ``[(1-mu_t)/(1-P_t) g + mu_{t+1}/(1-P_t mu_{t+1}) m] / (sqrt(v/bc2) + eps)``.

    Args:
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to the denominator, ``>= 0``.
        momentum_decay: ``psi >= 0`` of the momentum schedule.

    Returns:
        An ``optax.GradientTransformation`` with a :class:`NAdamState`.

    Example (the first direction is ``(1 + (1-b1) mu_2 / (1 - mu_1 mu_2)) sign(g)``, nearly):
        >>> tx = optimizers.scale_by_nadam()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> [round(u, 3) for u in updates.tolist()]
        [1.056, -1.056]
    """
    b1, b2 = _checks.check_betas(betas)
    eps = _eps(eps)
    momentum_decay = _hyper(momentum_decay, "momentum_decay", low=0.0)
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
            c1, b2_, c2, eps_ = (_like(x, m.dtype) for x in (1.0 - b1, b2, 1.0 - b2, eps))
            m = m + c1 * (gs - m)
            v = b2_ * v + c2 * (gs * gs)
            denom = jnp.sqrt(v) * inv_sqrt_bc2.astype(m.dtype) + eps_
            out = (c_grad.astype(m.dtype) * gs + c_avg.astype(m.dtype) * m) / denom
            return out.astype(g.dtype), m, v

        _checks.check_grads(updates, state.exp_avg, "state.exp_avg")
        out, m, v = _map(leaf, 3, updates, state.exp_avg, state.exp_avg_sq)
        return out, NAdamState(_new_count(state.count), mu_product, m, v)

    return optax.GradientTransformation(init_fn, update_fn)


def _radam_rho(b2: float | jax.Array, t: jax.Array) -> jax.Array:
    """RAdam's ``rho_t = rho_inf - 2 t b2**t / (1 - b2**t)`` without cancellation.

    With ``a = -log(b2)`` and ``y = t a``: ``rho_t = (coth(a/2) - 2/a) + t g(y)`` where
    ``g(y) = 2/y - 2/expm1(y) = 1 - y/6 + y^3/360 - ...`` (a Bernoulli series, used for
    ``y < 0.5``; the direct form loses at most two bits above). ``coth(a/2) - 2/a`` is a
    float64 constant for a Python ``b2`` and computed in ``b2``'s precision for an array (where
    ``b2 = 0`` gives ``a = inf``, ``const = 1`` and ``rho_t = 1``).
    """
    if isinstance(b2, float):
        if b2 == 0.0:
            return jnp.ones_like(t)
        a = -math.log(b2)
        const = 1.0 / math.tanh(a / 2.0) - 2.0 / a
    else:
        a = -jnp.log(b2)
        const = 1.0 / jnp.tanh(a / 2.0) - 2.0 / a
    y = t * a
    series = [1.0, -1.0 / 6, 0.0, 1.0 / 360, 0.0, -1.0 / 15120, 0.0, 1.0 / 604800, 0.0,
              -1.0 / 23950080, 0.0, 691.0 / 653837184000, 0.0, -1.0 / 1307674368000]
    small = jnp.polyval(jnp.asarray(series[::-1], t.dtype), y)
    y_big = jnp.maximum(y, 0.5)
    big = 2.0 / y_big - 2.0 / jnp.expm1(y_big)
    return const + t * jnp.where(y < 0.5, small, big)




def scale_by_radam(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
) -> optax.GradientTransformation:
    """Rectified Adam's direction (``torch.optim.RAdam``), before the learning rate.

    ``rho_inf = 2/(1-b2) - 1``, ``rho_t = rho_inf - 2 t b2^t / bc2``; if ``rho_t > 5`` the
    direction is ``(m/bc1) rect_t sqrt(bc2) / (sqrt(v) + eps)`` with
    ``rect_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))``, else
    ``m/bc1``. ``eps`` is added to the raw ``sqrt(v)`` as torch.

    Args:
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to ``sqrt(v)``, ``>= 0``.

    Returns:
        An ``optax.GradientTransformation`` with an :class:`AdamState` (``max_exp_avg_sq`` is
        None).

    Example (the first steps are not rectified: the direction is ``m/bc1 = g``):
        >>> tx = optimizers.scale_by_radam()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> [round(u, 4) for u in updates.tolist()]
        [0.5, -2.0]
    """
    b1, b2 = _checks.check_betas(betas)
    eps = _eps(eps)
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
            c1, b2_, c2, eps_ = (_like(x, m.dtype) for x in (1.0 - b1, b2, 1.0 - b2, eps))
            m = m + c1 * (gs - m)
            v = b2_ * v + c2 * (gs * gs)
            scale = jnp.where(rectify, adaptive.astype(m.dtype) / (jnp.sqrt(v) + eps_), 1.0)
            out = (m * inv_bc1.astype(m.dtype)) * scale
            return out.astype(g.dtype), m, v

        _checks.check_grads(updates, state.exp_avg, "state.exp_avg")
        out, m, v = _map(leaf, 3, updates, state.exp_avg, state.exp_avg_sq)
        return out, AdamState(_new_count(state.count), m, v, None)

    return optax.GradientTransformation(init_fn, update_fn)


class RMSpropState(NamedTuple):
    """RMSprop ``square_avg``, ``grad_avg`` (centered) and ``momentum_buffer`` (momentum > 0)."""

    count: jax.Array
    square_avg: PyTree
    grad_avg: PyTree
    momentum_buffer: PyTree


def scale_by_rmsprop(
    alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0, centered: bool = False
) -> optax.GradientTransformation:
    """RMSprop's direction (``torch.optim.RMSprop``), before the learning rate.

    ``sq = alpha sq + (1-alpha) g^2``, ``avg = sqrt(sq [- ga^2]) + eps`` (``ga`` the running
    mean of ``g`` when ``centered``); the direction is ``g/avg``, or with momentum
    ``buf = momentum buf + g/avg``. eps is outside the square root, as torch.

    Args:
        alpha: smoothing constant in ``[0, 1]``.
        eps: added to the denominator, ``>= 0``.
        momentum: momentum factor ``>= 0``.
        centered: normalise by the estimated variance of the gradient.

    Returns:
        An ``optax.GradientTransformation`` with an :class:`RMSpropState`.

    Example (the first direction is ``g / sqrt(0.01 g^2) = 10 sign(g)``, up to eps):
        >>> tx = optimizers.scale_by_rmsprop()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> [round(u, 4) for u in updates.tolist()]
        [10.0, -10.0]
    """
    alpha = _hyper(alpha, "alpha", low=0.0, high=1.0)
    eps = _eps(eps)
    momentum = _hyper(momentum, "momentum", low=0.0)
    has_buffer = not _is_zero(momentum)

    def init_fn(params):
        return RMSpropState(
            jnp.zeros([], jnp.int32), _zeros(params), _zeros(params) if centered else None,
            _zeros(params) if has_buffer else None,
        )

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, sq, ga=None, buf=None):
            gs = g.astype(sq.dtype)
            alpha_, c, eps_ = (_like(x, sq.dtype) for x in (alpha, 1.0 - alpha, eps))
            sq = alpha_ * sq + c * (gs * gs)
            if centered:
                ga = ga + c * (gs - ga)
                avg = jnp.sqrt(sq - ga * ga) + eps_
            else:
                avg = jnp.sqrt(sq) + eps_
            out = gs / avg
            if has_buffer:
                buf = _like(momentum, sq.dtype) * buf + out
                out = _select(momentum == 0, out, buf)
            return out.astype(g.dtype), sq, ga, buf

        _checks.check_grads(updates, state.square_avg, "state.square_avg")
        trees = [updates, state.square_avg]
        trees.append(state.grad_avg if centered else jax.tree.map(lambda _: None, updates))
        if has_buffer:
            trees.append(state.momentum_buffer)
        out, sq, ga, buf = _map(leaf, 4, *trees)
        return out, RMSpropState(
            _new_count(state.count), sq, ga if centered else None, buf if has_buffer else None
        )

    return optax.GradientTransformation(init_fn, update_fn)


class AdagradState(NamedTuple):
    """Adagrad's running sum of squared gradients ``sum``."""

    count: jax.Array
    sum: PyTree


def scale_by_adagrad(
    initial_accumulator_value: float = 0.0, eps: float = 1e-10
) -> optax.GradientTransformation:
    """Adagrad's direction (``torch.optim.Adagrad``), before the learning rate.

    ``s += g^2`` with ``s`` starting at ``initial_accumulator_value``; the direction is
    ``g / (sqrt(s) + eps)`` (eps outside the root, as torch). torch's ``lr_decay`` is part of
    the learning rate, not of the direction (see :func:`adagrad`).

    Args:
        initial_accumulator_value: start of the sum of squares, ``>= 0``.
        eps: added to the denominator, ``>= 0``.

    Returns:
        An ``optax.GradientTransformation`` with an :class:`AdagradState`.

    Example (the first direction is ``sign(g)``, up to eps):
        >>> tx = optimizers.scale_by_adagrad()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> [round(u, 4) for u in updates.tolist()]
        [1.0, -1.0]
    """
    initial_accumulator_value = _hyper(
        initial_accumulator_value, "initial_accumulator_value", low=0.0
    )
    eps = _eps(eps)

    def init_fn(params):
        return AdagradState(jnp.zeros([], jnp.int32), _zeros(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, s):
            gs = g.astype(s.dtype)
            s = s + gs * gs
            return (gs / (jnp.sqrt(s) + _like(eps, s.dtype))).astype(g.dtype), s

        _checks.check_grads(updates, state.sum, "state.sum")
        out, s = _map(leaf, 2, updates, state.sum)
        return out, AdagradState(_new_count(state.count), s)

    return optax.GradientTransformation(init_fn, update_fn)


class AdamaxState(NamedTuple):
    """Adamax ``exp_avg`` and infinity norm ``exp_inf``."""

    count: jax.Array
    exp_avg: PyTree
    exp_inf: PyTree


def scale_by_adamax(
    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adamax's direction (``torch.optim.Adamax``), before the learning rate.

    ``m = lerp(m, g, 1-b1)``, ``u = max(b2 u, |g| + eps)``; the direction is ``(m/bc1) / u``.

    Args:
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.
        eps: added to ``|g|``, ``>= 0``.

    Returns:
        An ``optax.GradientTransformation`` with an :class:`AdamaxState`.

    Example (the first direction is ``sign(g)``, up to eps):
        >>> tx = optimizers.scale_by_adamax()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> [round(u, 4) for u in updates.tolist()]
        [1.0, -1.0]
    """
    b1, b2 = _checks.check_betas(betas)
    eps = _eps(eps)

    def init_fn(params):
        return AdamaxState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

    def update_fn(updates, state, params=None):
        del params
        inv_bc1 = 1.0 / _one_minus_pow(b1, _step(state.count))

        def leaf(g, m, u):
            gs = g.astype(m.dtype)
            c1, b2_, eps_ = (_like(x, m.dtype) for x in (1.0 - b1, b2, eps))
            m = m + c1 * (gs - m)
            u = jnp.maximum(b2_ * u, jnp.abs(gs) + eps_)
            return ((m * inv_bc1.astype(m.dtype)) / u).astype(g.dtype), m, u

        _checks.check_grads(updates, state.exp_avg, "state.exp_avg")
        out, m, u = _map(leaf, 3, updates, state.exp_avg, state.exp_inf)
        return out, AdamaxState(_new_count(state.count), m, u)

    return optax.GradientTransformation(init_fn, update_fn)


class AdadeltaState(NamedTuple):
    """Adadelta ``square_avg`` (of gradients) and ``acc_delta`` (of steps)."""

    count: jax.Array
    square_avg: PyTree
    acc_delta: PyTree


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> optax.GradientTransformation:
    """Adadelta's direction (``torch.optim.Adadelta``), before the learning rate.

    ``sq = rho sq + (1-rho) g^2``, ``d = sqrt(acc + eps)/sqrt(sq + eps) g`` (the direction),
    ``acc = rho acc + (1-rho) d^2``.

    Args:
        rho: decay of the running averages, in ``[0, 1]``.
        eps: added inside both square roots, ``>= 0``.

    Returns:
        An ``optax.GradientTransformation`` with an :class:`AdadeltaState`.

    Example (the first direction is ``sqrt(eps / (1 - rho)) sign(g)``, nearly):
        >>> tx = optimizers.scale_by_adadelta()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> [round(u, 4) for u in updates.tolist()]
        [0.0032, -0.0032]
    """
    rho = _hyper(rho, "rho", low=0.0, high=1.0)
    eps = _eps(eps)

    def init_fn(params):
        return AdadeltaState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, sq, acc):
            gs = g.astype(sq.dtype)
            rho_, c, eps_ = (_like(x, sq.dtype) for x in (rho, 1.0 - rho, eps))
            sq = rho_ * sq + c * (gs * gs)
            delta = jnp.sqrt(acc + eps_) / jnp.sqrt(sq + eps_) * gs
            acc = rho_ * acc + c * (delta * delta)
            return delta.astype(g.dtype), sq, acc

        _checks.check_grads(updates, state.square_avg, "state.square_avg")
        out, sq, acc = _map(leaf, 3, updates, state.square_avg, state.acc_delta)
        return out, AdadeltaState(_new_count(state.count), sq, acc)

    return optax.GradientTransformation(init_fn, update_fn)


class LionState(NamedTuple):
    """Lion momentum ``exp_avg``."""

    count: jax.Array
    exp_avg: PyTree


def scale_by_lion(betas: tuple[float, float] = (0.9, 0.99)) -> optax.GradientTransformation:
    """Lion's direction (Chen et al. 2023; torch has none), before the learning rate.

    The direction is ``sign(b1 m + (1-b1) g)``, then ``m = b2 m + (1-b2) g``. Equal to
    ``optax.scale_by_lion(b1, b2)``.

    Args:
        betas: ``(beta1, beta2)``, each in ``[0, 1)``.

    Returns:
        An ``optax.GradientTransformation`` with a :class:`LionState`.

    Example:
        >>> tx = optimizers.scale_by_lion()
        >>> updates, state = tx.update(jnp.array([0.5, -2.0]), tx.init(jnp.zeros(2)))
        >>> updates
        Array([ 1., -1.], dtype=float32)
    """
    b1, b2 = _checks.check_betas(betas)

    def init_fn(params):
        return LionState(jnp.zeros([], jnp.int32), _zeros(params))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, m):
            gs = g.astype(m.dtype)
            c1, b1_, c2, b2_ = (_like(x, m.dtype) for x in (1.0 - b1, b1, 1.0 - b2, b2))
            out = jnp.sign(c1 * gs + b1_ * m)
            return out.astype(g.dtype), c2 * gs + b2_ * m

        _checks.check_grads(updates, state.exp_avg, "state.exp_avg")
        out, m = _map(leaf, 2, updates, state.exp_avg)
        return out, LionState(_new_count(state.count), m)

    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------------------------
# Complete steps. Rprop, ASGD and Adafactor are not a direction times the learning rate (the lr
# sets Rprop's initial step sizes, enters ASGD's eta and weight shrinking, and is capped by
# 1/sqrt(t) in Adafactor), so they stay private and include the learning rate.


class RpropState(NamedTuple):
    """Rprop previous gradient ``prev`` and per-element ``step_size``."""

    count: jax.Array
    prev: PyTree
    step_size: PyTree


def _rprop_step(lr: ScalarOrSchedule, etas: tuple[Any, Any], step_sizes: tuple[Any, Any]):
    eta_minus, eta_plus = etas
    low, high = step_sizes

    def init_fn(params):
        return RpropState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params, _lr_at(lr, 0)))

    def update_fn(updates, state, params=None):
        del params

        def leaf(g, prev, size):
            gs = g.astype(prev.dtype)
            sign = jnp.sign(gs * prev)
            factor = jnp.where(sign > 0, eta_plus, jnp.where(sign < 0, eta_minus, 1.0))
            size = jnp.clip(size * factor.astype(size.dtype), _like(low, size.dtype),
                            _like(high, size.dtype))
            gs = jnp.where(sign < 0, 0.0, gs).astype(prev.dtype)
            return (-jnp.sign(gs) * size).astype(g.dtype), gs, size

        _checks.check_grads(updates, state.prev, "state.prev")
        out, prev, size = _map(leaf, 3, updates, state.prev, state.step_size)
        return out, RpropState(_new_count(state.count), prev, size)

    return optax.GradientTransformation(init_fn, update_fn)


class ASGDState(NamedTuple):
    """ASGD's averaged parameters ``ax`` (torch's ``state["ax"]``) after ``count`` steps."""

    count: jax.Array
    ax: PyTree


def _asgd_step(lr: ScalarOrSchedule, lambd: Any, alpha: Any, t0: Any):
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


def _adafactor_step(lr: ScalarOrSchedule, beta2_decay: Any, eps1: Any, eps2: Any, d: Any):
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
            e1 = jnp.finfo(p.dtype).eps if eps1 is None else _like(eps1, dtype)
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
            step = jnp.maximum(_like(eps2, dtype), p_rms) * rho.astype(dtype)
            denom = jnp.maximum(1.0, jnp.sqrt(jnp.sum(scaled * scaled) / size) / _like(d, dtype))
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

    Example:
        >>> opt = optimizers.sgd(lr=0.1)
        >>> params = jnp.array([1.0, 2.0])
        >>> updates, state = opt.update(jnp.array([0.5, -2.0]), opt.init(params), params)
        >>> optax.apply_updates(params, updates)
        Array([0.95, 2.2 ], dtype=float32)
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    momentum, dampening = _momentum_args(momentum, dampening, nesterov)
    direction = scale_by_momentum(momentum, dampening, nesterov)
    return _chain(
        *([] if _is_zero(momentum) else [direction]), lr=lr, maximize=maximize,
        weight_decay=weight_decay,
    )


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

    Example:
        >>> opt = optimizers.adam(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    return _chain(
        scale_by_adam(betas, eps, amsgrad), lr=lr, maximize=maximize, weight_decay=weight_decay,
        decoupled=decoupled_weight_decay,
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

    Example:
        >>> opt = optimizers.adamw(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.899
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

    Example:
        >>> opt = optimizers.nadam(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.8944
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    return _chain(
        scale_by_nadam(betas, eps, momentum_decay), lr=lr, maximize=maximize,
        weight_decay=weight_decay, decoupled=decoupled_weight_decay,
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

    Example:
        >>> opt = optimizers.radam(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.95
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    return _chain(
        scale_by_radam(betas, eps), lr=lr, maximize=maximize, weight_decay=weight_decay,
        decoupled=decoupled_weight_decay,
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

    Example:
        >>> opt = optimizers.rmsprop(lr=0.01)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    return _chain(
        scale_by_rmsprop(alpha, eps, momentum, centered), lr=lr, maximize=maximize,
        weight_decay=weight_decay,
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

    Example:
        >>> opt = optimizers.adagrad(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    lr_decay = _hyper(lr_decay, "lr_decay", low=0.0)
    if not _is_zero(lr_decay):
        def decayed(count):
            return _lr_at(lr, count) / (1.0 + count.astype(_scalar_dtype()) * lr_decay)
    else:
        decayed = lr
    return _chain(
        scale_by_adagrad(initial_accumulator_value, eps), lr=decayed, maximize=maximize,
        weight_decay=weight_decay,
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

    Example:
        >>> opt = optimizers.adamax(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    return _chain(
        scale_by_adamax(betas, eps), lr=lr, maximize=maximize, weight_decay=weight_decay
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

    Example:
        >>> opt = optimizers.adadelta()
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9968
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    return _chain(
        scale_by_adadelta(rho, eps), lr=lr, maximize=maximize, weight_decay=weight_decay
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

    Example:
        >>> opt = optimizers.rprop(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9
    """
    lr = _checks.check_lr(lr)
    eta_minus, eta_plus = _checks.check_pair(etas, "etas")
    eta_minus = _hyper(eta_minus, "etas[0]", low=0.0, high=1.0, low_open=True, high_open=True)
    eta_plus = _hyper(eta_plus, "etas[1]", low=1.0, low_open=True)
    low, high = _checks.check_pair(step_sizes, "step_sizes")
    low = _hyper(low, "step_sizes[0]", low=0.0)
    high = _hyper(high, "step_sizes[1]", low=low)
    step = _rprop_step(lr, (eta_minus, eta_plus), (low, high))
    return _chain(step, lr=lr, maximize=maximize, scale=False)


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

    Example:
        >>> opt = optimizers.asgd(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.95
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    step = _asgd_step(
        lr,
        _hyper(lambd, "lambd", low=0.0),
        _hyper(alpha, "alpha", low=0.0),
        _hyper(t0, "t0", low=0.0),
    )
    return _chain(step, lr=lr, maximize=maximize, weight_decay=weight_decay, scale=False)


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

    Example:
        >>> opt = optimizers.adafactor(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    eps1, eps2 = _checks.check_pair(eps, "eps")
    step = _adafactor_step(
        lr,
        _hyper(beta2_decay, "beta2_decay", high=0.0),
        None if eps1 is None else _hyper(eps1, "eps[0]", low=0.0),
        _hyper(eps2, "eps[1]", low=0.0),
        _hyper(d, "d", low=1.0),
    )
    return _chain(
        step, lr=lr, maximize=maximize, weight_decay=weight_decay, decoupled=True, scale=False
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

    Example:
        >>> opt = optimizers.lion(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.8999
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    return _chain(
        scale_by_lion(betas), lr=lr, maximize=maximize, weight_decay=weight_decay, decoupled=True
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

    Example:
        >>> opt = optimizers.lamb(lr=0.1)
        >>> params = jnp.array(1.0)
        >>> updates, state = opt.update(jnp.array(0.5), opt.init(params), params)
        >>> round(float(optax.apply_updates(params, updates)), 4)
        0.9
    """
    lr, weight_decay = _lr_and_decay(lr, weight_decay)
    directions = [scale_by_adam(betas, eps)]
    if not _is_zero(weight_decay):
        directions.append(_add_weight_decay(weight_decay))
    directions.append(optax.scale_by_trust_ratio())
    return _chain(*directions, lr=lr, maximize=maximize)


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

# The first-order optimizers: ``update(grads, state, params)``, what a train step calls.
NAMES: tuple[str, ...] = tuple(_TABLE)

# ``get`` also resolves ``"LBFGS"``: it needs the objective (``update(..., value=, value_fn=)``).
get = _checks.make_get("optimizer", {**_TABLE, "lbfgs": lbfgs})


def first_order(name: str) -> Callable[..., optax.GradientTransformation]:
    """:func:`get` restricted to :data:`NAMES`, the optimizers a train step can drive with
    ``update(grads, state, params)``: ``"LBFGS"`` is refused (it needs the objective).

    >>> first_order("AdamW") is adamw
    True
    """
    factory = get(name)
    if factory is lbfgs:
        raise ValueError(f"{name!r} needs the objective at every update (value_fn=), which a "
                         f"train step does not pass; use one of {', '.join(NAMES)}, or call "
                         "optimizers.lbfgs from Python")
    return factory
